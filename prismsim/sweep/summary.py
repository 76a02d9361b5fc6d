"""The summary a sweep ends with: each strategy's fastest configuration near a bandwidth,
against one device, and whether it is on the latency/accuracy Pareto front."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations

import pandas as pd

from prismsim.configuration import NO_FINETUNE, Configuration
from prismsim.metrics import LOWER_IS_BETTER
from prismsim.pareto import front_rows
from prismsim.sweep.exact import exact_strategies

PAPER_BANDWIDTH_MBPS = 200.0  # the setting the PRISM paper highlights


def closest(values: Iterable[float], target: float) -> float:
    """The value nearest ``target``; a tie goes to the lower one."""
    return min(values, key=lambda v: (abs(v - target), v))


def latency_accuracy_front(df: pd.DataFrame) -> list:
    """Index labels of the rows on the front of latency (lower) and the task metric
    (higher, or lower for bits per byte); rows without a metric are never on it."""
    rows = df.dropna(subset=["accuracy"])
    lower = bool(rows["metric"].isin(LOWER_IS_BETTER).any())
    minimize = ["latency_s", "accuracy"] if lower else ["latency_s"]
    return front_rows(rows, minimize=minimize, maximize=[] if lower else ["accuracy"])


def summary_heading(df: pd.DataFrame, bandwidth_mbps: float = PAPER_BANDWIDTH_MBPS) -> str:
    """What the summary table shows: the rate its rows are at, which is the one closest
    to ``bandwidth_mbps`` that the sweep has."""
    rates = df.dropna(subset=["latency_s"])["bandwidth_mbps"].unique()
    at = closest(rates, bandwidth_mbps) if len(rates) else bandwidth_mbps
    nearest = "" if at == bandwidth_mbps else f" (the rate nearest {bandwidth_mbps:g})"
    return f"fastest configuration of each strategy at {at:g} Mbit/s{nearest}:"


def _at(df: pd.DataFrame, bandwidth_mbps: float) -> pd.DataFrame:
    """The rows at the bandwidth closest to ``bandwidth_mbps``; not skipped ones (no
    latency)."""
    df = df.dropna(subset=["latency_s"])
    return df[df["bandwidth_mbps"] == closest(df["bandwidth_mbps"].unique(), bandwidth_mbps)]


def _families(df: pd.DataFrame) -> list[str]:
    """What a summary row stands for: a strategy, and its fine-tuning when any row has
    one (a fine-tuned row is as fast as its plain twin: both are shown)."""
    tuned = "finetune" in df and (df["finetune"].fillna(NO_FINETUNE) != NO_FINETUNE).any()
    return ["strategy", "finetune"] if tuned else ["strategy"]


def fastest(df: pd.DataFrame, bandwidth_mbps: float = PAPER_BANDWIDTH_MBPS) -> pd.DataFrame:
    """Each strategy's (and fine-tuning's) fastest row at the bandwidth closest to
    ``bandwidth_mbps``."""
    at = _at(df, bandwidth_mbps)
    return at.loc[at.groupby(_families(at), sort=False, dropna=False)["latency_s"].idxmin()]


def indistinguishable(rows: pd.DataFrame) -> list[str]:
    """Pairs of rows ("A and B") whose 95 % accuracy intervals overlap: on these
    examples their accuracies cannot be told apart. An exact strategy is not paired:
    its metrics are single's (``sweep/exact.py``), equal by proof, not by sample."""
    if "accuracy_ci95_low" not in rows:
        return []
    ok = rows[~rows["strategy"].isin(exact_strategies())].dropna(subset=["accuracy_ci95_low"])
    names = [Configuration.of_row(r).label() for r in ok.itertuples()]
    lows, highs = ok["accuracy_ci95_low"].tolist(), ok["accuracy_ci95_high"].tolist()
    return [f"{names[i]} and {names[j]}" for i, j in combinations(range(len(ok)), 2)
            if lows[i] <= highs[j] and lows[j] <= highs[i]]


def summarize(df: pd.DataFrame, bandwidth_mbps: float = PAPER_BANDWIDTH_MBPS
              ) -> pd.DataFrame:
    """At the bandwidth closest to ``bandwidth_mbps``: each strategy's fastest
    configuration, and whether it is on the latency/accuracy Pareto front there."""
    at, best = _at(df, bandwidth_mbps), fastest(df, bandwidth_mbps)
    cols = [*_families(at)[:1], "devices", "cr", "segments", *_families(at)[1:],
            "bandwidth_mbps", "latency_s", "energy_j", "accuracy"]
    if "adaptive_choice" in at and at["adaptive_choice"].notna().any():
        cols.append("adaptive_choice")
    out = best[cols].copy()
    single = at[at["strategy"] == "single"]["latency_s"]
    if len(single):
        out["vs_single_pct"] = 100 * (out["latency_s"] / single.min() - 1)
    out["pareto"] = out.index.isin(latency_accuracy_front(at))
    return out.reset_index(drop=True)
