"""The sweep: every point of a scenario's grid, resumable.

Workloads, fine-tuned weights and accuracies are computed once per distinct need (disk
caches, shared by every bandwidth and link setting) and every point is simulated. Finished rows are
appended to ``results.csv`` as they come (in short batches, each reported only once it
is on disk), so a killed sweep resumed with the same command recomputes only the points
that were in flight; at the end the table is rewritten in grid order (CSV and Parquet).
A point whose strategy cannot run on the model (tensor_parallel on more devices than KV
heads) is a row with its parameters and the reason, in the ``skipped`` column: known from
the scenario for built-in models and local directories, else once the model is loaded.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from prismsim.configuration import NO_FINETUNE
from prismsim.progress import Progress
from prismsim.scenario.grid import Point
from prismsim.scenario.load import LoadedScenario
from prismsim.sim import simulate
from prismsim.sim.memory import device_memory, memory_columns
from prismsim.sim.precision import at_precision
from prismsim.sim.sampling import sample_inferences
from prismsim.sweep import compute, exact
from prismsim.sweep.adaptive_rows import adaptive_rows, adaptive_workload_needs
from prismsim.sweep.backends import run_many
from prismsim.sweep.needs import accuracy_need, distinct, finetune_need, workload_need
from prismsim.sweep.results import RowWriter, as_written, other_columns, read_rows, write_table
from prismsim.sweep.rows import (
    NO_ACCURACY,
    accuracy_columns,
    gain_columns,
    layout,
    make_row,
    sampled_columns,
    skipped_row,
    workload_columns,
    world_columns,
)
from prismsim.sweep.timeline import record_timeline, timeline_point
from prismsim.workload import Workload


def count_tasks(s: LoadedScenario) -> int:
    """Units of work a fresh sweep reports: workloads, fine-tunings, accuracies, points."""
    points = s.grid()
    traces = {workload_need(s, p) for p in points} | adaptive_workload_needs(s, points)
    tunings = distinct(finetune_need(s, p) for p in points)
    accs = exact.plan(distinct(accuracy_need(s, p) for p in points)).evaluate
    return len(points) + len(traces) + len(tunings) + len(accs)


def run_sweep(s: LoadedScenario, out: Path | None = None, *, jobs: int = 1,
              backend: str = "local", scheduler: str | None = None, fresh: bool = False,
              progress: Progress | None = None) -> pd.DataFrame:
    """Compute every missing point of the grid; return the whole table in grid order."""
    out = Path(out or s.output)
    out.mkdir(parents=True, exist_ok=True)
    csv, points, sampled = out / "results.csv", s.grid(), s.file.samples is not None
    if csv.exists() and (fresh or other_columns(csv, sampled, s.moves)):
        csv.unlink()  # rows of another column layout (an older prismsim) are recomputed
    shutil.copyfile(s.path, out / "scenario.yaml")
    done = read_rows(csv, {p.key() for p in points})
    todo = [p for p in points if p.key() not in done]
    kw: dict[str, Any] = {"jobs": jobs, "backend": backend, "scheduler": scheduler,
                          "progress": progress}
    traces = distinct([workload_need(s, p) for p in todo]
                      + list(adaptive_workload_needs(s, points)))
    workloads = run_many(compute.trace, traces, **kw)
    skipped = {**s.skipped(), **_refused(s, todo, workloads, progress)}
    todo = [p for p in todo if p not in skipped]
    run_many(compute.finetune, distinct(finetune_need(s, p) for p in todo), **kw)
    acc_plan = exact.plan(distinct(accuracy_need(s, p) for p in todo))
    accs = exact.fill(acc_plan, run_many(compute.accuracy, acc_plan.evaluate, **kw))
    writer = RowWriter(csv, layout(sampled, s.moves))
    _simulate_all(s, todo, workloads, accs, writer, done, progress)
    extra = adaptive_rows(s, points, done, workloads, out)
    table = as_written(_in_grid_order(s, done, skipped) + extra, sampled, s.moves)
    write_table(table, out)
    _timeline(s, workloads, out)
    return table


def _in_grid_order(s: LoadedScenario, done: dict[str, Any], skipped: dict[Point, str]
                   ) -> list[dict[str, Any]]:
    """Every point's row, in grid order: what it gave, or why it was skipped."""
    return [skipped_row(s.file.name, p, skipped[p]) if p in skipped else done[p.key()]
            for p in s.every_point()]


def _refused(s: LoadedScenario, todo: list[Point], workloads: dict,
             progress: Progress | None) -> dict[Point, str]:
    """Points whose workload the strategy could not make once the model was loaded, and
    why; reported done (they cost nothing more)."""
    refused = {p: w.reason for p in todo
               if isinstance(w := workloads[workload_need(s, p)], compute.Skipped)}
    if progress and refused:
        p = next(iter(refused))
        progress(f"skipped {p.strategy} P={p.devices}: {refused[p]}", len(refused))
    return refused


def _timeline(s: LoadedScenario, workloads: dict, out: Path) -> None:
    """The scenario's timeline point, recorded for the timeline plot (none if its
    strategy cannot run on the model)."""
    p = timeline_point(s)
    if p is not None:
        need = workload_need(s, p)
        text = workloads[need] if need in workloads else compute.trace(need)
        if not isinstance(text, compute.Skipped):
            record_timeline(s, p, Workload.from_json(text), out)


def _simulate_all(s: LoadedScenario, todo: list[Point], workloads: dict, accs: dict,
                  writer: RowWriter, done: dict[str, Any], progress: Progress | None) -> None:
    """Simulate each point; its row goes to ``done`` and to the file, and is reported
    once written."""
    parsed: dict[Any, tuple[Workload, dict[str, Any]]] = {}
    name = s.file.name
    try:
        for p in todo:
            need = workload_need(s, p)
            if need not in parsed:
                wl = Workload.from_json(workloads[need])
                parsed[need] = wl, workload_columns(wl)
            wl, wl_columns = parsed[need]
            wl = at_precision(wl, p.dtype)
            result = simulate(wl, s.device_specs(p), s.link_for(p), host=s.host,
                              record=p.generate is not None,  # token times: the timeline
                              events=s.events_for(p))
            row = make_row(name, p, wl_columns, result, _accuracy(accs, s, p), wl)
            row |= memory_columns(device_memory(wl, s.device_specs(p))) | _tail(s, p, wl)
            row |= _gain(s, p, row, accs, done)
            if s.moves:
                row |= world_columns(s.trace_label, s.events_for(p), result)
            done[p.key()] = row
            _report(writer.write(row), progress)
    finally:
        _report(writer.close(), progress)


def _accuracy(accs: dict, s: LoadedScenario, p: Point) -> dict[str, Any] | None:
    """The point's accuracy; with weights at another precision than fp32, not run (the
    numerics run the fp32 weights only), said in its source."""
    acc = accs.get(accuracy_need(s, p))
    if acc is None or p.dtype == "fp32":
        return acc
    return {**NO_ACCURACY, "metric": acc["metric"],
            "accuracy_source": f"not run: {p.dtype} weights (the numerics run fp32 weights)"}


def _gain(s: LoadedScenario, p: Point, row: dict[str, Any], accs: dict,
          done: dict[str, Any]) -> dict[str, float]:
    """A fine-tuned row's gain over its plain twin, whose accuracy was evaluated in this
    run or is in a row an earlier run wrote; NaN for other rows."""
    if p.finetune == NO_FINETUNE:
        return gain_columns(row, None)
    twin = dataclasses.replace(p, finetune=NO_FINETUNE)
    acc = _accuracy(accs, s, twin) if accuracy_need(s, twin) in accs else None
    plain = accuracy_columns(acc) if acc is not None else done.get(twin.key())
    return gain_columns(row, plain)


def _tail(s: LoadedScenario, p: Point, wl: Workload) -> dict[str, float]:
    """With samples:, the point's latency over that many sampled worlds."""
    if s.file.samples is None:
        return {}
    n, seed = s.file.samples.n, s.file.samples.seed
    return sampled_columns(sample_inferences(wl, s.device_specs(p), s.link_for(p), n, seed,
                                             s.host, s.events_for(p)).summary())


def _report(rows: list[dict[str, Any]], progress: Progress | None) -> None:
    if progress and rows:
        r = rows[-1]
        progress(f"{r['strategy']} P={r['devices']} {r['bandwidth_mbps']:g} Mbit/s", len(rows))
