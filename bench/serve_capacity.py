"""Serving speed: the capacity of ViT-B/16 prism P=3 (10 means per partition) on the
2-core CPU profile over switched gigabit Ethernet, Poisson arrivals, by bisection over
12 rates x 5 replications x 2,000 requests, every message of every request simulated,
in one process (one core). The SLO is twice one inference on idle devices.

    python bench/serve_capacity.py [--requests 2000] [--replications 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from prismsim.executors.trace_cache import WorkloadCache
from prismsim.serve.file import load_serve
from prismsim.serve.run import CAPACITY_STEPS, run_serving
from prismsim.sim import simulate
from prismsim.sim.catalog import builtin_devices, builtin_links

FILE = """name: bench
model: {{name: vit-base}}
link: ethernet-1g
configurations:
  - {{strategy: prism, devices: 3, segments: 10, profile: cpu-2core-2.1ghz}}
serving: {{arrivals: poisson, requests: {n}, warmup: {w}, replications: {r},
          slo_p99_ms: {slo}}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--replications", type=int, default=5)
    args = ap.parse_args()
    wl = WorkloadCache().get("vit-base", "prism", 3, segments=10)  # traced once, then cached
    one_s = simulate(wl, builtin_devices()["cpu-2core-2.1ghz"],
                     builtin_links()["ethernet-1g"]).latency_s
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(FILE.format(n=args.requests, w=args.requests // 10,
                                    r=args.replications, slo=2 * one_s * 1e3))
        start, cpu = time.perf_counter(), time.process_time()
        result = run_serving(load_serve(path), Path(tmp) / "out", lambda label, n=1: None)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    cap = result.capacity.iloc[0] if result.capacity is not None else None
    n = CAPACITY_STEPS * args.replications * args.requests
    print(f"one inference {one_s * 1e3:.1f} ms; capacity {cap['capacity_per_s']:.2f} req/s "
          f"(upper bound {cap['upper_bound_per_s']:.2f}) within p99 {2 * one_s * 1e3:.1f} ms")
    print(f"{CAPACITY_STEPS} rates x {args.replications} replications x {args.requests} "
          f"requests = {n} requests in {wall:.1f} s wall, {cpu:.1f} s CPU: "
          f"{wall / n * 1e3:.3f} ms a request; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
