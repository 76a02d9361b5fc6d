"""Tails of one inference (``validation/tails.py``): measured and predicted p95 by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from prismsim.profiling.host_profile import HostProfile
from prismsim.profiling.message_costs import MessageCosts
from prismsim.sim import DeviceSpec, HostSpec, LinkSpec
from prismsim.validation.tails import measured_tail_ms, predicted_tail_ms, tail_summary
from prismsim.workload import Message, Task, Workload

PROFILE = HostProfile(concurrent_gflops={1: 50.0}, gloo_fixed_us=0.0)  # no speed variability
CPU = DeviceSpec(peak_gflops=1.0, efficiency=1.0)


def test_the_measured_tail_is_the_p95_of_the_rounds():
    # 21 rounds of 1..21 ms: the 0.95 quantile sits at order statistic 19 (from 0): 20 ms
    assert measured_tail_ms([i / 1000 for i in range(21, 0, -1)]) == pytest.approx(20.0)


def test_the_predicted_tail_draws_the_links_measured_delay():
    """1 MB from device 0 to 1 at 8 Mbit/s and 100 ms: 1.1 s. The ping-pong's extra delay
    is 0 for 90 % of messages and rises linearly to 10 ms at the last: its p95 is 5 ms,
    so the latency's p95 is 1.105 s (200 draws: within 4 ms). Nothing measured of how
    things move: no tail is predicted."""
    msg = Message(id=0, src=0, dst=(1,), broadcast=False, tag="m0", shape=(1,),
                  payload_bytes=1_000_000)
    wl = Workload({}, [[Task("send", "m0", messages=(0,))], [Task("recv", "r", messages=(0,))]],
                  [msg])
    link, host = LinkSpec(bandwidth_mbps=8, latency_ms=100), HostSpec(cores=2)
    costs = MessageCosts(wall_s={}, cpu_s={},
                         delay_us=[(0.0, 0.0), (0.9, 0.0), (1.0, 10_000.0)])
    assert predicted_tail_ms(wl, CPU, host, link, PROFILE, costs) == pytest.approx(
        1105.0, abs=4.0)
    still = MessageCosts(wall_s={}, cpu_s={})
    assert predicted_tail_ms(wl, CPU, host, link, PROFILE, still) is None


def test_the_tail_line_counts_distributed_points_within_15_percent():
    table = pd.DataFrame({"devices": [1, 2, 2, 3, 3],
                          "p95_error_pct": [40.0, 10.0, -20.0, 5.0, None]})
    assert tail_summary(table) == ("tail: predicted p95 within 15 % of measured at 2 of 3 "
                                   "distributed points (67 %; mean signed -1.7 %)")
    assert tail_summary(table.drop(columns="p95_error_pct")) is None
