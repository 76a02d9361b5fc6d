"""The results table's schema: one row a point, its parameters, what the simulation gave
(latency, energy, bytes, where each device's time went), the workload's FLOPs and
communication, and the accuracy."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from prismsim.metrics import LOWER_IS_BETTER
from prismsim.scenario.grid import Point
from prismsim.sim import SimResult
from prismsim.sim.tokens import decode_summary
from prismsim.strategies import SKIPPED
from prismsim.workload import Workload

COLUMNS = [
    "point_id", "scenario", "model", "latency_model", "strategy", "devices", "cr", "segments",
    "exchange", "finetune",
    "device_profile", "link", "medium", "bandwidth_mbps", "latency_ms", "broadcast",
    "rendezvous", "split", "host_cores", "batch", "wire", "dtype", "tokens", "generate",
    "latency_s", "energy_j", "bytes_on_air", "bytes_sent", "compute_s", "comm_s", "idle_s",
    "compute_s_per_device", "comm_s_per_device", "idle_s_per_device", "energy_j_per_device",
    "gflops_total", "gflops_per_device", "pdplc_tokens", "comm_bytes_per_device_per_layer",
    "metric", "accuracy", "accuracy_ci95_low", "accuracy_ci95_high", "n_examples",
    "top1_agreement", "mean_kl", "mean_kl_ci95_low", "mean_kl_ci95_high", "accuracy_source",
    "adaptive_choice", "ttft_s", "tpot_s", "tokens_per_s", "energy_per_token_j",
    "bytes_per_token", "memory_peak_bytes", "fits",
    "finetune_gain", "finetune_gain_ci95_low", "finetune_gain_ci95_high",
]
GAIN = ("finetune_gain", "finetune_gain_ci95_low", "finetune_gain_ci95_high")
DECODE_COLUMNS = ("ttft_s", "tpot_s", "tokens_per_s", "energy_per_token_j", "bytes_per_token")
# a scenario with samples: (each point replayed in sampled worlds): its latency's tail
SAMPLED = ("latency_mean_sampled_s", "latency_p50_s", "latency_p95_s", "latency_p99_s")
# a scenario whose world moves (events:, network.trace): the link trace, the events that
# applied at the point, and why its inference was lost (latency_s inf), if it was
WORLD = ("link_trace", "events", "lost")
NO_ACCURACY = {"metric": None, "value": math.nan, "top1_agreement": math.nan,
               "mean_kl": math.nan, "accuracy_source": "no dataset in the scenario",
               "n_examples": 0}


def _per_device(values: Iterable[float]) -> str:
    return json.dumps([round(v, 9) for v in values])


def point_columns(scenario: str, p: Point) -> dict[str, Any]:
    return {
        "point_id": p.key(), "scenario": scenario, "model": p.model,
        "latency_model": p.latency_model, "strategy": p.strategy,
        "devices": p.devices, "cr": p.cr, "segments": p.segments, "exchange": p.exchange,
        "finetune": p.finetune, "device_profile": p.device_profile, "link": p.link,
        "medium": p.medium,
        "bandwidth_mbps": p.bandwidth_mbps, "latency_ms": p.latency_ms,
        "broadcast": p.broadcast, "rendezvous": p.rendezvous, "split": p.split,
        "host_cores": json.loads(p.host)["cores"] if p.host else None,
        "batch": p.batch, "wire": p.wire, "dtype": p.dtype, "generate": p.generate,
    }


def result_columns(r: SimResult) -> dict[str, Any]:
    """Latency, energy, bytes; the busiest device's times and every device's (JSON)."""
    devices = r.devices
    idle = [r.idle_s(i) for i in range(len(devices))]
    return {
        "latency_s": r.latency_s, "energy_j": r.energy_j, "bytes_on_air": r.bytes_on_air,
        "bytes_sent": sum(d.bytes_sent for d in devices),
        "compute_s": max(d.compute_s for d in devices),
        "comm_s": max(d.comm_s for d in devices), "idle_s": max(idle),
        "compute_s_per_device": _per_device(d.compute_s for d in devices),
        "comm_s_per_device": _per_device(d.comm_s for d in devices),
        "idle_s_per_device": _per_device(idle),
        "energy_j_per_device": _per_device(d.energy_j for d in devices),
    }


def workload_columns(wl: Workload) -> dict[str, Any]:
    """What the traced program costs, whatever the hardware (the same for every point of
    one workload)."""
    flops = wl.flops_per_device()
    return {"tokens": wl.meta["tokens"], "gflops_total": sum(flops) / 1e9,
            "gflops_per_device": max(flops) / 1e9, "pdplc_tokens": wl.pdplc_tokens(),
            "comm_bytes_per_device_per_layer": wl.comm_bytes_per_layer()}


def accuracy_columns(acc: dict[str, Any] | None) -> dict[str, Any]:
    """The metric with its sample size and 95 % interval (accuracy: Wilson's; bits per
    byte: a bootstrap over windows; other metrics: NaN), and the mean KL with its
    bootstrap interval over examples."""
    acc = acc or NO_ACCURACY
    n = int(acc.get("n_examples") or 0)
    lo, hi = acc.get("ci95_low", math.nan), acc.get("ci95_high", math.nan)
    return {"metric": acc["metric"], "accuracy": acc["value"], "accuracy_ci95_low": lo,
            "accuracy_ci95_high": hi, "n_examples": n,
            "top1_agreement": acc["top1_agreement"], "mean_kl": acc["mean_kl"],
            "mean_kl_ci95_low": acc.get("mean_kl_ci95_low", math.nan),
            "mean_kl_ci95_high": acc.get("mean_kl_ci95_high", math.nan),
            "accuracy_source": acc["accuracy_source"]}


def decode_columns(wl: Workload | None, r: SimResult) -> dict[str, Any]:
    """A generation's per-token figures (point.decode_summary); NaN for one forward."""
    if wl is None or not wl.meta.get("generate"):
        return dict.fromkeys(DECODE_COLUMNS, math.nan)
    info = decode_summary(wl, r)
    return {k: math.nan if info[k] is None else info[k] for k in DECODE_COLUMNS}


def make_row(scenario: str, p: Point, workload: dict[str, Any], r: SimResult,
             acc: dict[str, Any] | None, wl: Workload | None = None) -> dict[str, Any]:
    """One results row; ``workload``: the point's :func:`workload_columns` (``wl``
    itself for a generation's token figures)."""
    return {**point_columns(scenario, p), **workload, **result_columns(r),
            **accuracy_columns(acc), "adaptive_choice": None, **decode_columns(wl, r)}


def skipped_row(scenario: str, p: Point, reason: str) -> dict[str, Any]:
    """The row of a point its strategy cannot run: its parameters and why, nothing else
    (the ``skipped`` column, after COLUMNS, is in a results table only when a row has
    one)."""
    return {**dict.fromkeys(COLUMNS), **point_columns(scenario, p), "tokens": p.tokens,
            SKIPPED: reason}


def layout(sampled: bool, moves: bool = False) -> list[str]:
    """The columns every row of a sweep has: COLUMNS, SAMPLED with samples:, and WORLD
    with events: or a link trace."""
    columns = [*COLUMNS, *SAMPLED] if sampled else COLUMNS
    return [*columns, *WORLD] if moves else columns


def world_columns(trace_label: str, events: Iterable[Any], r: SimResult) -> dict[str, Any]:
    """WORLD of one point: its link trace, its events (``DeviceEvent``) and whether it
    was lost."""
    return {"link_trace": trace_label or None,
            "events": "; ".join(e.describe() for e in events) or None, "lost": r.lost}


def sampled_columns(summary: dict[str, float]) -> dict[str, float]:
    """SAMPLED from ``Samples.summary()``."""
    return {"latency_mean_sampled_s": summary["latency_mean_s"],
            **{c: summary[c] for c in SAMPLED[1:]}}


def table_columns(rows: list[dict[str, Any]], sampled: bool = False, moves: bool = False
                  ) -> list[str]:
    """The layout's columns, and ``skipped`` after them when some row was skipped."""
    columns = layout(sampled, moves)
    return [*columns, SKIPPED] if any(isinstance(r.get(SKIPPED), str) for r in rows) \
        else columns


def gain_columns(tuned: dict[str, Any], plain: dict[str, Any] | None) -> dict[str, float]:
    """What fine-tuning won, from a fine-tuned row's accuracy columns and its plain
    twin's: the metric's improvement (after - before; before - after where lower is
    better) and a 95 % interval from the two rows' intervals by MOVER (Newcombe's method
    for two proportions; treating the two as independent, it is the wider one when both
    were measured on the same test examples). NaN without a twin or an interval."""
    if plain is None or not isinstance(tuned.get("metric"), str) \
            or plain.get("metric") != tuned["metric"]:
        return dict.fromkeys(GAIN, math.nan)
    sign = -1.0 if tuned["metric"] in LOWER_IS_BETTER else 1.0
    after, before = tuned["accuracy"], plain["accuracy"]
    a_lo, a_hi = sorted((sign * tuned["accuracy_ci95_low"], sign * tuned["accuracy_ci95_high"]))
    b_lo, b_hi = sorted((sign * plain["accuracy_ci95_low"], sign * plain["accuracy_ci95_high"]))
    gain = sign * (after - before)
    low = gain - math.hypot(sign * after - a_lo, b_hi - sign * before)
    high = gain + math.hypot(a_hi - sign * after, sign * before - b_lo)
    return {"finetune_gain": gain, "finetune_gain_ci95_low": low,
            "finetune_gain_ci95_high": high}
