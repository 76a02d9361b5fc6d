"""Generation speed: tokens per second against link bandwidth and against link latency
(decoding is latency-bound: strategies that talk in every block of every token slow
down with each millisecond of latency, whatever the bandwidth)."""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from prismsim.plots.style import (
    STRATEGY_COLOURS,
    SYSTEM_SCOPE,
    log_ticks_at,
    own_weights,
    scope_rows,
    set_title,
    strategy_marker,
    strategy_rank,
    with_config,
)

DECODE_SCOPE = tuple(c for c in SYSTEM_SCOPE if c != "latency_ms")  # the right panel's axis


def has_decoding(df: pd.DataFrame) -> bool:
    return "tokens_per_s" in df and bool(df["tokens_per_s"].notna().any())


def _lines(ax: Axes, data: pd.DataFrame, x: str) -> None:
    """One line a configuration: tokens/s (median of repeated rows) against ``x``."""
    strategies = sorted(data["strategy"].unique(), key=strategy_rank)
    for _, rows in data.groupby("order", sort=True):
        strategy = rows["strategy"].iloc[0]
        speed = rows.groupby(x)["tokens_per_s"].median()
        single = int(rows["devices"].iloc[0]) == 1
        ax.plot(speed.index, speed.to_numpy(), label=rows["config"].iloc[0],
                color=STRATEGY_COLOURS.get(strategy) if single else None,
                linestyle="--" if single else "-", marker=strategy_marker(strategy, strategies))
    ax.set_ylabel("tokens per second (decode)")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)


def tokens_per_s(df: pd.DataFrame) -> Figure:
    """Left: tokens/s against bandwidth (log) at the first row's link latency; right:
    against the one-way link latency at the highest bandwidth."""
    scoped, where = scope_rows(own_weights(df[df["tokens_per_s"].notna()]), DECODE_SCOPE)
    data = with_config(scoped)
    fig = Figure(figsize=(12, 5), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    latency = data["latency_ms"].iloc[0]
    at_latency = data[data["latency_ms"] == latency]
    _lines(left, at_latency, "bandwidth_mbps")
    log_ticks_at(left, sorted(at_latency["bandwidth_mbps"].unique()))
    left.set_xlabel(f"link bandwidth (Mbit/s), {latency:g} ms one-way latency")
    top = data["bandwidth_mbps"].max()
    _lines(right, data[data["bandwidth_mbps"] == top], "latency_ms")
    right.set_xlabel(f"one-way link latency (ms), {top:g} Mbit/s")
    set_title(left, f"Generation speed: {where}", width=60)
    right.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return fig
