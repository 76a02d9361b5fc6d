"""Profiles that can be trusted: interleaved windows, rates and spread by hand, the
checks that send a measurement back, co-run factors."""

from __future__ import annotations

import pytest

from prismsim.profiling.busy_rates import GAP_S, Window, busy_rates, schedule
from prismsim.profiling.host_profile import _problems, corun_factors


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
