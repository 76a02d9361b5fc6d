"""Adaptive groups by hand, their capacity against queueing bounds, and each request's
energy."""

from __future__ import annotations

import pytest

from prismsim.serve.arrivals import arrivals_s
from prismsim.serve.engine import serve
from prismsim.serve.pools import (
    AdaptiveSetup,
    Candidate,
    distributed_sum_s,
    local_sum_s,
    serve_adaptive,
)
from prismsim.serve.requests import ServingSetup
from prismsim.serve.stats import request_table, run_summary
from prismsim.sim import DeviceSpec, LinkSpec
from prismsim.workload import Message, Task, Workload

CPU = DeviceSpec(peak_gflops=1.0, efficiency=1.0)  # 1e9 FLOPs take 1 s
FAST_LINK = LinkSpec(bandwidth_mbps=1e9, latency_ms=0)  # a 4-byte message takes ~0 s


def _compute(seconds: float) -> Task:
    return Task("compute", "c", round(seconds * 1e9))


def _local(seconds: float) -> Workload:
    return Workload({"output_device": 0}, [[_compute(seconds)]])


def _split(seconds: float, payload_bytes: int = 4) -> Workload:
    """Both devices compute ``seconds``; device 1 sends its result to device 0 (the output)."""
    msg = Message(id=0, src=1, dst=(0,), broadcast=False, tag="m0", shape=(1,),
                  payload_bytes=payload_bytes)
    return Workload({"output_device": 0},
                    [[_compute(seconds), Task("recv", "r", messages=(0,))],
                     [_compute(seconds), Task("send", "m0", messages=(0,))]], [msg])


def _group(local_s: float, split_s: float) -> AdaptiveSetup:
    return AdaptiveSetup((Candidate("single", _local(local_s)),
                          Candidate("split", _split(split_s))), devices=2)


def test_plan_sums_by_hand():
    # devices free at 0.5 and 1.3, 0.8 s each on the first free: 1.3, 2.1, 2.1 -> 5.5
    assert local_sum_s([0.5, 1.3], 0.8, 3) == pytest.approx(5.5)
    # from 1.3 (the last free), 0.5 s each: 1.8 + 2.3 + 2.8 = 6.9
    assert distributed_sum_s([0.5, 1.3], 0.5, 3) == pytest.approx(6.9)


def test_a_request_alone_takes_the_faster_way():
    """Requests 10 s apart: split (0.5 s) beats one device (0.8 s); a split of 1 s does not."""
    fast = serve_adaptive(_group(0.8, 0.5), [0.0, 10.0, 20.0], CPU, FAST_LINK)
    assert [r.choice for r in fast.requests] == ["split"] * 3
    assert [r.finish_s - r.arrival_s for r in fast.requests] == pytest.approx([0.5] * 3)
    slow = serve_adaptive(_group(0.8, 1.0), [0.0, 10.0], CPU, FAST_LINK)
    assert [(r.choice, r.devices) for r in slow.requests] == [("single", 1)] * 2
    assert [r.finish_s for r in slow.requests] == pytest.approx([0.8, 10.8])


def test_six_requests_at_once_by_hand():
    """Single 0.8 s, split 0.5 s on 2 devices, six requests at 0 (each plan summed over
    the waiting ones): r0 alone goes split (0.5 < 0.8), done 0.5. At 0.5, with 5 waiting,
    local sums 9.7 < split 10: r1 and r2 on one device each (done 1.3). Left 3 with both
    devices free at 1.3: split 6.9 < local 7.1, so r3, r4, r5 split: 1.8, 2.3, 2.8."""
    res = serve_adaptive(_group(0.8, 0.5), [0.0] * 6, CPU, FAST_LINK)
    assert [r.choice for r in res.requests] == ["split", "single", "single", "split",
                                                "split", "split"]
    assert [r.finish_s for r in res.requests] == pytest.approx(
        [0.5, 1.3, 1.3, 1.8, 2.3, 2.8], abs=1e-6)
    assert [r.start_s for r in res.requests] == pytest.approx(
        [0.0, 0.5, 0.5, 1.3, 1.8, 2.3], abs=1e-6)


def test_under_load_the_adaptive_group_serves_above_the_split_capacity():
    """Split alone serves at most 1 / 0.5 = 2 requests/s, two devices alone 2 / 0.8 = 2.5:
    at 2.3/s Poisson a fixed split group falls behind (throughput ~2/s, its capacity),
    the adaptive group keeps up (throughput the offered 2.3/s, most requests local)."""
    times = arrivals_s("poisson", 2.3, 3000, seed=3)
    fixed = serve(ServingSetup({1: _split(0.5)}), times, CPU, FAST_LINK)
    adaptive = serve_adaptive(_group(0.8, 0.5), times, CPU, FAST_LINK)
    fixed_s = run_summary(fixed, request_table(fixed, warmup=300))
    adaptive_s = run_summary(adaptive, request_table(adaptive, warmup=300))
    assert fixed_s["throughput_per_s"] == pytest.approx(2.0, rel=0.02)
    assert adaptive_s["throughput_per_s"] == pytest.approx(2.3, rel=0.05)
    assert adaptive_s["local_share"] > 0.5
    assert adaptive_s["latency_p99_s"] < 0.1 * fixed_s["latency_p99_s"]


POWERED = CPU.model_copy(update={"idle_w": 1.0, "compute_w": 5.0, "tx_w": 3.0,
                                 "rx_w": 2.0})
SLOW_LINK = LinkSpec(bandwidth_mbps=0.008, latency_ms=0)  # 1000 bytes take 1 s


def test_each_request_carries_its_active_energy():
    """Split of 1 s on both devices, 1000 bytes from device 1 to device 0 in 1 s: compute
    2 x (5 - 1) x 1, send (3 - 1) x 1, receive (2 - 1) x 1: 11 J above idle per request,
    also when two requests overlap (the second waits, its parts still 11 J)."""
    setup = ServingSetup({1: _split(1.0, payload_bytes=1000)})
    res = serve(setup, [0.0, 0.5], POWERED, SLOW_LINK)
    assert [r.energy_j for r in res.requests] == pytest.approx([11.0, 11.0])
    assert [r.finish_s for r in res.requests] == pytest.approx([2.0, 4.0])
    idle_j = sum(POWERED.idle_w * res.end_s for _ in res.devices)
    assert sum(d.energy_j for d in res.devices) == pytest.approx(idle_j + 22.0)
    rdv = serve(setup, [0.0, 0.5], POWERED,
                SLOW_LINK.model_copy(update={"rendezvous": True}))
    assert [r.energy_j for r in rdv.requests] == pytest.approx([11.0, 11.0])
