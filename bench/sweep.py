"""Sweep throughput with warm caches: a 1,001-point latency sweep (ViT-B/16: single,
voltage and prism at P = 2, 3 and four CRs, 91 bandwidths from 50 to 950 Mbit/s).

    python bench/sweep.py [--repeats 5]

The first run traces the 11 workloads (cached on disk); each timed run (``fresh``: every
row recomputed) simulates all points, writes every row to results.csv and rewrites the
table as CSV and Parquet at the end. Prints the median and best of the repeats, wall and
CPU, and the machine's load average (shared machines drift: compare runs of one session).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from prismsim.scenario import load_scenario
from prismsim.sweep.run import run_sweep

SCENARIO = """name: bench
model: {name: vit-base}
strategies: [single, voltage, prism]
devices: {count: [1, 2, 3]}
prism: {cr: [2, 4, 8, 16]}
network: {link: ethernet-1g, bandwidth_mbps: [%s], latency_ms: 1}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    bandwidths = ", ".join(str(50 + 10 * i) for i in range(91))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(SCENARIO % bandwidths)
        s = load_scenario(path)
        n = len(s.grid())
        start = time.perf_counter()
        run_sweep(s, Path(tmp) / "out")
        first_s = time.perf_counter() - start
        walls, cpus = [], []
        for _ in range(args.repeats):
            start, cpu0 = time.perf_counter(), time.process_time()
            run_sweep(s, Path(tmp) / "out", fresh=True)
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu0)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{n} points; first run (workloads traced or read from cache): {first_s:.1f} s")
    print(f"warm caches, {args.repeats} runs: median {statistics.median(walls):.2f} s wall = "
          f"{n / statistics.median(walls):,.0f} points/s (best {n / min(walls):,.0f}); "
          f"median CPU {statistics.median(cpus):.2f} s = "
          f"{n / statistics.median(cpus):,.0f} points per CPU-second")
    print(f"load average (1, 5, 15 min): {load} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
