"""The paper's Tables IV-VI: FLOPs and communication of each strategy, from traced
workloads (``prismsim flops``). A strategy that cannot run on a model at P (its
``strategies.why_not``, learnt when the model is traced) is a row saying why."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from prismsim.configuration import (
    Configuration,
    command_configurations,
    grid_frame,
    prism_settings,
)
from prismsim.cost.units import gflops
from prismsim.executors.trace_cache import WorkloadCache
from prismsim.numerics.segments import n_segments
from prismsim.progress import Progress
from prismsim.strategies import SKIPPED, CannotRunError
from prismsim.workload import Workload

# Causal models: "aware" exchanges only what the causal mask lets a device see;
# "paper" computes the full score matrix and masks it, as the paper's Table VI counts.
CAUSAL_COUNTS = {"aware": {"skip_masked": True}, "paper": {"skip_masked": False}}


@dataclass(frozen=True)
class TablePoint:
    """A configuration under one causal count ("-" where it does not apply)."""

    config: Configuration
    causal_count: str = "-"

    @property
    def options(self) -> dict[str, Any]:
        return {**self.config.options(), **CAUSAL_COUNTS.get(self.causal_count, {})}


def expand(strategies: Iterable[str], devices: Iterable[int], means: Iterable[int],
           crs: Iterable[float], causal_counts: Iterable[str]) -> list[TablePoint]:
    """single once; every other strategy at every P; prism at every means (or CR) value;
    rowwise strategies of a causal model under each causal count."""
    settings = prism_settings(segments=means) + prism_settings(crs=crs)
    if not settings:
        raise ValueError("prism needs --means or --cr values")
    counts = list(causal_counts)
    points = []
    for c in command_configurations(strategies, devices, settings):
        if c.strategy in ("voltage", "prism"):
            points += [TablePoint(c, cc) for cc in counts]
        else:
            points.append(TablePoint(c))
    return points


def _prism_columns(wl: Workload) -> dict[str, Any]:
    opts, n_max = wl.meta["options"], max(wl.meta["sizes"])
    n_segs = n_segments(n_max, opts.get("cr"), opts.get("segments"))
    cr = opts["cr"] if opts.get("cr") is not None else round(n_max / n_segs, 2)
    return {"means_per_partition": n_segs, "cr": cr}


def row(wl: Workload, point: TablePoint, single: Workload, voltage: Workload | None
        ) -> dict[str, Any]:
    flops = wl.flops_per_device()
    comm = wl.comm_bytes_per_layer()
    ref_comm = voltage.comm_bytes_per_layer() if voltage is not None else 0.0
    out = {
        "model": wl.meta["model"], "tokens": wl.meta["tokens"],
        "strategy": point.config.strategy, "devices": point.config.devices,
        "causal_count": point.causal_count,
        "means_per_partition": None, "cr": None, "pdplc_tokens": wl.pdplc_tokens(),
        "gflops_total": gflops(sum(flops)), "gflops_per_device": gflops(max(flops)),
        "gflops_per_device_mean": gflops(sum(flops)) / len(flops),
        "comp_speedup_pct": 100 * (1 - max(flops) / sum(single.flops_per_device())),
        "comm_bytes_per_device_per_layer": comm,
        "comm_speedup_pct": 100 * (1 - comm / ref_comm) if ref_comm else None,
    }
    if point.config.strategy == "prism":
        out.update(_prism_columns(wl))
    return out


def skipped_row(point: TablePoint, single: Workload, reason: str) -> dict[str, Any]:
    """A point the strategy cannot run on the model: its columns and why."""
    c = point.config
    numbers = ("pdplc_tokens", "gflops_total", "gflops_per_device", "gflops_per_device_mean",
               "comp_speedup_pct", "comm_bytes_per_device_per_layer", "comm_speedup_pct")
    return {"model": single.meta["model"], "tokens": single.meta["tokens"],
            "strategy": c.strategy, "devices": c.devices, "causal_count": point.causal_count,
            "means_per_partition": None, "cr": c.cr, **dict.fromkeys(numbers),
            SKIPPED: reason}


def flops_table(models: Iterable[str], strategies: Iterable[str], devices: Iterable[int], *,
                means: Iterable[int] = (), crs: Iterable[float] = (), tokens: int | None = None,
                batch: int = 1, wire: str = "fp32",
                causal_counts: Iterable[str] = ("aware", "paper"),
                cache: WorkloadCache | None = None,
                progress: Progress | None = None) -> pd.DataFrame:
    """One row a (model, strategy, P, means/CR, causal count) point."""
    cache = cache or WorkloadCache()
    points = expand(strategies, devices, means, crs, causal_counts)
    rows = []
    for model in models:
        def get(p: TablePoint, model: str = model) -> Workload:
            return cache.get(model, p.config.strategy, p.config.devices, tokens=tokens,
                             batch=batch, wire=wire, **p.options)

        single = get(TablePoint(Configuration("single", 1)))
        causal = single.meta["causal"]
        for pt in points:
            if not causal and pt.causal_count not in ("-", "aware"):
                continue  # the causal counts coincide on a bidirectional model
            r = _point_row(get, pt, single)
            if not causal:
                r["causal_count"] = "-"
            rows.append(r)
            if progress:
                progress(f"{model} {pt.config.label()}")
    return grid_frame(rows)


def _point_row(get: Callable[[TablePoint], Workload], pt: TablePoint, single: Workload
               ) -> dict[str, Any]:
    """The point's row, against single and voltage at the same P; a skipped row if its
    strategy cannot run on the model."""
    try:
        wl, p = get(pt), pt.config.devices
    except CannotRunError as err:
        return skipped_row(pt, single, str(err))
    voltage = get(TablePoint(Configuration("voltage", p), pt.causal_count)) if p > 1 else None
    return row(wl, pt, single, voltage)


def count_points(models: Iterable[str], strategies: Iterable[str], devices: Iterable[int],
                 means: Iterable[int], crs: Iterable[float], causal_counts: Iterable[str]
                 ) -> int:
    """Rows at most (causal counts collapse on bidirectional models): for progress."""
    return len(list(models)) * len(expand(strategies, devices, means, crs, causal_counts))
