"""Held-out prediction (``validate --predict-only``): what it is made of, by hand."""

from __future__ import annotations

import pytest

from prismsim.profiling.gauge import GAUGE_NAME
from prismsim.profiling.host_profile import HostProfile
from prismsim.profiling.message_costs import MessageCosts
from prismsim.sim.specs import LinkSpec
from prismsim.validation.predict import (
    PredictError,
    host_spec,
    operator_table,
    predict_point,
    require_current_gauge,
    round_gauge_s,
    table_device,
    timed_steps,
    workload,
)
from tests.conftest import HAND_TABLE

TABLE = HAND_TABLE


def _profile(**fields: object) -> HostProfile:
    """A profile with the two fields every file has, and ``fields``."""
    return HostProfile(concurrent_gflops={1: 50.0}, gloo_fixed_us=0.0, **fields)


def test_host_spec_without_a_stream_fits_message_cpu_and_never_speeds_a_process_up():
    # 100 B: 110 us, 1100 B: 120 us, 11100 B: 220 us: 115 us fixed (the median of the
    # small ones), 1e-8 s a byte (0.1 GB/s) fitted over all three
    costs = MessageCosts(wall_s={}, cpu_s={100: 110e-6, 1100: 120e-6, 11100: 220e-6})
    host = host_spec(_profile(cores=2, corun=[1.0, 1.02, 0.9]), costs)
    assert host.cores == 2 and host.corun == [1.0, 1.0, 0.9]
    assert host.message_cpu_us == pytest.approx(115.0)
    assert host.message_cpu_gbytes_per_s == pytest.approx(0.1)


def test_the_gauge_is_the_median_reading_and_required():
    assert round_gauge_s([{"gauge_s": 1e-3}, {"gauge_s": 3e-3}, {"gauge_s": 2e-3},
                          {"gauge_s": None}]) == 2e-3
    with pytest.raises(PredictError, match="no gauge"):
        round_gauge_s([{"wall_s": 1.0}])


def test_a_new_testbed_run_needs_a_table_gauged_by_todays_reference():
    with pytest.raises(PredictError, match=r"an older reference.*profile-device"):
        require_current_gauge(_profile(operators=TABLE))  # no name: the warm one of before
    other = TABLE.model_copy(update={"gauge": "probe stack 256x64x2"})
    with pytest.raises(PredictError, match="gauged by probe stack 256x64x2, not"):
        require_current_gauge(_profile(operators=other))
    require_current_gauge(_profile(operators=TABLE.model_copy(update={"gauge": GAUGE_NAME})))


def test_a_profile_without_a_gauged_table_cannot_predict():
    with pytest.raises(PredictError, match="no operator table"):
        operator_table(_profile())
    ungauged = TABLE.model_copy(update={"reference_s": None})
    with pytest.raises(PredictError, match="not gauged"):
        operator_table(_profile(operators=ungauged))


def _point(strategy: str, devices: int, host, link, gauge_s: float = 1e-3) -> dict:
    wl = workload("vit-tiny", strategy, {}, devices, 1)
    return predict_point(wl, table_device(TABLE, gauge_s, 50.0), host, link)


def test_a_slower_host_moment_slows_compute_alone_in_proportion():
    """One device, no messages: the prediction is its operators' time, and a gauge
    reading twice the table's reference doubles it exactly."""
    host = host_spec(_profile(cores=2), MessageCosts(wall_s={}, cpu_s={1: 0.0, 2: 0.0}))
    link = LinkSpec(bandwidth_mbps=100)
    at_reference = _point("single", 1, host, link)["ms"]
    assert _point("single", 1, host, link, gauge_s=2e-3)["ms"] == pytest.approx(
        2 * at_reference)
    assert at_reference > 0


def test_three_processes_on_two_cores_take_their_share():
    """Three devices of vit-tiny's voltage on a 2-core host compute at 2/3 of their
    speed alone while all three are busy: the first layer's end comes later than on
    three hosts, by at most 3/2 (some of the time only some are busy)."""
    costs = MessageCosts(wall_s={}, cpu_s={1: 0.0, 2: 0.0})
    link = LinkSpec(bandwidth_mbps=1e6, latency_ms=0.0)
    shared = _point("voltage", 3, host_spec(_profile(cores=2), costs), link)
    alone = _point("voltage", 3, host_spec(_profile(cores=3), costs), link)
    first = min(alone["layer_ms"])
    ratio = shared["layer_ms"][first] / alone["layer_ms"][first]
    assert 1.0 < ratio <= 1.5 + 1e-9


def test_timed_steps_take_their_seconds_at_the_gauged_speed():
    """Every step of single vit-tiny timed at 1 ms, the host 1.5x slower in the run than
    when they were timed: one device alone takes 1.5 ms a step."""
    wl = workload("vit-tiny", "single", {}, 1, 1)
    steps = sum(t.kind == "compute" for t in wl.tasks[0])
    timed, device = timed_steps(wl, [[1e-3] * steps], 1.5)
    host = host_spec(_profile(cores=2), MessageCosts(wall_s={}, cpu_s={1: 0.0, 2: 0.0}))
    got = predict_point(timed, device, host, LinkSpec(bandwidth_mbps=100))
    assert got["ms"] == pytest.approx(1.5 * steps)


def test_the_measured_link_by_hand():
    """Late receives of 256 B in 2 ms and of 64 KiB in 9 ms on a link carrying 1e7
    payload bytes a second: the latency is 1 ms; 64 KiB's data takes 9 - 2 - 6.5536 =
    0.4464 ms beyond two latencies and its bytes, 256 B's nothing; halfway in size,
    half of it."""
    from prismsim.testbed.network import GOODPUT
    from prismsim.validation.predict import measured_link

    costs = MessageCosts(wall_s={}, cpu_s={}, rendezvous_s={256: 2e-3, 65536: 9e-3})
    link = measured_link(80 / GOODPUT, costs)
    assert link.latency_ms == pytest.approx(1.0) and link.rendezvous
    assert link.bits_per_s == pytest.approx(8e7)
    assert dict(link.message_delay_by_bytes) == pytest.approx({256: 0.0, 65536: 446.4})
    assert link.data_delay_s((256 + 65536) // 2) == pytest.approx(1e-3 + 223.2e-6)
    assert link.data_delay_s(10**7) == pytest.approx(1e-3 + 446.4e-6)  # the end value
    with pytest.raises(PredictError, match="late-receive"):
        measured_link(100, MessageCosts(wall_s={}, cpu_s={}))


def test_link_delays_by_size_must_increase():
    with pytest.raises(ValueError, match="sizes must increase"):
        LinkSpec(bandwidth_mbps=1, message_delay_by_bytes=((100, 1.0), (100, 2.0)))


def test_the_network_cpu_is_the_hosts_busy_time_beyond_both_processes_per_byte():
    """Over a stream of 1e8 bytes the host was busy 1.5 s, the two processes 0.3 and
    0.2 s: the network took 1.0 s, 10 ns a byte; the profile's wake penalties pass on."""
    from prismsim.profiling.message_costs import _stream_costs

    device0 = {"stream_busy_s": 1.5, "stream_cpu_s": 0.3, "stream_bytes": 10**8}
    got = _stream_costs(device0, {"stream_cpu_s": 0.2})
    # the processes: 0.5 s over 1e8 bytes each sent at one end and received at the other
    assert got == pytest.approx({"network_cpu_s_per_byte": 1e-8,
                                 "stream_cpu_s_per_byte": 2.5e-9})
    assert _stream_costs({"stream_cpu_s": 0.3}, {}) == {}  # no stream (loopback)
    costs = MessageCosts(wall_s={}, cpu_s={256: 1e-4, 4096: 3e-4, 65536: 1e-3}, **got)
    host = host_spec(_profile(cores=2, wake_us_by_idle_ms=[[1.0, 100.0], [10.0, 900.0]]),
                     costs)
    assert host.network_cpu_ns_per_byte == pytest.approx(10.0)
    assert host.message_cpu_us == pytest.approx(200.0)  # the small messages' median
    assert host.message_cpu_gbytes_per_s == pytest.approx(0.4)  # 2.5 ns a byte
    # 1e6 bytes: each end 2.5 ms (the sender's in its send); on the air the receiver's
    # 2.5 ms + the network's 10 ms
    assert host.end_cpu_s(10**6) == pytest.approx(2.5e-3)
    assert host.transfer_cpu_s(10**6) == pytest.approx(12.5e-3)
    assert host.wake_s(5.5e-3) == pytest.approx(500e-6)


def test_message_costs_survive_the_csv_they_are_kept_in():
    costs = MessageCosts(wall_s={256: 1e-3}, cpu_s={256: 2e-4}, rendezvous_s={256: 3e-3},
                         exchange_s={}, network_cpu_s_per_byte=5e-9)
    assert MessageCosts.from_json(costs.as_json()) == costs
    older = '{"wall_s": {"256": 0.001}, "cpu_s": {"256": 0.0002}}'  # before the stream
    assert MessageCosts.from_json(older).network_cpu_s_per_byte is None


def test_two_pingpongs_keep_the_faster_reading_of_each_figure():
    slow = MessageCosts(wall_s={256: 8e-3, 65536: 5e-3}, cpu_s={256: 1e-4},
                        rendezvous_s={256: 3e-3}, network_cpu_s_per_byte=5e-8)
    fast = MessageCosts(wall_s={256: 1e-3, 65536: 9e-3}, cpu_s={256: 2e-4},
                        rendezvous_s={256: 4e-3}, stream_cpu_s_per_byte=1e-9)
    both = slow.least(fast)
    assert both.wall_s == {256: 1e-3, 65536: 5e-3} and both.cpu_s == {256: 1e-4}
    assert both.rendezvous_s == {256: 3e-3}
    assert both.network_cpu_s_per_byte == 5e-8 and both.stream_cpu_s_per_byte == 1e-9


def test_a_message_costs_what_the_runtime_spends_on_it():
    """The testbed's ping-pong through the runtime measured 400 us an end: that is the
    fixed cost. Without it: the plain small messages' median (100 and 200 us: 150) plus
    the loopback overhead of the profile (250 us): 400 us. The overhead is each loopback
    run's runtime less its plain 256 B message, the median of the runs."""
    from prismsim.profiling.host_profile import runtime_overhead_us
    from prismsim.validation.predict import message_fixed_s

    plain = MessageCosts(wall_s={}, cpu_s={256: 1e-4, 4096: 2e-4, 65536: 9e-4})
    assert message_fixed_s(_profile(runtime_overhead_us=250.0), plain) == pytest.approx(4e-4)
    through = MessageCosts(wall_s={}, cpu_s={256: 1e-4}, runtime_cpu_s=4e-4)
    assert message_fixed_s(_profile(runtime_overhead_us=999.0), through) == pytest.approx(4e-4)
    runs = [MessageCosts(wall_s={}, cpu_s={256: 1e-4}, runtime_cpu_s=r)
            for r in (3e-4, 5e-4, 4e-4)]
    assert runtime_overhead_us(runs) == pytest.approx(300.0)
