"""Simulator speed: points per second replaying a cached ViT-B/16 prism P=3 workload
(10 means per partition) on the 2-core CPU profile over a switched link, one point per
bandwidth, in one process (one core).

    python bench/sim_speed.py [--points 2000]
"""

from __future__ import annotations

import argparse
import time

from prismsim.executors.trace_cache import WorkloadCache
from prismsim.sim import LinkSpec, simulate
from prismsim.sim.catalog import builtin_devices


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=2000)
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


if __name__ == "__main__":
    main()
