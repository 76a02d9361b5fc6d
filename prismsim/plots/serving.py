"""Latency percentiles against offered load, one line per serving configuration (the
knee where queueing takes over), with 95 % intervals, the SLO and each capacity."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from prismsim.plots.style import MS_PER_S

LOWEST_BAR = 0.9  # an interval's lower arm is drawn down to 10 % of the value at most
PERCENTILES = (("latency_p50_s", "p50", ":"), ("latency_p99_s", "p99", "-"))


def latency_vs_load(summary: pd.DataFrame, capacity: pd.DataFrame | None = None,
                    slo_ms: float | None = None, title: str = "") -> Figure:
    """``summary``: aggregate rows (label, load, value, latency_p50_s, ..._ci95)."""
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot()
    colours = {label: f"C{i}" for i, label in enumerate(dict.fromkeys(summary["label"]))}
    for label, rows in summary.groupby("label", sort=False):
        rows = rows.sort_values("value")
        for col, name, style in PERCENTILES:
            y_ms, ci_ms = rows[col] * MS_PER_S, rows[f"{col}_ci95"].fillna(0) * MS_PER_S
            below = ci_ms.clip(upper=LOWEST_BAR * y_ms)  # a log axis has no 0
            ax.errorbar(rows["value"], y_ms, yerr=[below, ci_ms], linestyle=style,
                        marker="o", markersize=3, capsize=2, color=colours[label],
                        label=f"{label} {name}")
    if slo_ms is not None:
        ax.axhline(slo_ms, color="black", linewidth=1, label=f"SLO p99 {slo_ms:g} ms")
    if capacity is not None:
        for _, c in capacity.iterrows():
            if c["label"] in colours and c["capacity_per_s"] > 0:
                ax.axvline(c["capacity_per_s"], color=colours[c["label"]], linewidth=0.8,
                           linestyle="--")
    unit = "clients" if (summary["load"] == "clients").all() else "offered load (requests/s)"
    ax.set_xlabel(unit)
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title + ("\ndashed: capacity within the SLO" if capacity is not None
                          and len(capacity) else ""), fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
