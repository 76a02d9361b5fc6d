"""Latency against the task metric at one bandwidth, with the Pareto front; fine-tuned
points beside their plain twins, an arrow from each plain point to its fine-tuned ones."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from prismsim.configuration import NO_FINETUNE, Configuration
from prismsim.metrics import LOWER_IS_BETTER
from prismsim.pareto import latency_score_front
from prismsim.plots.labels import Label, place_labels
from prismsim.plots.style import (
    FINETUNE_COLOURS,
    MS_PER_S,
    REASON_CHARS,
    SYSTEM_SCOPE,
    UNSCORED_Y,
    metric_label,
    metric_name,
    scope_rows,
    set_title,
    strategy_colour,
    strategy_marker,
    strategy_rank,
    tuned,
    with_config,
)
from prismsim.sweep.summary import PAPER_BANDWIDTH_MBPS, closest


def _at_bandwidth(data: pd.DataFrame, bandwidth: float) -> pd.DataFrame:
    """Rows at ``bandwidth``, plus one row of each single-device configuration that was
    only simulated at other bandwidths (its latency does not depend on the link)."""
    here = data[data["bandwidth_mbps"] == bandwidth]
    alone = data[(data["devices"] == 1) & ~data["config"].isin(here["config"])]
    return pd.concat([here, alone.drop_duplicates("config")]).sort_values("order", kind="stable")


def _series(pts: pd.DataFrame, strategies: list[str]) -> list[tuple[str, pd.DataFrame, str]]:
    """(legend label, rows, colour) of each strategy's plain rows, then of each
    fine-tuning mode's rows (in a colour of its own)."""
    is_tuned = tuned(pts)
    modes = list(dict.fromkeys(pts.loc[is_tuned, "finetune"]))
    out = []
    for strategy in strategies:
        mine = pts["strategy"] == strategy
        out.append((strategy, pts[mine & ~is_tuned], strategy_colour(strategy, strategies)))
        out += [(f"{strategy} fine-tuned ({m})", pts[mine & (pts["finetune"] == m)],
                 FINETUNE_COLOURS[i % len(FINETUNE_COLOURS)]) for i, m in enumerate(modes)]
    return [s for s in out if not s[1].empty]


def _draw_points(ax: Axes, pts: pd.DataFrame, strategies: list[str]) -> list[Label]:
    """One marker style a strategy, one colour a strategy (its fine-tuned rows: one a
    mode); returns each point's label (P, CR, fine-tuning)."""
    labels: list[Label] = []
    for name, rows, colour in _series(pts, strategies):
        strategy = rows["strategy"].iloc[0]
        ms = (rows["latency_s"] * MS_PER_S).tolist()
        ax.scatter(ms, rows["accuracy"], marker=strategy_marker(strategy, strategies), s=40,
                   zorder=3, color=colour, label=name)
        _draw_intervals(ax, rows, colour)
        for x, y, row in zip(ms, rows["accuracy"], rows.itertuples(index=False), strict=True):
            text = Configuration.of_row(row).label(with_strategy=False)
            labels.append((x, y, text, "0.15", ax.transData))
    return labels


def _draw_recovery(ax: Axes, pts: pd.DataFrame) -> None:
    """An arrow from each plain point to each of its fine-tuned twins (same programs,
    same latency: what fine-tuning gives back)."""
    plain = {Configuration.of_row(r): r for r in pts[~tuned(pts)].itertuples(index=False)}
    for row in pts[tuned(pts)].itertuples(index=False):
        base = plain.get(replace(Configuration.of_row(row), finetune=NO_FINETUNE))
        if base is not None:
            ax.annotate("", xy=(row.latency_s * MS_PER_S, row.accuracy),
                        xytext=(base.latency_s * MS_PER_S, base.accuracy), zorder=2,
                        arrowprops={"arrowstyle": "->", "color": "0.5", "lw": 0.8})


def _draw_intervals(ax: Axes, rows: pd.DataFrame, colour: object) -> None:
    """Each score's 95 % interval (where the rows carry one) as a vertical bar."""
    if "accuracy_ci95_low" not in rows:
        return
    ok = rows[rows["accuracy_ci95_low"].notna()]
    if ok.empty:
        return
    below = ok["accuracy"] - ok["accuracy_ci95_low"]
    above = ok["accuracy_ci95_high"] - ok["accuracy"]
    ax.errorbar(ok["latency_s"] * MS_PER_S, ok["accuracy"], yerr=[below, above], fmt="none",
                ecolor=colour, elinewidth=0.8, capsize=2.5, alpha=0.7, zorder=2)


def _draw_missing(ax: Axes, pts: pd.DataFrame) -> list[Label]:
    """Points without a score: grey crosses along the bottom edge, at their latency;
    returns their labels (the full configuration: no colour tells the strategy)."""
    if pts.empty:
        return []
    ms = (pts["latency_s"] * MS_PER_S).tolist()
    bottom = ax.get_xaxis_transform()  # x in data, y in axes fraction
    ax.plot(ms, [UNSCORED_Y] * len(ms), linestyle="none", marker="x", color="0.6",
            transform=bottom, label="no score")
    ax.margins(y=0.15)  # keep scored points clear of the grey row
    return [(x, UNSCORED_Y, Configuration.of_row(row).label(), "0.45", bottom)
            for x, row in zip(ms, pts.itertuples(index=False), strict=True)]


def _draw_front(ax: Axes, pts: pd.DataFrame, higher: bool) -> None:
    """The non-dominated points, ringed, joined by the step line of the best score
    reachable within each latency."""
    ms = (pts["latency_s"] * MS_PER_S).tolist()
    scores = pts["accuracy"].tolist()
    front = latency_score_front(list(zip(ms, scores, strict=True)), higher_is_better=higher)
    if not front:
        return
    xs, ys = [ms[i] for i in front], [scores[i] for i in front]
    ax.step(xs, ys, where="post", color="tab:red", linewidth=1.2, zorder=2,
            label="Pareto front")
    ax.scatter(xs, ys, s=160, facecolors="none", edgecolors="tab:red", linewidths=1.5,
               zorder=4)


def pareto(df: pd.DataFrame, bandwidth_mbps: float | None = None) -> Figure:
    """Latency (ms) against the model's quality metric at one bandwidth, with the Pareto
    front. Default bandwidth: the one closest to 200 Mbit/s (the paper's setting).
    Points without a score (NaN ``accuracy``) are drawn as grey crosses at the bottom,
    labelled with their full configuration, and are never on the front; a score with a
    95 % interval (accuracy: Wilson's) has it drawn as a bar."""
    scoped, where = scope_rows(df, SYSTEM_SCOPE)
    data = with_config(scoped)
    bw = _pick_bandwidth(sorted(data["bandwidth_mbps"].unique()), bandwidth_mbps)
    pts = _at_bandwidth(data, bw)
    metric = metric_name(pts)
    higher = metric not in LOWER_IS_BETTER
    scored, missing = pts[pts["accuracy"].notna()], pts[pts["accuracy"].isna()]
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.add_subplot()
    strategies = sorted(pts["strategy"].unique(), key=strategy_rank)
    _draw_front(ax, scored, higher)
    _draw_recovery(ax, scored)
    labels = _draw_points(ax, scored, strategies) + _draw_missing(ax, missing)
    ax.set_xlabel("inference latency (ms)")
    ax.set_ylabel(metric_label(metric, higher))
    if scored.empty:  # the y axis carries nothing: no numbers to misread
        ax.set_yticks([])
    ax.grid(True, alpha=0.3)
    note = _unscored_note(missing)
    set_title(ax, f"Latency vs {metric.replace('_', ' ')} at {bw:g} Mbit/s: {where}{note}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    place_labels(ax, labels)  # last: needs the final layout
    return fig


def _unscored_note(missing: pd.DataFrame) -> str:
    """A title line for unscored points, with their reason when they share one (say,
    "no dataset in the scenario"); long reasons (error messages) are cut."""
    if missing.empty:
        return ""
    reasons = missing.get("accuracy_source", pd.Series(dtype=object)).dropna().unique()
    if len(reasons) != 1:
        return "\ngrey crosses: no score available"
    reason = str(reasons[0])
    cut = reason if len(reason) <= REASON_CHARS else reason[:REASON_CHARS - 1] + "…"
    return f"\ngrey crosses: no score ({cut})"


def _pick_bandwidth(present: list[float], wanted: float | None) -> float:
    if wanted is None:
        return closest(present, PAPER_BANDWIDTH_MBPS)
    if wanted not in present:
        raise ValueError(f"no results at {wanted:g} Mbit/s; present: "
                         f"{', '.join(f'{v:g}' for v in present)}")
    return wanted


