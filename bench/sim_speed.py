"""Simulator speed: points per second replaying a cached ViT-B/16 prism P=3 workload
(10 means per partition) on the 2-core CPU profile over a switched link, one point per
bandwidth, in one process (one core); then Monte Carlo: the p99 latency of ViT-B/16
prism P=3 (CR 4) on three Jetson Orin Nano 15 W boards over WiFi 5, variability on (the
catalog's), from 2,000 sampled inferences (target: within 1 s).

    python bench/sim_speed.py [--points 2000] [--samples 2000]
"""

from __future__ import annotations

import argparse
import os
import time

from prismsim.executors.trace_cache import WorkloadCache
from prismsim.sim import LinkSpec, simulate
from prismsim.sim.catalog import builtin_devices, builtin_links
from prismsim.sim.sampling import sample_inferences


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=2000)
    args = ap.parse_args()
    wl = WorkloadCache().get("vit-base", "prism", 3, segments=10)  # traced once, then cached
    cpu = builtin_devices()["cpu-2core-2.1ghz"]
    links = [LinkSpec(bandwidth_mbps=50 + i % 951, latency_ms=1) for i in range(args.points)]
    simulate(wl, cpu, links[0])  # warm-up: prepares the per-device task lists
    start = time.perf_counter()
    for link in links:
        simulate(wl, cpu, link)
    elapsed = time.perf_counter() - start
    n_tasks = sum(len(t) for t in wl.tasks)
    print(f"workload: {n_tasks} tasks, {len(wl.messages)} messages on 3 devices")
    print(f"{args.points} points in {elapsed:.2f} s: {args.points / elapsed:,.0f} points/s")
    timed = [simulate(wl, cpu, links[0], record=True) for _ in range(20)]
    del timed
    start = time.perf_counter()
    for link in links[:200]:
        simulate(wl, cpu, link, record=True)
    print(f"with a recorded timeline: {200 / (time.perf_counter() - start):,.0f} points/s")
    sampled(args.samples)


def sampled(n: int) -> None:
    """The p99 of one configuration from ``n`` sampled inferences, timed."""
    wl = WorkloadCache().get("vit-base", "prism", 3, cr=4)
    board, wifi = builtin_devices()["jetson-orin-nano-8gb-15w"], builtin_links()["wifi5"]
    assert board.variability and wifi.variability, "the catalog gives their variability"
    mean_s = simulate(wl, board, wifi).latency_s
    sample_inferences(wl, board, wifi, 20, seed=1)  # warm-up: prepares each device's steps
    cpu0, start = time.process_time(), time.perf_counter()
    s = sample_inferences(wl, board, wifi, n, seed=0)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    info = s.summary()
    print(f"{n} sampled inferences in {wall:.2f} s wall, {cpu:.2f} s CPU (load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores): mean-time replay "
          f"{mean_s * 1e3:.1f} ms; sampled mean {info['latency_mean_s'] * 1e3:.1f} ms, p50 "
          f"{info['latency_p50_s'] * 1e3:.1f}, p95 {info['latency_p95_s'] * 1e3:.1f}, p99 "
          f"{info['latency_p99_s'] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
