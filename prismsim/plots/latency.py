"""Latency against bandwidth (the paper's Fig. 5) and communication against the
compression rate."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from prismsim.plots.style import (
    BYTES_PER_KB,
    MARKERS,
    MODEL_SCOPE,
    MS_PER_S,
    STRATEGY_COLOURS,
    SYSTEM_SCOPE,
    latency_y_axis,
    log_ticks_at,
    own_weights,
    plain_ticks,
    scope_rows,
    set_title,
    strategy_marker,
    strategy_rank,
    with_config,
)


def latency_vs_bandwidth(df: pd.DataFrame) -> Figure:
    """End-to-end latency (ms) against link bandwidth (Mbit/s, log): one line a
    configuration. Configurations on one device do not use the link: their latency is
    drawn flat, dashed black, across the whole bandwidth range. Fine-tuned rows are
    their plain twins' latency: left out."""
    scoped, where = scope_rows(own_weights(df), SYSTEM_SCOPE)
    data = with_config(scoped)
    bandwidths = sorted(data["bandwidth_mbps"].unique())
    strategies = sorted(data["strategy"].unique(), key=strategy_rank)
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.add_subplot()
    colour = 0
    for _, rows in data.groupby("order", sort=True):
        label = rows["config"].iloc[0]
        # Rows repeated at one bandwidth (columns outside the scope) fold into their median.
        ms = rows.groupby("bandwidth_mbps")["latency_s"].median() * MS_PER_S
        if rows["strategy"].iloc[0] == "adaptive":  # under the lines of what it picked
            ax.plot(ms.index, ms.to_numpy(), color=STRATEGY_COLOURS["adaptive"], linewidth=7,
                    alpha=0.4, zorder=1, solid_capstyle="round", label=label)
            continue
        if int(rows["devices"].iloc[0]) == 1:
            ax.plot(bandwidths, [float(ms.median())] * len(bandwidths), color="black",
                    linestyle="--", label=label)
            continue
        ax.plot(ms.index, ms.to_numpy(), color=f"C{colour % 10}", label=label,
                marker=strategy_marker(rows["strategy"].iloc[0], strategies))
        colour += 1
    log_ticks_at(ax, bandwidths)
    latency_y_axis(ax, (data["latency_s"] * MS_PER_S).tolist())
    ax.set_xlabel("link bandwidth (Mbit/s)")
    ax.grid(True, which="both", alpha=0.3)
    set_title(ax, f"Latency vs bandwidth: {where}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return fig


def _prism_axis(data: pd.DataFrame) -> tuple[pd.DataFrame, str, str]:
    """PRISM rows and what they are plotted against: the compression rate when any row
    gives one (rows given by segment means are then left out), else the segment means
    per partition L (the scenarios of Table IV give L, not CR)."""
    prism = data[data["strategy"] == "prism"]
    col = "cr" if prism["cr"].notna().any() else "segments"
    label = "compression rate CR" if col == "cr" else "Segment Means per partition L"
    return prism[prism[col].notna()].sort_values(col), col, label


def comm_vs_cr(df: pd.DataFrame) -> Figure:
    """Bytes each device sends per layer (KB = 1000 bytes) against PRISM's compression
    rate (or its segment means, see _prism_axis), one line a device count; Voltage at the
    same count as a dashed reference. The volume does not depend on the link (nor on
    fine-tuning), so rows repeated over bandwidths (or device profiles) count once."""
    scoped, where = scope_rows(own_weights(df), MODEL_SCOPE)
    data = with_config(scoped).drop_duplicates(["config"])
    prism, col, xlabel = _prism_axis(data)
    voltage = data[data["strategy"] == "voltage"]
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    for i, p in enumerate(sorted(set(prism["devices"]) | set(voltage["devices"]))):
        rows = prism[prism["devices"] == p]
        if not rows.empty:
            ax.plot(rows[col], rows["comm_bytes_per_device_per_layer"] / BYTES_PER_KB,
                    marker=MARKERS["prism"], color=f"C{i % 10}", label=f"prism P={p}")
        for value in voltage.loc[voltage["devices"] == p, "comm_bytes_per_device_per_layer"]:
            ax.axhline(value / BYTES_PER_KB, color=f"C{i % 10}", linestyle="--",
                       label=f"voltage P={p}")
    if prism.empty:
        ax.text(0.5, 0.5, "no prism rows in these results", ha="center",
                transform=ax.transAxes)
    else:
        ax.xaxis.set_major_locator(FixedLocator(sorted(prism[col].unique())))
        ax.xaxis.set_major_formatter(plain_ticks())
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("sent per device per layer (KB)")
    ax.grid(True, alpha=0.3)
    set_title(ax, f"Communication vs {xlabel}: {where}")
    if ax.get_lines():
        ax.legend(loc="best", fontsize=9)
    return fig


