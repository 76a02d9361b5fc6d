"""``prismsim sweep``: every point of a scenario's grid, resumable.

Workloads and accuracies are computed once per distinct need (disk caches, shared by
every bandwidth and link setting) and every point is simulated. Each finished row is
appended to ``results.csv`` at once, so a killed sweep resumed with the same command
recomputes nothing it wrote; at the end the table is rewritten in grid order (CSV and
Parquet), the plots are drawn and a summary is returned.
"""

from __future__ import annotations

import csv as csvlib
import hashlib
import io
import json
import math
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from prismsim.adaptive import SYSTEM_COLUMNS, Candidate, PerformanceMap, build_map, choose
from prismsim.cost.cache import WorkloadCache
from prismsim.cost.table import comm_bytes_per_layer, pdplc_tokens
from prismsim.metrics import LOWER_IS_BETTER
from prismsim.scenario import LoadedScenario, Point, _listed, adaptive_configs
from prismsim.sim import SimResult, simulate
from prismsim.workload import Workload

Progress = Callable[[str], None]


def workload_spec(s: LoadedScenario, p: Point) -> tuple:
    """What decides a point's workload (not the hardware): shared across bandwidths."""
    return (p.architecture or p.model, p.strategy, p.devices, json.dumps(p.options()),
            p.tokens, p.batch, p.wire, json.dumps(s.weights(p)))


def accuracy_spec(s: LoadedScenario, p: Point) -> tuple | None:
    d = s.spec.dataset
    if d is None:
        return None
    weights = s.weights(p)  # a speed split changes the partitions, hence the accuracy
    options = {**p.options(), **({"weights": weights} if weights else {})}
    return (p.model, d.name, d.split, d.limit, d.batch, p.strategy, p.devices,
            json.dumps(options))


def _trace(spec: tuple) -> str:
    model, strategy, devices, options, tokens, batch, wire, weights = spec
    wl = WorkloadCache().get(model, strategy, devices, tokens=tokens, batch=batch, wire=wire,
                             weights=json.loads(weights), **json.loads(options))
    return wl.to_json()  # plain text: travels back from another process or machine


def _evaluate(spec: tuple) -> dict[str, Any]:
    from prismsim.accuracy import evaluate

    model, dataset, split, limit, batch, strategy, devices, options = spec
    try:
        r = evaluate(model, dataset, strategy, devices, split=split, limit=limit, batch=batch,
                     **json.loads(options))
    except (OSError, ValueError, RuntimeError) as err:  # offline hub model or dataset
        return {"metric": None, "value": float("nan"), "top1_agreement": float("nan"),
                "mean_kl": float("nan"), "accuracy_source": f"unavailable: {err}"}
    return {k: r[k] for k in ("metric", "value", "top1_agreement", "mean_kl",
                              "accuracy_source")}


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_many(fn: Callable[[Any], Any], specs: list, *, jobs: int, executor: str,
             scheduler: str | None, progress: Progress | None) -> dict:
    """fn over specs: in this process, in local processes, or on a Dask cluster."""
    if not specs:
        return {}
    if executor == "dask":
        return _run_dask(fn, specs, scheduler, progress)
    out = {}
    if jobs <= 1:
        for spec in specs:
            out[spec] = fn(spec)
            _tick(progress, spec)
        return out
    import os

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(threads,)) as pool:
        for spec, result in zip(specs, pool.map(fn, specs), strict=True):
            out[spec] = result
            _tick(progress, spec)
    return out


def _run_dask(fn: Callable[[Any], Any], specs: list, scheduler: str | None,
              progress: Progress | None) -> dict:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise RuntimeError("the dask executor needs the extra: pip install 'prismsim[dask]'") \
            from None
    cluster = None if scheduler else LocalCluster(n_workers=2, threads_per_worker=1,
                                                   processes=True, dashboard_address=None)
    with Client(scheduler or cluster) as client:
        futures = client.map(fn, specs, pure=False)
        out = {}
        for spec, fut in zip(specs, futures, strict=True):
            out[spec] = fut.result()
            _tick(progress, spec)
    if cluster is not None:
        cluster.close()
    return out


def _tick(progress: Progress | None, spec: Any) -> None:
    if progress:
        progress(str(spec[:3]))


COLUMNS = [
    "point_id", "scenario", "model", "latency_model", "strategy", "devices", "cr", "segments",
    "device_profile", "link", "medium", "bandwidth_mbps", "latency_ms", "broadcast",
    "rendezvous", "split", "batch", "wire", "tokens",
    "latency_s", "energy_j", "bytes_on_air", "bytes_sent", "compute_s", "comm_s", "idle_s",
    "compute_s_per_device", "comm_s_per_device", "idle_s_per_device", "energy_j_per_device",
    "gflops_total", "gflops_per_device", "pdplc_tokens", "comm_bytes_per_device_per_layer",
    "metric", "accuracy", "top1_agreement", "mean_kl", "accuracy_source", "adaptive_choice",
]


def _per_device(values: Iterable[float]) -> str:
    return json.dumps([round(v, 9) for v in values])


def make_row(s: LoadedScenario, p: Point, wl: Workload, r: SimResult,
             acc: dict[str, Any] | None) -> dict[str, Any]:
    """One results row; per-device breakdowns as JSON lists, their busiest value beside."""
    flops = wl.flops_per_device()
    idle = [r.idle_s(i) for i in range(len(r.devices))]
    acc = acc or {"metric": None, "value": float("nan"), "top1_agreement": float("nan"),
                  "mean_kl": float("nan"), "accuracy_source": "no dataset in the scenario"}
    return {
        "point_id": p.key(), "scenario": s.spec.name, "model": p.model,
        "latency_model": p.architecture or p.model, "strategy": p.strategy,
        "devices": p.devices, "cr": p.cr, "segments": p.segments,
        "device_profile": p.device_profile, "link": p.link, "medium": p.medium,
        "bandwidth_mbps": p.bandwidth_mbps, "latency_ms": p.latency_ms,
        "broadcast": p.broadcast, "rendezvous": p.rendezvous, "split": p.split,
        "batch": p.batch, "wire": p.wire,
        "tokens": wl.meta["tokens"],
        "latency_s": r.latency_s, "energy_j": r.energy_j, "bytes_on_air": r.bytes_on_air,
        "bytes_sent": sum(d.bytes_sent for d in r.devices),
        "compute_s": max(d.compute_s for d in r.devices),
        "comm_s": max(d.comm_s for d in r.devices), "idle_s": max(idle),
        "compute_s_per_device": _per_device(d.compute_s for d in r.devices),
        "comm_s_per_device": _per_device(d.comm_s for d in r.devices),
        "idle_s_per_device": _per_device(idle),
        "energy_j_per_device": _per_device(d.energy_j for d in r.devices),
        "gflops_total": sum(flops) / 1e9, "gflops_per_device": max(flops) / 1e9,
        "pdplc_tokens": pdplc_tokens(wl), "comm_bytes_per_device_per_layer":
            comm_bytes_per_layer(wl),
        "metric": acc["metric"], "accuracy": acc["value"],
        "top1_agreement": acc["top1_agreement"], "mean_kl": acc["mean_kl"],
        "accuracy_source": acc["accuracy_source"], "adaptive_choice": None,
    }


def read_rows(csv: Path, grid_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Rows already written for points of this grid (a torn last line is dropped)."""
    if not csv.exists() or csv.stat().st_size == 0:
        return {}
    with open(csv, newline="") as f:
        records = list(csvlib.reader(f))
    whole = [r for r in records[1:] if len(r) == len(records[0]) and r[0] in grid_ids]
    buf = io.StringIO()
    csvlib.writer(buf, lineterminator="\n").writerows([records[0], *whole])
    df = pd.read_csv(io.StringIO(buf.getvalue()), dtype={"point_id": str})
    df = df.dropna(subset=["latency_s"]).drop_duplicates("point_id", keep="last")
    return {row["point_id"]: row for row in df.to_dict("records")}


def _other_columns(csv: Path) -> bool:
    """Whether results.csv has a header other than COLUMNS (written by another version)."""
    with open(csv, newline="") as f:
        header = next(csvlib.reader(f), None)
    return header is not None and header != COLUMNS


class RowWriter:
    """Appends rows to results.csv, one complete flushed line each: a kill loses at most
    the row being written (a torn last line is ended here and dropped on resume)."""

    def __init__(self, csv: Path):
        new = not csv.exists() or csv.stat().st_size == 0
        torn = False
        if not new:
            with open(csv, "rb") as f:
                f.seek(-1, 2)
                torn = f.read(1) != b"\n"
        self.file = open(csv, "a", newline="")  # noqa: SIM115 (closed in close())
        self.writer = csvlib.writer(self.file, lineterminator="\n")  # floats as repr()
        if torn:
            self.file.write("\n")
        if new:
            self.writer.writerow(COLUMNS)

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _write_table(df: pd.DataFrame, out: Path) -> None:
    for name, write in (("results.csv", lambda p: df.to_csv(p, index=False)),
                        ("results.parquet", lambda p: df.to_parquet(p, index=False))):
        tmp = out / f".{name}.tmp"
        write(tmp)
        tmp.replace(out / name)  # atomic: a reader sees the old or the new table


def run_sweep(s: LoadedScenario, out: Path | None = None, *, jobs: int = 1,
              executor: str = "local", scheduler: str | None = None, fresh: bool = False,
              progress: Progress | None = None) -> pd.DataFrame:
    """Compute every missing point of the grid; return the whole table in grid order."""
    out = Path(out or s.output)
    out.mkdir(parents=True, exist_ok=True)
    csv, points = out / "results.csv", s.grid()
    if csv.exists() and (fresh or _other_columns(csv)):
        csv.unlink()  # rows of another column layout (an older prismsim) are recomputed
    shutil.copyfile(s.path, out / "scenario.yaml")
    done = read_rows(csv, {p.key() for p in points})
    todo = [p for p in points if p.key() not in done]
    kw = {"jobs": jobs, "executor": executor, "scheduler": scheduler, "progress": progress}
    traces = {workload_spec(s, p) for p in todo} | adaptive_trace_specs(s, points)
    workloads = run_many(_trace, sorted(traces, key=str), **kw)
    accs = run_many(_evaluate, sorted({a for p in todo if (a := accuracy_spec(s, p))},
                                      key=str), **kw)
    _simulate_all(s, todo, workloads, accs, RowWriter(csv), done, progress)
    extra = adaptive_rows(s, points, done, workloads, out)
    table = pd.DataFrame([done[p.key()] for p in points] + extra, columns=COLUMNS)
    table = pd.read_csv(_roundtrip(table), dtype={"point_id": str})
    _write_table(table, out)
    return table


def _simulate_all(s: LoadedScenario, todo: list[Point], workloads: dict, accs: dict,
                  writer: RowWriter, done: dict[str, Any], progress: Progress | None) -> None:
    cache: dict[tuple, Workload] = {}
    try:
        for p in todo:
            spec = workload_spec(s, p)
            if spec not in cache:
                cache[spec] = Workload.from_json(workloads[spec])
            result = simulate(cache[spec], s.device_specs(p), s.link_for(p))
            row = make_row(s, p, cache[spec], result, accs.get(accuracy_spec(s, p)))
            writer.write(row)
            done[p.key()] = row
            if progress:
                progress(f"{p.strategy} P={p.devices} {p.options()} {p.bandwidth_mbps:g} Mbit/s")
    finally:
        writer.close()


def _roundtrip(df: pd.DataFrame) -> Any:
    """Fresh rows and rows read back from CSV: one representation (as the file has it)."""
    return io.StringIO(df.to_csv(index=False))


def count_tasks(s: LoadedScenario) -> int:
    points = s.grid()
    traces = {workload_spec(s, p) for p in points} | adaptive_trace_specs(s, points)
    return (len(points) + len(traces)
            + len({a for p in points if (a := accuracy_spec(s, p))}))


def timeline_point(s: LoadedScenario) -> Point | None:
    """The first grid point matching the scenario's ``timeline:`` choice."""
    t = s.spec.timeline
    for p in s.grid():
        if p.strategy == t.strategy and (t.devices is None or p.devices == t.devices) and (
                t.bandwidth_mbps is None or p.bandwidth_mbps == t.bandwidth_mbps):
            return p
    return None


def record_timeline(s: LoadedScenario, out: Path) -> tuple[list, str] | None:
    """Simulate the timeline point once more with spans recorded; saved for re-plotting."""
    p = timeline_point(s)
    if p is None:
        return None
    wl = Workload.from_json(_trace(workload_spec(s, p)))
    spans = simulate(wl, s.device_specs(p), s.link_for(p), record=True).spans
    title = (f"{p.architecture or p.model} {p.strategy} P={p.devices} {p.options() or ''} on "
             f"{p.device_profile}, {p.bandwidth_mbps:g} Mbit/s")
    (out / "timeline.json").write_text(json.dumps({"title": title, "spans": spans}))
    return spans, title


def load_timeline(out: Path) -> tuple[list, str] | None:
    path = out / "timeline.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return [tuple(x) for x in data["spans"]], data["title"]


def closest(values: Iterable[float], target: float) -> float:
    return min(values, key=lambda v: (abs(v - target), v))


def summarize(df: pd.DataFrame, bandwidth_mbps: float = 200.0) -> pd.DataFrame:
    """At the bandwidth closest to ``bandwidth_mbps``: each strategy's fastest
    configuration, and whether it is on the latency/accuracy Pareto front."""
    at = df[df["bandwidth_mbps"] == closest(df["bandwidth_mbps"].unique(), bandwidth_mbps)]
    best = at.loc[at.groupby("strategy", sort=False)["latency_s"].idxmin()]
    cols = ["strategy", "devices", "cr", "segments", "bandwidth_mbps", "latency_s",
            "energy_j", "accuracy"]
    if "adaptive_choice" in at and at["adaptive_choice"].notna().any():
        cols.append("adaptive_choice")
    out = best[cols].copy()
    single = at[at["strategy"] == "single"]["latency_s"]
    if len(single):
        out["vs_single_pct"] = 100 * (out["latency_s"] / single.min() - 1)
    out["pareto"] = out.index.isin(pareto_rows(at))
    return out.reset_index(drop=True)


def pareto_rows(df: pd.DataFrame) -> list:
    """Index labels of rows no other row beats on both latency and accuracy."""
    rows = df.dropna(subset=["accuracy"])
    lower = rows["metric"].isin(LOWER_IS_BETTER).any()
    acc = -rows["accuracy"] if lower else rows["accuracy"]
    return [i for i in rows.index
            if not ((rows["latency_s"] <= rows.at[i, "latency_s"]) & (acc >= acc[i])
                    & ((rows["latency_s"] < rows.at[i, "latency_s"]) | (acc > acc[i]))).any()]


# ---------------------------------------------------------------- adaptive rows

def _system(p: Point) -> Point:
    """The adaptive point at p's conditions: p without its configuration."""
    return replace(p, strategy="adaptive", devices=0, cr=None, segments=None)


def _as(p: Point, c: Candidate, batch: int | None = None) -> Point:
    """The grid point of candidate ``c`` at p's conditions (at ``batch`` if given)."""
    return replace(p, strategy=c.strategy, devices=c.devices, cr=c.cr, segments=c.segments,
                   batch=p.batch if batch is None else batch)


def _systems(points: list[Point]) -> dict[Point, list[Point]]:
    """Adaptive points (one per batch and bandwidth) by system: what one map serves."""
    out: dict[Point, list[Point]] = {}
    for p in points:
        a = _system(p)
        members = out.setdefault(replace(a, batch=0, bandwidth_mbps=0.0), [])
        if a not in members:
            members.append(a)
    return out


def _map_batches(s: LoadedScenario) -> list[int]:
    a = s.spec.adaptive
    assert a is not None
    return sorted(_listed(a.map_batch if a.map_batch is not None else s.spec.batch))


def adaptive_trace_specs(s: LoadedScenario, points: list[Point]) -> set[tuple]:
    """Workloads the simulated performance map needs (none for a measured one)."""
    if s.spec.adaptive is None or s.map_csv is not None or not points:
        return set()
    cands = [Candidate(*c) for c in adaptive_configs(s.spec)]
    return {workload_spec(s, _as(points[0], c, b)) for c in cands for b in _map_batches(s)}


def _map_for(s: LoadedScenario, members: list[Point], done: dict[str, Any],
             traced: dict[tuple, str]) -> PerformanceMap:
    """The system's map: the measured one, or the simulator's over the map grid; each
    candidate's accuracy from its rows when the map does not give one."""
    a, first = s.spec.adaptive, members[0]
    assert a is not None
    cands = [Candidate(*c) for c in adaptive_configs(s.spec)]
    acc = {c: float(done[_as(first, c).key()]["accuracy"]) for c in cands}
    if s.map_csv is not None:
        return _with_accuracy(_measured_map(s.map_csv, first), acc)
    bws = _listed(a.map_bandwidth_mbps) if a.map_bandwidth_mbps is not None else sorted(
        {m.bandwidth_mbps for m in members})

    def workload_of(c: Candidate, batch: int) -> Workload:
        return Workload.from_json(traced[workload_spec(s, _as(first, c, batch))])

    return build_map(workload_of, cands, s.devices[first.device_profile], s.link_for(first),
                     _map_batches(s), bws, acc)


def _measured_map(csv: Path, system: Point) -> PerformanceMap:
    """A map CSV; when it has system columns (as adaptive_map.csv), this system's rows."""
    df = pd.read_csv(csv)
    for col in (c for c in SYSTEM_COLUMNS if c in df):
        df = df[df[col] == getattr(system, col)]
    return PerformanceMap.from_frame(df)


def _with_accuracy(pmap: PerformanceMap, acc: dict[Candidate, float]) -> PerformanceMap:
    return PerformanceMap(tuple(
        replace(e, accuracy=acc.get(e.candidate, math.nan)) if math.isnan(e.accuracy) else e
        for e in pmap.entries))


def _adaptive_row(s: LoadedScenario, p: Point, pmap: PerformanceMap,
                  done: dict[str, Any]) -> dict[str, Any]:
    """The row of the candidate the map picks for p's batch and bandwidth, simulated at
    p's actual conditions (that candidate's own grid row), relabelled ``adaptive``."""
    a = s.spec.adaptive
    assert a is not None
    metric = done[_as(p, pmap.candidates[0]).key()]["metric"]
    entry = choose(pmap, p.batch, p.bandwidth_mbps, a.objective, a.accuracy_floor,
                   lower_is_better=metric in LOWER_IS_BETTER)
    row = dict(done[_as(p, entry.candidate).key()])
    blob = p.key() + a.model_dump_json()
    row.update(point_id=hashlib.sha256(blob.encode()).hexdigest()[:16], strategy="adaptive",
               adaptive_choice=entry.candidate.label)
    return row


def adaptive_rows(s: LoadedScenario, points: list[Point], done: dict[str, Any],
                  traced: dict[tuple, str], out: Path) -> list[dict[str, Any]]:
    """One ``adaptive`` row per (system, batch, bandwidth) of the grid; the maps used are
    written to ``adaptive_map.csv`` (loadable as a scenario's ``adaptive.map_csv``)."""
    if s.spec.adaptive is None:
        return []
    rows, maps = [], []
    for system, members in _systems(points).items():
        pmap = _map_for(s, members, done, traced)
        frame = pmap.to_frame()
        for col in reversed(SYSTEM_COLUMNS):
            frame.insert(0, col, getattr(system, col))
        maps.append(frame)
        rows += [_adaptive_row(s, p, pmap, done) for p in members]
    pd.concat(maps).to_csv(out / "adaptive_map.csv", index=False)
    return rows
