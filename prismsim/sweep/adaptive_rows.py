"""A sweep's ``adaptive`` rows: at each (system, batch, bandwidth) of the grid, the
configuration the performance map picks, simulated at the point's own conditions (that
configuration's own grid row, relabelled). The maps used are written to
``adaptive_map.csv``, loadable as a scenario's ``adaptive.map_csv``."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from prismsim.adaptive import SYSTEM_COLUMNS, PerformanceMap, build_map, choose, read_map_frame
from prismsim.configuration import ADAPTIVE, NO_FINETUNE, Configuration
from prismsim.metrics import LOWER_IS_BETTER
from prismsim.scenario.grid import Point, adaptive_configurations
from prismsim.scenario.load import LoadedScenario
from prismsim.scenario.schema import as_list
from prismsim.sweep.needs import WorkloadNeed, workload_need
from prismsim.workload import Workload


def _system(p: Point) -> Point:
    """The adaptive point at p's conditions: p without its configuration."""
    return replace(p, strategy=ADAPTIVE, devices=0, cr=None, segments=None, exchange="p2p",
                   finetune=NO_FINETUNE)


def _as(p: Point, c: Configuration, batch: int | None = None) -> Point:
    """The grid point of configuration ``c`` at p's conditions (at ``batch`` if given)."""
    return replace(p, strategy=c.strategy, devices=c.devices, cr=c.cr, segments=c.segments,
                   exchange=c.exchange, finetune=c.finetune,
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
    a = s.file.adaptive
    assert a is not None
    return sorted(as_list(a.map_batch if a.map_batch is not None else s.file.batch))


def adaptive_workload_needs(s: LoadedScenario, points: list[Point]) -> set[WorkloadNeed]:
    """Workloads the simulated performance map needs (none for a measured one)."""
    if s.file.adaptive is None or s.map_csv is not None or not points:
        return set()
    configs = adaptive_configurations(s.file)
    return {workload_need(s, _as(points[0], c, b)) for c in configs for b in _map_batches(s)}


def _map_for(s: LoadedScenario, members: list[Point], done: dict[str, Any],
             traced: dict[WorkloadNeed, str]) -> PerformanceMap:
    """The system's map: the measured one, or the simulator's over the map grid; each
    configuration's accuracy from its rows when the map does not give one. A candidate
    without rows (its strategy cannot run on the model) is not on the map."""
    a, first = s.file.adaptive, members[0]
    assert a is not None
    configs = [c for c in adaptive_configurations(s.file) if _as(first, c).key() in done]
    acc = {c: float(done[_as(first, c).key()]["accuracy"]) for c in configs}
    if s.map_csv is not None:
        return _with_accuracy(_measured_map(s.map_csv, first), acc)
    bws = as_list(a.map_bandwidth_mbps) if a.map_bandwidth_mbps is not None else sorted(
        {m.bandwidth_mbps for m in members})

    def workload_of(c: Configuration, batch: int) -> Workload:
        return Workload.from_json(traced[workload_need(s, _as(first, c, batch))])

    return build_map(workload_of, configs, s.devices[first.device_profile], s.link_for(first),
                     _map_batches(s), bws, acc, host=s.host)


def _measured_map(csv: Path, system: Point) -> PerformanceMap:
    """A map CSV; when it has system columns (as adaptive_map.csv), this system's rows."""
    df = read_map_frame(csv)
    for col in (c for c in SYSTEM_COLUMNS if c in df):
        df = df[df[col] == getattr(system, col)]
    return PerformanceMap.from_frame(df)


def _with_accuracy(pmap: PerformanceMap, acc: dict[Configuration, float]) -> PerformanceMap:
    return PerformanceMap(tuple(
        replace(e, accuracy=acc.get(e.configuration, math.nan)) if math.isnan(e.accuracy)
        else e for e in pmap.entries))


def _adaptive_row(s: LoadedScenario, p: Point, pmap: PerformanceMap,
                  done: dict[str, Any]) -> dict[str, Any]:
    """The row of the configuration the map picks for p's batch and bandwidth, simulated
    at p's actual conditions (that configuration's own grid row), relabelled."""
    a = s.file.adaptive
    assert a is not None
    metric = done[_as(p, pmap.configurations[0]).key()]["metric"]
    entry = choose(pmap, p.batch, p.bandwidth_mbps, a.objective, a.accuracy_floor,
                   lower_is_better=metric in LOWER_IS_BETTER)
    row = dict(done[_as(p, entry.configuration).key()])
    blob = p.key() + a.model_dump_json()
    row.update(point_id=hashlib.sha256(blob.encode()).hexdigest()[:16], strategy=ADAPTIVE,
               adaptive_choice=entry.configuration.label())
    return row


def adaptive_rows(s: LoadedScenario, points: list[Point], done: dict[str, Any],
                  traced: dict[WorkloadNeed, str], out: Path) -> list[dict[str, Any]]:
    """One ``adaptive`` row per (system, batch, bandwidth) of the grid."""
    if s.file.adaptive is None:
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
