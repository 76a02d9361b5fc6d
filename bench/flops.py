"""Workload tracing cost: a cold fvcore trace of ViT-B/16 prism on 3 devices, then cache hits.

    python bench/flops.py [--repeats 20]

Uses a fresh temporary cache directory, so the first call always traces.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from prismsim.executors.trace_cache import WorkloadCache


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = WorkloadCache(Path(tmp))
        start = time.perf_counter()
        wl = cache.get("vit-base", "prism", 3, segments=10)
        cold_s = time.perf_counter() - start
        hits = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            cache.get("vit-base", "prism", 3, segments=10)
            hits.append(time.perf_counter() - start)
    print(f"ViT-B/16 prism P=3, 10 means: {sum(wl.flops_per_device()) / 1e9:.2f} GFLOPs, "
          f"{len(wl.messages)} messages, {sum(len(t) for t in wl.tasks)} tasks")
    print(f"cold trace (model build + fvcore): {cold_s:8.2f} s")
    print(f"cache hit, median of {args.repeats}:   {statistics.median(hits) * 1000:8.2f} ms")


if __name__ == "__main__":
    main()
