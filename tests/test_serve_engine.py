"""Serving request streams: queueing theory, schedules by hand, one request = one inference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from prismsim.executors.trace_cache import WorkloadCache
from prismsim.serve.arrivals import arrivals_s
from prismsim.serve.engine import serve, serve_closed
from prismsim.serve.requests import ServingSetup
from prismsim.serve.stats import mean_ci, request_table, run_summary
from prismsim.sim import DeviceSpec, LinkSpec, simulate
from prismsim.sim.catalog import builtin_devices, builtin_links
from prismsim.workload import Message, Task, Workload

CPU = DeviceSpec(peak_gflops=1.0, efficiency=1.0)  # 1e9 FLOPs take 1 s
FAST_LINK = LinkSpec(bandwidth_mbps=1e9, latency_ms=0)  # a 4-byte message takes ~0 s


def _compute(seconds: float) -> Task:
    return Task("compute", "c", round(seconds * 1e9))


def _server(seconds: float) -> Workload:
    return Workload({}, [[_compute(seconds)]])


def _finishes(result) -> list[float | None]:
    return [r.finish_s for r in result.requests]


def test_md1_mean_wait_matches_queueing_theory():
    """Poisson arrivals, deterministic service D: M/D/1 mean wait rho D / (2 (1 - rho))
    lies within the 95 % interval of 10 replications, and utilisation is lambda D."""
    service_s, rate = 0.01, 70.0
    rho = rate * service_s
    theory_s = rho * service_s / (2 * (1 - rho))  # 11.67 ms
    setup = ServingSetup({1: _server(service_s)})
    waits, utils = [], []
    for seed in range(10):
        res = serve(setup, arrivals_s("poisson", rate, 20_000, seed), CPU, FAST_LINK)
        s = run_summary(res, request_table(res, warmup=1000))
        waits.append(s["queue_wait_mean_s"])
        utils.append(s["compute_util_max"])
    mean, half = mean_ci(waits)
    assert abs(mean - theory_s) <= half
    assert half < 0.1 * theory_s  # the interval is narrow enough to mean something
    assert np.mean(utils) == pytest.approx(rho, rel=0.02)


def test_fifo_waits_follow_lindleys_recursion():
    """W(n+1) = max(0, W(n) + D - gap(n)), request by request, for a single server."""
    service_s, arrivals = 0.01, arrivals_s("poisson", 90.0, 2000, 7)
    res = serve(ServingSetup({1: _server(service_s)}), arrivals, CPU, FAST_LINK)
    waits = request_table(res, warmup=0)["queue_wait_s"].to_numpy()
    expected = np.zeros(len(arrivals))
    for i in range(1, len(arrivals)):
        expected[i] = max(0.0, expected[i - 1] + service_s - (arrivals[i] - arrivals[i - 1]))
    assert waits == pytest.approx(expected, abs=1e-9)


def test_one_request_is_exactly_one_inference():
    """Prism P = 3 over a shared WiFi channel with rendezvous: the request's latency and
    the devices' energy are those of ``simulate``."""
    wl = WorkloadCache().get("vit-tiny", "prism", 3, cr=4)
    device = builtin_devices()["cpu-2core-2.1ghz"]
    link = builtin_links()["wifi5"].model_copy(update={"rendezvous": True})
    one = simulate(wl, device, link)
    res = serve(ServingSetup({1: wl}), [0.0], device, link)
    assert res.requests[0].finish_s == one.latency_s
    assert res.end_s == one.makespan_s
    assert [d.energy_j for d in res.devices] == [d.energy_j for d in one.devices]
    assert res.bytes_on_air == one.bytes_on_air


def _pipeline() -> Workload:
    """Device 0 computes 1 s and sends to device 1, which computes 2 s: the output."""
    msg = Message(id=0, src=0, dst=(1,), broadcast=False, tag="m0", shape=(1,),
                  payload_bytes=4)
    return Workload({"output_device": 1},
                    [[_compute(1.0), Task("send", "m0", messages=(0,))],
                     [Task("recv", "r", messages=(0,)), _compute(2.0)]], [msg])


def test_consecutive_requests_overlap_where_the_programs_leave_a_device_idle():
    """Two requests at 0: device 0 runs request 1's part at 1..2 while device 1 still
    runs request 0's (1..3), then device 1 runs request 1's at 3..5 (not 6: no overlap)."""
    res = serve(ServingSetup({1: _pipeline()}), [0.0, 0.0], CPU, FAST_LINK)
    assert _finishes(res) == pytest.approx([3.0, 5.0], abs=1e-6)
    assert [r.start_s for r in res.requests] == pytest.approx([0.0, 1.0], abs=1e-6)


def test_dynamic_batching_waits_for_a_fuller_batch_at_most_max_wait():
    """Batch of 1 takes 1 s, of 2 takes 1.5 s; max wait 0.5 s. Requests at 0 and 0.2 go
    together at 0.2 (done 1.7); the one at 3 waits alone until 3.5 (done 4.5)."""
    setup = ServingSetup({1: _server(1.0), 2: _server(1.5)}, max_batch=2, max_wait_s=0.5)
    res = serve(setup, [0.0, 0.2, 3.0], CPU, FAST_LINK)
    assert _finishes(res) == pytest.approx([1.7, 1.7, 4.5])
    assert [r.batch for r in res.requests] == [2, 2, 1]


def test_a_full_queue_drops_the_request():
    """Queue limit 1, service 1 s: at 0.1 one waits, the one at 0.2 finds the queue full."""
    setup = ServingSetup({1: _server(1.0)}, queue_limit=1)
    res = serve(setup, [0.0, 0.1, 0.2], CPU, FAST_LINK)
    assert [r.dropped for r in res.requests] == [False, False, True]
    assert _finishes(res) == pytest.approx([1.0, 2.0, None])


def test_shortest_queue_beats_round_robin_with_a_slow_group():
    """Group 0 serves in 1 s, group 1 in 3 s; requests at 0, 0.1, 1.2, 1.3. Round robin
    sends the last to group 1 (busy until 3.1: done 6.1); join-shortest-queue finds both
    groups with one request at 1.3 and picks group 0 (done 3.2)."""
    slow = CPU.model_copy(update={"peak_gflops": 1 / 3})
    arrivals = [0.0, 0.1, 1.2, 1.3]
    rr = serve(ServingSetup({1: _server(1.0)}, groups=2), arrivals, [CPU, slow], FAST_LINK)
    jsq = serve(ServingSetup({1: _server(1.0)}, groups=2, dispatch="shortest_queue"),
                arrivals, [CPU, slow], FAST_LINK)
    assert _finishes(rr) == pytest.approx([1.0, 3.1, 2.2, 6.1])
    assert _finishes(jsq) == pytest.approx([1.0, 3.1, 2.2, 3.2])
    assert [r.group for r in jsq.requests] == [0, 1, 0, 0]


def test_closed_loop_client_thinks_between_answers():
    """One client, think 1 s, service 0.5 s: requests at 1, 2.5 and 4."""
    res = serve_closed(ServingSetup({1: _server(0.5)}), 1, lambda: 1.0, 3, CPU, FAST_LINK)
    assert [r.arrival_s for r in res.requests] == pytest.approx([1.0, 2.5, 4.0])
    assert _finishes(res) == pytest.approx([1.5, 3.0, 4.5])


def test_interval_of_a_mean_uses_students_t():
    mean, half = mean_ci([1.0, 2.0, 3.0])  # sd 1, t(0.975, 2 df) = 4.303
    assert mean == 2.0 and half == pytest.approx(4.303 / np.sqrt(3))


def test_onoff_arrivals_fall_in_bursts_at_the_mean_rate():
    t = arrivals_s("onoff", 10.0, 20_000, 0, on_s=1.0, off_s=3.0)
    assert np.all(t % 4.0 < 1.0)  # every arrival inside an on period
    assert len(t) / t[-1] == pytest.approx(10.0, rel=0.03)
    assert np.all(np.diff(t) >= 0)


def test_poisson_arrivals_have_the_rate_and_scale_with_it():
    t1, t2 = arrivals_s("poisson", 1.0, 50_000, 3), arrivals_s("poisson", 4.0, 50_000, 3)
    assert len(t1) / t1[-1] == pytest.approx(1.0, rel=0.02)
    assert t2 == pytest.approx(t1 / 4)  # one seed, the same arrivals stretched
    gaps = np.diff(t1)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.03)  # exponential: CV 1
    assert list(itertools.islice(arrivals_s("constant", 4.0, 3, 0), 3)) == [0, 0.25, 0.5]


def _same_run(a, b) -> None:
    assert [r.start_s for r in a.requests] == pytest.approx(
        [r.start_s for r in b.requests], abs=1e-9)
    assert _finishes(a) == pytest.approx(_finishes(b), abs=1e-9)
    for da, db in zip(a.devices, b.devices, strict=True):
        for f in ("compute_s", "staging_s", "wait_s", "tx_s", "rx_s", "energy_j"):
            assert getattr(da, f) == pytest.approx(getattr(db, f), rel=1e-9, abs=1e-9), f
        assert (da.bytes_sent, da.bytes_received) == (db.bytes_sent, db.bytes_received)
    assert a.bytes_on_air == b.bytes_on_air and a.end_s == pytest.approx(b.end_s)


@pytest.mark.parametrize("strategy, devices, options, link, groups, batch", [
    ("prism", 3, {"cr": 4}, "wifi5", 1, 1),  # shared channel, rendezvous
    ("voltage", 2, {}, "ethernet-1g", 2, 1),  # two groups on switched ports
    ("single", 1, {}, "ethernet-1g", 3, 2),  # three boards, batches of up to 2
])
def test_requests_alone_on_idle_devices_take_the_one_inference_timeline(
        strategy, devices, options, link, groups, batch):
    """With and without the shortcut, every request starts and ends at the same time and
    every device's totals agree, at a load where some requests find the devices idle
    and others queue."""
    cache, device = WorkloadCache(), builtin_devices()["cpu-2core-2.1ghz"]
    wls = {b: cache.get("vit-tiny", strategy, devices, batch=b, **options)
           for b in range(1, batch + 1)}
    net = builtin_links()[link].model_copy(update={"rendezvous": devices > 1})
    one = simulate(wls[1], device, net).latency_s
    times = arrivals_s("poisson", 0.5 * groups / one, 400, 11)
    runs = [serve(ServingSetup(wls, groups, "shortest_queue", max_batch=batch,
                               max_wait_s=0.2 * one, shortcut=cut), times, device, net)
            for cut in (True, False)]
    _same_run(*runs)
    waited = [r for r in runs[0].requests if r.start_s - r.arrival_s > 1e-9]
    assert 0 < len(waited) < len(times)  # both kinds of request occur


def test_shared_channel_utilisation_counts_every_hop():
    """Device 0 computes 1 s, then 1000 bytes go to device 1 at 8000 bit/s (1 s of air);
    device 1 computes 2 s. Direct: the channel carries 1 s of the 4 s run; through an
    access point each frame crosses twice: 2 s of the 5 s run."""
    msg = Message(id=0, src=0, dst=(1,), broadcast=False, tag="m0", shape=(1,),
                  payload_bytes=1000)
    wl = Workload({"output_device": 1},
                  [[_compute(1.0), Task("send", "m0", messages=(0,))],
                   [Task("recv", "r", messages=(0,)), _compute(2.0)]], [msg])
    figures = []
    for relay in (False, True):
        link = LinkSpec(bandwidth_mbps=0.008, latency_ms=0, medium="shared", relay=relay)
        res = serve(ServingSetup({1: wl}), [0.0], CPU, link)
        figures.append(run_summary(res, request_table(res, 0))["channel_util"])
    assert figures == pytest.approx([1 / 4, 2 / 5])
