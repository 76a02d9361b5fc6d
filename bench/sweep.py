"""Sweep throughput with warm caches: a 1,001-point latency sweep (ViT-B/16: single,
voltage and prism at P = 2, 3 and four CRs, 91 bandwidths from 50 to 950 Mbit/s).

    python bench/sweep.py

The first run traces the 11 workloads (cached on disk); the timed second run
(``fresh``: every row recomputed) simulates all points and appends every row.
"""

from __future__ import annotations

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
    bandwidths = ", ".join(str(50 + 10 * i) for i in range(91))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(SCENARIO % bandwidths)
        s = load_scenario(path)
        n = len(s.grid())
        start = time.perf_counter()
        run_sweep(s, Path(tmp) / "out")
        warm_s = time.perf_counter() - start
        start = time.perf_counter()
        run_sweep(s, Path(tmp) / "out", fresh=True)
        timed_s = time.perf_counter() - start
    print(f"{n} points; first run (workloads traced or read from cache): {warm_s:.1f} s")
    print(f"warm caches: {timed_s:.2f} s, {n / timed_s:,.0f} points/s "
          "(simulation, one CSV append per row, final CSV + Parquet)")


if __name__ == "__main__":
    main()
