"""Profiles that can be trusted: interleaved windows, rates and spread by hand, the
checks that send a measurement back, co-run factors; the profile file, read and written
in one place (older files included)."""

from __future__ import annotations

import os

import pytest

from prismsim.cost.op_table import Bandwidth, OperatorTable, Product
from prismsim.profiling.busy_rates import GAP_S, Window, busy_rates, schedule
from prismsim.profiling.host_profile import (
    HostProfile,
    ProfileFileError,
    _problems,
    catalog_entries,
    corun_factors,
    load_profile,
    save_profile,
)
from prismsim.profiling.message_costs import MessageCosts, delay_quantiles_us
from prismsim.sim import LinkSpec
from prismsim.sim.variability import SpeedVariability
from prismsim.validation.predict import host_spec
from tests.conftest import assert_refused


def test_windows_interleave_every_process_count():
    w = schedule(max_busy=3, rounds=2, window_s=1.0, start_s=100.0)
    assert [x.busy for x in w] == [1, 2, 3, 1, 2, 3]
    assert w[0] == Window(100.0, 101.0, 1)
    assert w[1].start_s == pytest.approx(101.0 + GAP_S)
    assert w[5].end_s == pytest.approx(100.0 + 6 * 1.0 + 5 * GAP_S)


def test_rates_are_the_median_window_and_the_spread_its_range():
    """1 GFLOP forwards. k=1: windows at 0.5 s and 0.4 s a forward (2, 2.5 GFLOP/s) and
    0.5 again: median 2, spread 2.5/2 - 1 = 25 %. k=2: both processes 1 s: 1 GFLOP/s."""
    windows = schedule(2, 3, 1.0, 0.0)
    p0 = [[0.5, 0.5], [1.0], [0.4], [1.0], [0.5], [1.0]]
    p1 = [[], [1.0], [], [1.0], [], [1.0]]
    rates, spread = busy_rates(10**9, windows, [p0, p1])
    assert rates == pytest.approx({1: 2.0, 2: 1.0})
    assert spread == pytest.approx({1: 0.25, 2: 0.0})


def test_what_makes_a_measurement_untrustworthy():
    assert _problems({1: 50.0, 2: 45.0}, {1: 0.05, 2: 0.08}) == []
    assert _problems({1: 50.0, 2: 45.0}, {1: 0.15, 2: 0.0}) == [
        "1 busy: its windows spread 15 % (over 10 %)"]
    assert _problems({1: 50.0, 2: 66.1}, {1: 0.0, 2: 0.0}) == [
        "2 busy ran faster per process (66.1 GFLOP/s) than 1 busy (50.0)"]


def test_corun_factors_by_hand():
    """2 cores: 2 busy at 45 of 50 GFLOP/s is 0.9 of its full core; 3 busy at 30: the
    share is 2/3, 50 x 2/3 = 33.3, so 30 / 33.3 = 0.9."""
    assert corun_factors({1: 50.0, 2: 45.0, 3: 30.0}, cores=2) == pytest.approx([1.0, 0.9, 0.9])


def test_an_older_profile_reads_as_the_prediction_read_it_then(tmp_path):
    """A file of an early profile-device: the two fields it always had, integers where
    floats are written now, and a key no longer written. The host is then this machine's
    cores, no co-run factors, no wake-up cost; a message's fixed CPU the small plain
    messages' median, (100 + 300) / 2 = 200 us, and no runtime overhead beyond it."""
    path = tmp_path / "profile.yaml"
    path.write_text("concurrent_gflops: {1: 40, 2: 30}\ngloo_fixed_us: 58\ncolour: red\n")
    profile = load_profile(path)
    assert profile.concurrent_gflops == {1: 40.0, 2: 30.0} and profile.gloo_fixed_us == 58.0
    assert profile.operators is None and profile.runtime_overhead_us == 0.0
    costs = MessageCosts(wall_s={}, cpu_s={256: 1e-4, 4096: 3e-4, 65536: 1e-3})
    host = host_spec(profile, costs)
    assert host.cores == (os.cpu_count() or 1) and host.corun == []
    assert host.wake_us_by_idle_ms == () and host.message_cpu_us == pytest.approx(200.0)
    save_profile(profile, tmp_path / "again.yaml")  # as validate keeps it in its folder
    assert (tmp_path / "again.yaml").read_text() == (
        "concurrent_gflops:\n  1: 40.0\n  2: 30.0\ngloo_fixed_us: 58.0\ncolour: red\n")


@pytest.mark.parametrize(("text", "message"), [
    ("concurrent_gflops: {1: -3}\ngloo_fixed_us: 5\n",
     "p.yaml: concurrent_gflops[1]: Input should be greater than 0, got -3"),
    ("concurrent_gflops: {1: 3}\n", "p.yaml: gloo_fixed_us: Field required"),
    ("concurrent_gflops: {1: 3}\ngloo_fixed_us: 5\nwake_us_by_idle_ms: [[1.0]]\n",
     "p.yaml: wake_us_by_idle_ms[0]"),
    ("- 1\n", "p.yaml: expected a mapping of profile fields, got a list"),
])
def test_a_damaged_profile_is_one_line_naming_file_and_key(tmp_path, text, message):
    assert_refused(tmp_path / "p.yaml", text, load_profile, ProfileFileError, message)


def test_a_measured_profile_reads_back_as_it_was_written(tmp_path):
    table = OperatorTable(source="by hand", mm=(Product(dims=(1, 2, 2), seconds=1e-5),),
                          bmm=(Product(dims=(1, 1, 1, 1), seconds=2e-6),),
                          ew={"copy": Bandwidth(fixed_s=1e-6, bytes_per_s=1e9)}, view_s=1e-7,
                          reference_s=1e-3, sequence_factor=1.3)
    profile = HostProfile(
        model="vit-tiny", batch=1, cores=2, model_gflops=0.88,
        concurrent_gflops={1: 50.0, 2: 45.0}, concurrent_spread={1: 0.02, 2: 0.04},
        attempts=2, load={"load_average_before": 1.5, "load_average_after": 1.75,
                          "cpu_stolen_share": 0.01},
        warnings=["1 busy: its windows spread 15 % (over 10 %)"], corun=[1.0, 0.9],
        gloo_one_way_us={256: 60.0}, gloo_fixed_us=58.3, gloo_loopback_gbps=None,
        operators=table, operators_spread=0.05, wake_us_by_idle_ms=[[1.0, 100.0]],
        runtime_overhead_us=187.0, measured_at="2026-12-06 16:46:57",
        speed_variability=SpeedVariability(source="by hand", slow=((0.0, 0.9), (1.0, 1.2)),
                                           slow_correlation_s=1.5, fast_cv=0.04),
        gloo_delay_us=[(0.0, 0.0), (0.5, 1.5), (0.9, 7.6), (0.99, 9.76), (1.0, 10.0)])
    save_profile(profile, tmp_path / "profile.yaml")
    again = load_profile(tmp_path / "profile.yaml")
    assert again == profile and again.operators == table
    assert again.load is not None and again.load.load_average_after == 1.75
    # its catalog entry carries the host's variability, for sampled replays
    host = catalog_entries(again)["devices"]["host-operators"]
    assert SpeedVariability(**host["variability"]) == profile.speed_variability
    # and the loopback link the ping-pong's delay distribution
    link = LinkSpec(**catalog_entries(again)["links"]["host-loopback-gloo"])
    assert link.variability is not None
    assert link.variability.delay_us == ((0.0, 0.0), (0.5, 1.5), (0.9, 7.6), (0.99, 9.76),
                                         (1.0, 10.0))


def test_a_ping_pongs_delay_distribution_by_hand():
    """Round trips of 10, 12, 14 and 30 us: excesses over the fastest 0, 2, 4 and 20,
    halved 0, 1, 2, 10 us one way; linear between order statistics, q at position
    q x 3: the median 1.5, p90 (2.7) 2 + 0.7 x 8 = 7.6, p99 (2.97) 9.76, the most 10."""
    quantiles = delay_quantiles_us([10e-6, 30e-6, 12e-6, 14e-6])
    assert [q for q, _ in quantiles] == [0.0, 0.5, 0.9, 0.99, 1.0]
    assert [us for _, us in quantiles] == pytest.approx([0.0, 1.5, 7.6, 9.76, 10.0])
    # of two measurements of one link, the one a busy host disturbed less counts
    calm = MessageCosts(wall_s={}, cpu_s={}, delay_us=quantiles)
    busy = MessageCosts(wall_s={}, cpu_s={}, delay_us=[(0.0, 0.0), (0.9, 80.0), (1.0, 99.0)])
    assert busy.least(calm).delay_us == calm.least(busy).delay_us == quantiles
    assert MessageCosts.from_json(calm.as_json()) == calm
