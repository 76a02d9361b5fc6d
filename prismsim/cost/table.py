"""The paper's Tables IV-VI: FLOPs and communication of each strategy, from traced
workloads (``prismsim flops``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from prismsim.cost.cache import WorkloadCache
from prismsim.cost.units import gflops
from prismsim.numerics.segments import n_segments
from prismsim.workload import Workload

# Causal models: "aware" exchanges only what the causal mask lets a device see;
# "paper" computes the full score matrix and masks it, as the paper's Table VI counts.
CAUSAL_COUNTS = {"aware": {"skip_masked": True}, "paper": {"skip_masked": False}}


@dataclass(frozen=True)
class Point:
    strategy: str
    devices: int
    options: dict[str, Any] = field(default_factory=dict)
    causal_count: str = "-"


def expand(strategies: Iterable[str], devices: Iterable[int], means: Iterable[int],
           crs: Iterable[float], causal_counts: Iterable[str]) -> list[Point]:
    """single once; every other strategy at every P; prism at every means (or CR) value;
    rowwise strategies of a causal model under each causal count."""
    means, crs, counts = list(means), list(crs), list(causal_counts)
    prism_opts = [{"segments": m} for m in means] + [{"cr": c} for c in crs]
    if not prism_opts:
        raise ValueError("prism needs --means or --cr values")
    points = []
    for name in strategies:
        if name == "single":
            points.append(Point("single", 1))
            continue
        for p in devices:
            for opts in prism_opts if name == "prism" else [{}]:
                if name in ("voltage", "prism"):
                    points += [Point(name, p, {**opts, **CAUSAL_COUNTS[c]}, c) for c in counts]
                else:
                    points.append(Point(name, p, opts))
    return points


def _layered_received(wl: Workload, per_message: Callable[[Any], float]) -> float:
    """The busiest receiver's per-layer average of ``per_message`` over layer messages."""
    layers = {m.layer for m in wl.messages if m.layer is not None}
    if not layers:
        return 0.0
    per_device = [0.0] * wl.n_devices
    for m in wl.messages:
        if m.layer is not None:
            for d in m.dst:
                per_device[d] += per_message(m)
    return max(per_device) / len(layers)


def comm_bytes_per_layer(wl: Workload) -> float:
    return _layered_received(wl, lambda m: m.bytes)


def pdplc_tokens(wl: Workload) -> float:
    """Token vectors the busiest device receives per layer (the paper's PDPLC)."""
    batch = wl.meta["batch"]
    return _layered_received(wl, lambda m: _rows(m.shape) / batch)


def _rows(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape[:-1]:
        out *= s
    return out


def _prism_columns(wl: Workload) -> dict[str, Any]:
    opts, n_max = wl.meta["options"], max(wl.meta["sizes"])
    n_segs = n_segments(n_max, opts.get("cr"), opts.get("segments"))
    cr = opts["cr"] if opts.get("cr") is not None else round(n_max / n_segs, 2)
    return {"means_per_partition": n_segs, "cr": cr}


def row(wl: Workload, point: Point, single: Workload, voltage: Workload | None
        ) -> dict[str, Any]:
    flops = wl.flops_per_device()
    comm = comm_bytes_per_layer(wl)
    ref_comm = comm_bytes_per_layer(voltage) if voltage is not None else 0.0
    out = {
        "model": wl.meta["model"], "tokens": wl.meta["tokens"], "strategy": point.strategy,
        "devices": point.devices, "causal_count": point.causal_count,
        "means_per_partition": None, "cr": None, "pdplc_tokens": pdplc_tokens(wl),
        "gflops_total": gflops(sum(flops)), "gflops_per_device": gflops(max(flops)),
        "gflops_per_device_mean": gflops(sum(flops)) / len(flops),
        "comp_speedup_pct": 100 * (1 - max(flops) / sum(single.flops_per_device())),
        "comm_bytes_per_device_per_layer": comm,
        "comm_speedup_pct": 100 * (1 - comm / ref_comm) if ref_comm else None,
    }
    if point.strategy == "prism":
        out.update(_prism_columns(wl))
    return out


def flops_table(models: Iterable[str], strategies: Iterable[str], devices: Iterable[int], *,
                means: Iterable[int] = (), crs: Iterable[float] = (), tokens: int | None = None,
                batch: int = 1, wire: str = "fp32",
                causal_counts: Iterable[str] = ("aware", "paper"),
                cache: WorkloadCache | None = None,
                on_point: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row a (model, strategy, P, means/CR, causal count) point."""
    cache = cache or WorkloadCache()
    points = expand(strategies, devices, means, crs, causal_counts)
    rows = []
    for model in models:
        def get(p: Point, model: str = model) -> Workload:
            return cache.get(model, p.strategy, p.devices, tokens=tokens, batch=batch,
                             wire=wire, **p.options)

        single = get(Point("single", 1))
        causal = single.meta["causal"]
        for pt in points:
            if not causal and pt.causal_count not in ("-", "aware"):
                continue  # the causal counts coincide on a bidirectional model
            wl = get(pt)
            voltage = (get(Point("voltage", pt.devices, dict(CAUSAL_COUNTS.get(
                pt.causal_count, {})), pt.causal_count)) if pt.devices > 1 else None)
            r = row(wl, pt, single, voltage)
            if not causal:
                r["causal_count"] = "-"
            rows.append(r)
            if on_point:
                on_point(f"{model} {pt.strategy} P={pt.devices} {pt.options}")
    return pd.DataFrame(rows)
