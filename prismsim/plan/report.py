"""What a plan writes: ``plan.csv`` (every deployment), ``pareto.csv`` (the front) and
the cost-against-latency figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from prismsim.configuration import Configuration
from prismsim.metrics import LOWER_IS_BETTER
from prismsim.plan.search import PlanResult
from prismsim.plots.files import save_figure
from prismsim.plots.labels import place_labels
from prismsim.plots.style import (
    MS_PER_S,
    latency_y_axis,
    set_title,
    strategy_colour,
    strategy_marker,
    strategy_rank,
)

SHOWN = ["rank", "device", "count", "strategy", "cr", "link", "cost_usd", "latency_s",
         "energy_j", "accuracy", "pareto"]  # the printed tables' columns


def shown_columns(table: pd.DataFrame) -> list[str]:
    """SHOWN, with the groups and the figures under load where the plan has them."""
    cols = list(SHOWN)
    if "latency_p99_s" in table:  # sampled: one inference's p99 beside its mean times
        cols.insert(cols.index("latency_s") + 1, "latency_p99_s")
    if "ttft_s" in table:  # a generation: what is judged, in place of the whole request
        at = cols.index("latency_s")
        cols[at:at + 1] = ["ttft_s", "tokens_per_s"]
        cols.insert(cols.index("energy_j") + 1, "memory_peak_bytes")
    if table["dtype"].nunique() > 1 or (table["dtype"] != "fp32").any():
        cols.insert(cols.index("link") + 1, "dtype")
    if (table["groups"] > 1).any():
        cols.insert(cols.index("count") + 1, "groups")
    if table["p99_load_s"].notna().any():
        at = cols.index("accuracy") + 1
        cols[at:at] = ["p99_load_s", "throughput_per_s"]
    return cols


def write_plan(result: PlanResult, out: Path) -> list[Path]:
    """plan.csv (every configuration), pareto.csv (the front) and the figure, PNG + SVG."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "plan.csv", out / "pareto.csv"]
    result.table.to_csv(written[0], index=False)
    result.front.to_csv(written[1], index=False)
    fig = plan_figure(result)
    written += save_figure(fig, out, "plan")
    fig.clear()
    return written


def _front_label(row: dict[str, Any]) -> str:
    config = Configuration.of(row["strategy"], row["count"], row["cr"])
    link = f" / {row['link']}" if isinstance(row["link"], str) and row["link"] else ""
    return f"{row['count']}× {row['device']} {config.label()}{link}, {row['energy_j']:.2f} J"


def plan_figure(result: PlanResult) -> Figure:
    """Cost against latency: feasible configurations coloured by strategy, the others
    grey, the Pareto front ringed red and labelled (with its energy), the SLO dashed."""
    df, ms, lat = result.table, MS_PER_S, result.latency
    fig = Figure(figsize=(10, 6), layout="constrained")
    ax = fig.add_subplot()
    slow = df[~df["meets_slo"]]
    ax.scatter(slow["cost_usd"], slow[lat] * ms, marker="x", s=25, color="0.7",
               label="misses the SLO", zorder=2)
    weak = df[df["meets_slo"] & ~df["meets_floor"]]
    ax.scatter(weak["cost_usd"], weak[lat] * ms, marker="o", s=30, zorder=2,
               facecolors="none", edgecolors="0.55", label="misses the accuracy floor")
    ok = df[df["feasible"]]
    strategies = sorted(ok["strategy"].unique(), key=strategy_rank)
    for name in strategies:
        rows = ok[ok["strategy"] == name]
        ax.scatter(rows["cost_usd"], rows[lat] * ms, s=40, zorder=3,
                   marker=strategy_marker(name, strategies),
                   color=strategy_colour(name, strategies), label=name)
    front = result.front
    ax.scatter(front["cost_usd"], front[lat] * ms, s=170, facecolors="none",
               edgecolors="tab:red", linewidths=1.5, zorder=4,
               label=f"Pareto front (cost, {_slo_name(result)}, energy)")
    ax.axhline(result.latency_slo_s * ms, color="tab:red", linestyle="--",
               linewidth=1, label=f"SLO {result.latency_slo_s * ms:g} ms")
    _axes(ax, df, result)
    labels = [(r["cost_usd"], r[lat] * ms, _front_label(r), "0.15", ax.transData)
              for r in front.to_dict("records")]
    place_labels(ax, labels)  # last: needs the final layout
    return fig


def _axes(ax: Any, df: pd.DataFrame, result: PlanResult) -> None:
    """Latency axis as in the sweep plots (log beyond a decade), title, legend."""
    ms = [*(df[result.latency] * MS_PER_S), result.latency_slo_s * MS_PER_S]
    latency_y_axis(ax, ms)
    if result.latency != "latency_s":
        ax.set_ylabel(ax.get_ylabel().replace("inference latency", _slo_name(result)))
    ax.set_xlabel("hardware cost (US$, price × count)")
    ax.grid(True, which="both", alpha=0.3)
    metric = str(df["metric"].dropna().iloc[0]) if df["metric"].notna().any() else "accuracy"
    bound = "≤" if metric in LOWER_IS_BETTER else "≥"
    set_title(ax, f"Capacity plan {result.name}: {result.model}; "
              f"{int(df['feasible'].sum())} of {len(df)} configurations meet "
              f"{metric.replace('_', ' ')} {bound} {result.accuracy_floor:g} and "
              f"{_slo_name(result)} ≤ {result.latency_slo_s * MS_PER_S:g} ms")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)


def _slo_name(result: PlanResult) -> str:
    return {"latency_s": "latency", "ttft_s": "time to first token"}.get(
        result.latency, "p99 latency")


def headline(result: PlanResult, offered: tuple[float, float] | None = None) -> str:
    """The line above the ranked table. ``offered``: (requests/s, p99 ms) of the plan's
    offered load, if any."""
    under = (f", and serve {offered[0]:g} requests/s at p99 <= {offered[1]:g} ms"
             if offered else "")
    slo = f"the {result.latency_slo_s * 1e3:g} ms SLO"
    if result.latency == "ttft_s":
        slo += f" on the time to first token, {result.tokens_per_s:g} tokens/s or more"
    elif result.latency != "latency_s":
        slo += " on one inference's p99 over sampled worlds"
    return (f"{len(result.ranked)} of {len(result.table)} configurations meet the accuracy "
            f"floor {result.accuracy_floor:g} and {slo}{under}; cheapest first, then "
            f"lowest energy:")


def front_line(result: PlanResult) -> str:
    """The line above the Pareto front's table."""
    return f"Pareto front over cost, {_slo_name(result)} and energy:"


def sampling_note(result: PlanResult) -> str | None:
    """One line when the plan sampled and nothing it sampled varies (None otherwise)."""
    if result.varies is not False:
        return None
    return ("no candidate device or link has variability to draw from (catalog or plan "
            "variability:): every sampled latency, p99 included, is the latency of mean "
            "times")
