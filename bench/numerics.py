"""Numerics executor overhead: ViT-B/16 at batch 8, strategies run in one process, against
one plain HF forward of the same batch (default attention and eager).

    python bench/numerics.py [--repeats 5] [--batch 8]

Prints the median wall time of each and the ratio to the HF forward. Target: <= 1.3x.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from prismsim import run_numerics
from prismsim.models.builtin import build_builtin
from prismsim.models.catalog import BUILTINS
from prismsim.models.load import adapt, random_inputs


def median_s(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    hf_default = build_builtin("vit-base")  # same seed, same weights
    hf_default.set_attn_implementation("sdpa")
    stack = adapt(build_builtin("vit-base"), name="vit-base")
    inputs = random_inputs(stack, batch=args.batch)
    print(f"ViT-B/16 ({BUILTINS['vit-base'].about}), batch {args.batch}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    cases = {
        "HF forward (sdpa)": lambda: hf_default(**inputs),
        "HF forward (eager)": lambda: stack.hf(**inputs),
        "single": lambda: run_numerics(stack, inputs, "single"),
        "voltage P=2": lambda: run_numerics(stack, inputs, "voltage", 2),
        "prism P=2 CR=4": lambda: run_numerics(stack, inputs, "prism", 2, cr=4),
        "tensor_parallel P=2": lambda: run_numerics(stack, inputs, "tensor_parallel", 2),
    }
    base = None
    for name, fn in cases.items():
        t = median_s(fn, args.repeats)
        base = base or t
        print(f"{name:22s} {t * 1000:8.1f} ms   {t / base:5.2f}x")


if __name__ == "__main__":
    main()
