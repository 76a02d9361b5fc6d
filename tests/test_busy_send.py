"""A message sent after its sender computed with every core of a shared host busy arrives
later (``HostSpec.busy_send_us_by_busy_ms``, measured by ``profiling/busy_exchange.py``):
schedules worked out by hand."""

from __future__ import annotations

import pytest

from prismsim.profiling.busy_exchange import (
    BUSY_MS,
    busy_send_us,
    loopback_busy_send_us,
    mean_pairs,
)
from prismsim.profiling.message_costs import MessageCosts
from prismsim.sim import DeviceSpec, HostSpec, LinkSpec, simulate
from prismsim.workload import Message, Task, Workload

CPU = DeviceSpec(peak_gflops=1.0, efficiency=1.0)  # 1e9 FLOPs take 1 s alone
FAST_LINK = LinkSpec(bandwidth_mbps=1e9, latency_ms=0)  # a 4-byte message takes ~0 s
# 0 at 0, 2 ms after 4 ms busy and beyond: 0.5 ms per busy ms below 4
HOST = HostSpec(cores=2, busy_send_us_by_busy_ms=((4.0, 2000.0),))


def _compute(ms: float) -> Task:
    return Task("compute", "c", int(ms * 1e6))


def _send(i: int) -> Task:
    return Task("send", f"m{i}", messages=(i,))


def _recv(i: int) -> Task:
    return Task("recv", f"r{i}", messages=(i,))


def _msg(i: int, src: int, dst: int) -> Message:
    return Message(id=i, src=src, dst=(dst,), broadcast=False, tag=f"m{i}", shape=(1,),
                   payload_bytes=4)


def test_the_table_is_linear_from_zero_and_flat_beyond():
    host = HostSpec(cores=2, busy_send_us_by_busy_ms=((1.0, 1000.0), (4.0, 2500.0)))
    assert [host.busy_send_s(ms * 1e-3) * 1e3 for ms in (0, 0.5, 1, 2.5, 10)] == \
        pytest.approx([0.0, 0.5, 1.0, 1.75, 2.5])
    assert HostSpec(cores=2).busy_send_s(1.0) == 0.0


@pytest.mark.parametrize("rendezvous", [False, True])
def test_an_exchange_after_both_computed_waits_the_measured_extra(rendezvous):
    """Two devices on two cores compute 5 ms at once (every core busy), then exchange:
    each message arrives 2 ms late, so both end at 7 ms (5 ms without the table)."""
    link = FAST_LINK.model_copy(update={"rendezvous": rendezvous})
    wl = Workload({}, [[_compute(5), _send(0), _recv(1)], [_compute(5), _send(1), _recv(0)]],
                  [_msg(0, 0, 1), _msg(1, 1, 0)])
    assert simulate(wl, CPU, link, host=HOST).latency_s * 1e3 == pytest.approx(7.0)
    assert simulate(wl, CPU, link, host=HostSpec(cores=2)).latency_s * 1e3 == \
        pytest.approx(5.0)


def test_a_device_computing_alone_sends_at_once():
    """Device 0 computes 5 ms while device 1 waits (one core busy of two), then device 1
    computes 5 ms while device 0 waits: never every core busy, so 10 ms."""
    wl = Workload({}, [[_compute(5), _send(0), _recv(1)], [_recv(0), _compute(5), _send(1)]],
                  [_msg(0, 0, 1), _msg(1, 1, 0)])
    assert simulate(wl, CPU, FAST_LINK, host=HOST).latency_s * 1e3 == pytest.approx(10.0)


def test_only_the_time_with_every_core_busy_counts():
    """Device 0 computes 4 ms; device 2 computes 1 ms beside it (two of two cores busy for
    1 ms), device 1 waits for device 0's message: it arrives 0.5 ms late, at 4.5 ms."""
    wl = Workload({}, [[_compute(4), _send(0)], [_recv(0)], [_compute(1)]], [_msg(0, 0, 1)])
    assert simulate(wl, CPU, FAST_LINK, host=HOST).latency_s * 1e3 == pytest.approx(4.5)


def test_a_wait_starts_a_new_busy_stretch():
    """The exchange of 5 ms computing (7 ms), then 1 ms each and another exchange: the
    wait before it started a new stretch of 1 ms, so 0.5 ms late: 7 + 1 + 0.5 ms."""
    wl = Workload({}, [[_compute(5), _send(0), _recv(1), _compute(1), _send(2), _recv(3)],
                       [_compute(5), _send(1), _recv(0), _compute(1), _send(3), _recv(2)]],
                  [_msg(0, 0, 1), _msg(1, 1, 0), _msg(2, 0, 1), _msg(3, 1, 0)])
    assert simulate(wl, CPU, FAST_LINK, host=HOST).latency_s * 1e3 == pytest.approx(8.5)


def test_the_probe_reports_each_stretch_over_none():
    """Mean exchanges of 0.3 ms after none, 1.1 / 2.4 / 0.2 ms after 1 / 4 / 16 ms busy:
    0.8 and 2.1 ms more, and nothing below zero."""
    waits = {0.0: 0.3e-3, 1.0: 1.1e-3, 4.0: 2.4e-3, 16.0: 0.2e-3}
    assert busy_send_us(waits) == [(1.0, 800.0), (4.0, 2100.0), (16.0, 0.0)]


def test_two_measurements_are_averaged_not_the_smaller_kept():
    a, b = [(1.0, 800.0), (4.0, 2100.0)], [(1.0, 400.0), (4.0, 1100.0)]
    assert mean_pairs(a, b) == [(1.0, 600.0), (4.0, 1600.0)]
    assert mean_pairs(a, []) == a and mean_pairs([], b) == b
    costs = MessageCosts(wall_s={}, cpu_s={}, busy_send_us=a)
    assert costs.least(MessageCosts(wall_s={}, cpu_s={}, busy_send_us=b)).busy_send_us == \
        [(1.0, 600.0), (4.0, 1600.0)]
    assert MessageCosts.from_json(costs.as_json()).busy_send_us == a


def test_three_processes_close_the_ring_on_loopback():
    """The probe over three GLOO processes (each sends to the next, receives from the one
    before: a wrong neighbour would never be answered): one extra per stretch, in order."""
    extras = loopback_busy_send_us(3)
    assert [ms for ms, _ in extras] == list(BUSY_MS)
    assert all(us >= 0 for _, us in extras)
