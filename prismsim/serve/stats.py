"""What a serving run measured: one row per request, one summary per replication, and
means with 95 % confidence intervals over independent replications."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from prismsim.serve.requests import ServingResult

# Student's t, two-sided 95 % (0.975 quantile) for 1 ... 30 degrees of freedom
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201,
         2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074,
         2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
T_975_LARGE = 1.96  # beyond 30 degrees of freedom (the normal quantile)

# "boards": the devices that ran a request (the name earlier results folders have)
REQUEST_COLUMNS = ("request", "arrival_s", "start_s", "finish_s", "queue_wait_s",
                   "service_s", "latency_s", "group", "batch", "dropped", "warmup",
                   "boards", "choice", "energy_j")


def request_table(result: ServingResult, warmup: int) -> pd.DataFrame:
    """One row per request; the first ``warmup`` (in arrival order) are marked."""
    rows = []
    for r in result.requests:
        done = r.finish_s is not None and r.start_s is not None
        rows.append({
            "request": r.index, "arrival_s": r.arrival_s, "start_s": r.start_s,
            "finish_s": r.finish_s,
            "queue_wait_s": r.start_s - r.arrival_s if done else math.nan,
            "service_s": r.finish_s - r.start_s if done else math.nan,
            "latency_s": r.finish_s - r.arrival_s if done else math.nan,
            "group": r.group, "batch": r.batch, "dropped": r.dropped,
            "warmup": r.index < warmup, "boards": r.devices, "choice": r.choice,
            "energy_j": r.energy_j,
        })
    table = pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))
    if result.events:  # devices left: which requests were never answered, or started again
        table["lost"] = [r.lost for r in result.requests]
        table["restarts"] = [r.restarts for r in result.requests]
    return table


def latency_figures(requests: pd.DataFrame) -> dict[str, Any]:
    """Throughput and latency percentiles of requests (columns arrival_s, finish_s,
    latency_s, warmup, dropped), the warm-up ones left out. Throughput: completions
    (warm-up ones too) after the first measured arrival, over the time from it to the
    last completion: the offered rate below the knee, the service rate above it (the
    backlog of warm-up requests is then served inside the window)."""
    kept = requests[~requests["warmup"]]
    served = kept[~kept["dropped"]]
    lost = served.get("lost")
    if lost is not None:
        served = served[~lost]
    lat = served["latency_s"].to_numpy()
    since_s = float(kept["arrival_s"].min()) if len(kept) else 0.0
    finished = requests["finish_s"].dropna()
    span_s = float(finished.max() - since_s) if len(served) else 0.0
    completions = int((finished >= since_s).sum())
    return {
        "requests": len(kept), "served": len(served), "dropped": int(kept["dropped"].sum()),
        **({} if lost is None else {"lost": int(lost.sum())}),
        "throughput_per_s": completions / span_s if span_s > 0 else math.nan,
        "latency_mean_s": float(lat.mean()) if len(lat) else math.nan,
        **{f"latency_p{q}_s": float(np.percentile(lat, q)) if len(lat) else math.nan
           for q in (50, 95, 99)}}


def run_summary(result: ServingResult, requests: pd.DataFrame) -> dict[str, Any]:
    """Throughput, latency percentiles, drops, utilisation and energy of one run; the
    warm-up requests are left out of every figure but the devices' (whole run)."""
    served = requests[~requests["warmup"] & ~requests["dropped"]]
    if "lost" in served:
        served = served[~served["lost"]]
    end_s = result.end_s or 1.0
    compute = [d.compute_s / end_s for d in result.devices]
    return {
        **latency_figures(requests),
        "queue_wait_mean_s": float(served["queue_wait_s"].mean()),
        "service_mean_s": float(served["service_s"].mean()),
        "batch_mean": float(served["batch"].mean()),
        "compute_util_max": max(compute), "compute_util_mean": float(np.mean(compute)),
        "tx_util_max": max(d.tx_s / end_s for d in result.devices),
        "channel_util": (math.nan if result.channel_busy_s is None
                         else result.channel_busy_s / end_s),
        "local_share": float((served["boards"] == 1).mean()),
        "energy_active_mean_j": float(served["energy_j"].mean()),
        "energy_per_request_j": sum(d.energy_j for d in result.devices)
        / max(1, int((~requests["dropped"]).sum())),
        **({} if result.resplits is None else {"resplits": result.resplits}),
    }


def t_975(n: int) -> float:
    """The t quantile for a 95 % interval of a mean of n values (n >= 2)."""
    return T_975[n - 2] if n - 1 <= len(T_975) else T_975_LARGE


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % interval (nan with one value)."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    if len(x) == 1:
        return float(x[0]), math.nan
    return float(x.mean()), t_975(len(x)) * float(x.std(ddof=1)) / math.sqrt(len(x))


SUMMARY_METRICS = ("throughput_per_s", "latency_mean_s", "latency_p50_s", "latency_p95_s",
                   "latency_p99_s", "queue_wait_mean_s", "compute_util_max", "tx_util_max",
                   "channel_util",
                   "energy_per_request_j", "energy_active_mean_j", "local_share",
                   "batch_mean")


def aggregate(runs: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """One row per ``by`` group of replications: each metric's mean and ``_ci95``
    half-width, the replications' count and the drop share."""
    if runs.empty:
        return pd.DataFrame()
    rows = []
    for key, g in runs.groupby(list(by), sort=False, dropna=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        row["replications"] = len(g)
        row["drop_share"] = float(g["dropped"].sum() / max(1, g["requests"].sum()))
        if "lost" in g:  # devices left: the share of requests never answered
            row["lost_share"] = float(g["lost"].sum() / max(1, g["requests"].sum()))
        for m in SUMMARY_METRICS:
            row[m], row[f"{m}_ci95"] = mean_ci(g[m].tolist())
        rows.append(row)
    return pd.DataFrame(rows)
