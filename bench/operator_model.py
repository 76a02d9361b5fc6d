"""The shape-aware compute model against timed forwards of models it never saw whole:
measure this host's operator table (matrix products over a grid of sizes, element-wise
kinds, views; one torch thread; gauged by a gauge's reference), then predict the
single-device forward of each model from the operators of its traced steps, and time
that forward (the same per-device program, one thread, median of repeats) with the
gauge's reference timed around it: the prediction at that gauged speed is what counts.

    python bench/operator_model.py [--models vit-base bert-base gpt2] [--table FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import yaml

from prismsim.cost.op_table import OperatorTable
from prismsim.executors.memory import run_in_memory
from prismsim.executors.trace_cache import WorkloadCache
from prismsim.models.load import load_model, random_inputs
from prismsim.profiling.gauge import gauge_s
from prismsim.profiling.operators import measure_operator_table
from prismsim.strategies import make_options, make_programs
from prismsim.strategies.contexts import make_contexts


def timed_forward_s(model: str, repeats: int) -> float:
    """Median seconds of the single-device program, one thread."""
    stack = load_model(model)
    inputs = random_inputs(stack)
    opts = make_options("single")
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):
            programs = make_programs("single", make_contexts(stack, inputs, 1), stack, inputs,
                                     opts)
            start = time.perf_counter()
            run_in_memory(programs)
            if i:  # the first warms up
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["vit-base", "bert-base", "gpt2"])
    ap.add_argument("--table", type=Path, default=None, help="a saved table (YAML)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.table:
        table = OperatorTable.model_validate(yaml.safe_load(args.table.read_text()))
    else:
        start = time.perf_counter()
        table, spread = measure_operator_table("bench/operator_model.py")
        print(f"operator table measured in {time.perf_counter() - start:.1f} s "
              f"(median spread of its passes {100 * spread:.1f} %, gauged)")
        Path("/tmp/optable.yaml").write_text(yaml.safe_dump(table.model_dump(mode="json")))
    raw, gauged = [], []
    for model in args.models:
        wl = WorkloadCache().get(model, "single", 1)
        steps = [t.ops for t in wl.tasks[0] if t.kind == "compute"]
        before = gauge_s()
        measured = timed_forward_s(model, args.repeats)
        now_s = (before + gauge_s()) / 2  # the gauge's reference while the model ran
        predicted = sum(table.seconds(ops) for ops in steps)
        at_speed = sum(table.at_speed(now_s).seconds(ops) for ops in steps)
        raw.append(100 * (predicted - measured) / measured)
        gauged.append(100 * (at_speed - measured) / measured)
        print(f"{model:14s} timed {measured * 1e3:8.1f} ms   predicted {predicted * 1e3:8.1f} ms"
              f" ({raw[-1]:+5.1f} %), at the gauged speed {at_speed * 1e3:8.1f} ms "
              f"({gauged[-1]:+5.1f} %; host {now_s / table.reference_s:.2f}x the table's time)")
    print(f"mean absolute error {statistics.mean(abs(e) for e in raw):.1f} %, "
          f"{statistics.mean(abs(e) for e in gauged):.1f} % at the gauged speed; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
