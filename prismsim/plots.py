"""Figures of sweep results: latency vs bandwidth (the paper's Fig. 5), the latency /
accuracy Pareto front, communication vs compression rate, and a per-device timeline.

Every function takes the sweep's results frame (one row a simulated point) and returns a
``matplotlib.figure.Figure``; nothing is shown. Figures are built without pyplot, so they
are never registered in pyplot's global figure list and are freed like any object.
``save_all`` writes them as PNG and SVG, byte-identical from one run to the next.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

# Headless: sweeps run on servers and in CI; never open a window.
matplotlib.use("Agg")

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator
from matplotlib.transforms import Transform

from prismsim.metrics import LOWER_IS_BETTER

MS_PER_S = 1e3
LOG_Y_ABOVE = 10.0  # max/min latency beyond which the latency axis turns logarithmic
BYTES_PER_KB = 1e3  # decimal kilobytes, like the Mbit/s of the links
PAPER_BANDWIDTH_MBPS = 200.0  # the setting the paper highlights
PNG_DPI = 120
LABEL_SIZE = 8.0  # points
LABEL_CHAR_WIDTH = 0.68  # DejaVu Sans glyphs average ~0.6 em: a safe overestimate
FAR_LEVELS = 8  # label rows tried above and below a crowded point
NEAR_SPOTS = 6  # label spots touching their point (see _label_spots)
REASON_CHARS = 60  # of an accuracy_source quoted in the Pareto title
UNSCORED_Y = 0.03  # axes fraction where points without a score are drawn
SVG_HASH_SALT = "prismsim"  # fixed salt: SVG element ids stay the same across runs

# Known strategies first, in a fixed order, so colours and legends do not depend on the
# order of rows; unknown ones follow alphabetically.
STRATEGY_ORDER = ("single", "voltage", "tensor_parallel", "galaxy", "prism", "adaptive")
STRATEGY_COLOURS = {"single": "black", "voltage": "tab:blue", "tensor_parallel": "tab:purple",
                    "galaxy": "tab:green", "prism": "tab:orange",
                    "adaptive": "tab:cyan"}  # red is the Pareto front's
MARKERS = {"single": "s", "voltage": "o", "tensor_parallel": "D", "prism": "^", "adaptive": "*"}
OTHER_MARKERS = ("v", "P", "X", "*", "h")
LANE_COLOURS = {"compute": "tab:blue", "staging": "tab:orange", "wait": "0.8", "tx": "tab:green"}
PROGRAM_LANES = ("compute", "staging", "wait")  # sequential on a device: they share one row

# Columns whose values must agree for points to be comparable on one figure. The first
# three are always named in the title; the others only when the frame holds several values.
SYSTEM_SCOPE = ("latency_model", "model", "device_profile", "link", "medium", "latency_ms",
                "broadcast", "batch", "wire", "tokens")
MODEL_SCOPE = ("latency_model", "model", "batch", "wire", "tokens")
ALWAYS_NAMED = frozenset({"model", "device_profile", "link"})

Span = tuple[int, str, str, float, float]


# ---------------------------------------------------------------- configurations

def config_label(strategy: str, devices: int, cr: float = math.nan,
                 segments: float = math.nan, with_strategy: bool = True) -> str:
    """"single", "voltage P=2", "prism P=3 CR=4.95" (L= when given as segment means);
    "adaptive" whatever it picked (its rows carry the chosen P and CR)."""
    if strategy in ("single", "adaptive"):
        return strategy
    parts = [strategy] if with_strategy else []
    parts.append(f"P={int(devices)}")
    if not pd.isna(cr):
        parts.append(f"CR={cr:g}")
    if not pd.isna(segments):
        parts.append(f"L={segments:g}")
    return " ".join(parts)


def _strategy_rank(strategy: str) -> tuple[int, str]:
    known = strategy in STRATEGY_ORDER
    return (STRATEGY_ORDER.index(strategy) if known else len(STRATEGY_ORDER), strategy)


def _marker(strategy: str, others: Sequence[str]) -> str:
    if strategy in MARKERS:
        return MARKERS[strategy]
    return OTHER_MARKERS[others.index(strategy) % len(OTHER_MARKERS)]


def _nan_key(x: float) -> float:
    # NaN sorts first: a configuration without CR before those with one.
    return -math.inf if pd.isna(x) else float(x)


def _with_config(df: pd.DataFrame) -> pd.DataFrame:
    """Adds ``config`` (label) and ``order`` (rank of the configuration) columns."""
    df = df.copy()
    for col in ("cr", "segments"):
        if col not in df:
            df[col] = math.nan
    keys = df[["strategy", "devices", "cr", "segments"]].drop_duplicates()
    ranked = sorted(keys.itertuples(index=False), key=lambda k: (
        _strategy_rank(k.strategy), k.devices, _nan_key(k.cr), _nan_key(k.segments)))
    labels = [config_label(*k) for k in ranked]
    df["config"] = [config_label(*k) for k in
                    df[["strategy", "devices", "cr", "segments"]].itertuples(index=False)]
    df["order"] = df["config"].map({lab: i for i, lab in enumerate(labels)})
    return df.sort_values(["order", "bandwidth_mbps"], kind="stable")


def _scope(df: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, str]:
    """The rows sharing the first row's values of ``columns`` (those present), and a
    title naming them: one figure never mixes models, device profiles or links."""
    if df.empty:
        raise ValueError("no results to plot")
    first = df.iloc[0]
    keep = pd.Series(True, index=df.index)
    names = []
    # an offline stand-in supplies the accuracy of another model's latency: say which
    stand_in = "latency_model" in df and first["latency_model"] != first.get("model")
    for col in (c for c in columns if c in df):
        value = first[col]
        keep &= df[col].isna() if pd.isna(value) else df[col] == value
        if stand_in and col in ("latency_model", "model"):
            names.append(f"{'latency' if col == 'latency_model' else 'accuracy'} of {value}")
        elif col in ALWAYS_NAMED or df[col].nunique(dropna=False) > 1:
            names.append(_scope_name(col, value))
    return df[keep], ", ".join(names)


def _title(ax: Axes, text: str, width: int = 80) -> None:
    """Long titles (model, device, link, ...) wrapped so they stay inside the figure."""
    ax.set_title(textwrap.fill(text, width), fontsize="medium")


def _scope_name(col: str, value: object) -> str:
    units = {"latency_ms": "{:g} ms link latency", "batch": "batch {}", "wire": "{} on the wire",
             "tokens": "{} tokens", "broadcast": "broadcast={}"}
    return units.get(col, "{}").format(value)


# ---------------------------------------------------------------- latency vs bandwidth

def _plain() -> FuncFormatter:
    """Tick labels as plain numbers (200, not 2x10^2 on log axes); one per axis, as
    matplotlib formatters are bound to their axis."""
    return FuncFormatter(lambda v, _: f"{v:g}")


def _log_ticks_at(ax: Axes, values: Sequence[float]) -> None:
    """Log x axis with one labelled tick at each value present, no minor labels."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(list(values)))
    ax.xaxis.set_major_formatter(_plain())
    ax.xaxis.set_minor_locator(NullLocator())


def _latency_y_axis(ax: Axes, ms: Sequence[float]) -> None:
    """Linear from 0, or log when latencies span more than a decade (slow links can be
    100x slower than fast ones, which would flatten every other line onto the axis)."""
    lo, hi = min(ms), max(ms)
    if lo > 0 and hi / lo > LOG_Y_ABOVE:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_plain())
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.yaxis.set_minor_formatter(_plain())
        ax.set_ylabel("inference latency (ms, log)")
    else:
        ax.set_ylim(bottom=0)
        ax.set_ylabel("inference latency (ms)")


def latency_vs_bandwidth(df: pd.DataFrame) -> Figure:
    """End-to-end latency (ms) against link bandwidth (Mbit/s, log): one line a
    configuration. Configurations on one device do not use the link: their latency is
    drawn flat, dashed black, across the whole bandwidth range."""
    scoped, where = _scope(df, SYSTEM_SCOPE)
    data = _with_config(scoped)
    bandwidths = sorted(data["bandwidth_mbps"].unique())
    strategies = sorted(data["strategy"].unique(), key=_strategy_rank)
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
                marker=_marker(rows["strategy"].iloc[0], strategies))
        colour += 1
    _log_ticks_at(ax, bandwidths)
    _latency_y_axis(ax, (data["latency_s"] * MS_PER_S).tolist())
    ax.set_xlabel("link bandwidth (Mbit/s)")
    ax.grid(True, which="both", alpha=0.3)
    _title(ax, f"Latency vs bandwidth: {where}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return fig


# ---------------------------------------------------------------- Pareto front

def pareto_front(points: list[tuple[float, float]], higher_is_better: bool = True) -> list[int]:
    """Indices of the non-dominated (latency, score) points, sorted by latency.

    Point j dominates point i when it is at least as fast and at least as good, and
    strictly better in one of the two (lower latency always wins; the score wins when
    higher, or lower if ``higher_is_better`` is False). Identical points do not dominate
    each other, so both stay on the front. Points with a NaN coordinate are never on it.
    """
    sign = 1.0 if higher_is_better else -1.0
    # Score flipped to "higher is better" so one comparison serves both directions.
    pts = [(lat, sign * s) for lat, s in points]
    valid = [i for i, (lat, s) in enumerate(pts) if not (math.isnan(lat) or math.isnan(s))]

    def dominated(i: int) -> bool:
        li, si = pts[i]
        return any(pts[j][0] <= li and pts[j][1] >= si and (pts[j][0] < li or pts[j][1] > si)
                   for j in valid)

    front = [i for i in valid if not dominated(i)]
    return sorted(front, key=lambda i: (pts[i][0], -pts[i][1], i))


def _at_bandwidth(data: pd.DataFrame, bandwidth: float) -> pd.DataFrame:
    """Rows at ``bandwidth``, plus one row of each single-device configuration that was
    only simulated at other bandwidths (its latency does not depend on the link)."""
    here = data[data["bandwidth_mbps"] == bandwidth]
    alone = data[(data["devices"] == 1) & ~data["config"].isin(here["config"])]
    return pd.concat([here, alone.drop_duplicates("config")]).sort_values("order", kind="stable")


def _closest(values: Sequence[float], target: float) -> float:
    # Ties go to the lower value: sorted input and min() keep the first.
    return min(sorted(values), key=lambda v: abs(v - target))


def _metric_name(pts: pd.DataFrame) -> str:
    # A sweep without a dataset leaves ``metric`` empty: every point is then unscored.
    named = pts["metric"].dropna() if "metric" in pts else pd.Series(dtype=object)
    return str(named.iloc[0]) if len(named) else "accuracy"


def _metric_label(metric: str, higher: bool) -> str:
    direction = "higher" if higher else "lower"
    return f"{metric.replace('_', ' ')} ({direction} is better)"


# A label to place: (x, y, text, colour, transform of x and y).
Label = tuple[float, float, str, str, Transform]


def _strategy_colour(strategy: str, strategies: Sequence[str]) -> str:
    return STRATEGY_COLOURS.get(strategy, f"C{strategies.index(strategy) % 10}")


def _draw_points(ax: Axes, pts: pd.DataFrame, strategies: Sequence[str]) -> list[Label]:
    """One marker style and colour a strategy; returns each point's label (P and CR)."""
    labels: list[Label] = []
    for strategy in strategies:
        rows = pts[pts["strategy"] == strategy]
        if rows.empty:
            continue
        ms = (rows["latency_s"] * MS_PER_S).tolist()
        ax.scatter(ms, rows["accuracy"], marker=_marker(strategy, strategies), s=40, zorder=3,
                   color=_strategy_colour(strategy, strategies), label=strategy)
        for x, y, row in zip(ms, rows["accuracy"], rows.itertuples(index=False), strict=True):
            text = config_label(row.strategy, row.devices, row.cr, row.segments, False)
            labels.append((x, y, text, "0.15", ax.transData))
    return labels


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
    return [(x, UNSCORED_Y, config_label(row.strategy, row.devices, row.cr, row.segments),
             "0.45", bottom) for x, row in zip(ms, pts.itertuples(index=False), strict=True)]


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in points


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(a: Box, b: Box) -> bool:
    return b[0] <= a[0] and b[1] <= a[1] and a[2] <= b[2] and a[3] <= b[3]


def _label_spots(w: float, h: float) -> list[tuple[float, float]]:
    """Offsets (points) of a label's lower-left corner from its point, nearest first:
    the four corners, above and below (NEAR_SPOTS), then one row and more up and down,
    where a label may sit closer to another point than to its own: those get a leader."""
    g = 4.0
    near = [(g, g / 2), (g, -h - g / 2), (-w - g, g / 2), (-w - g, -h - g / 2),
            (-w / 2, g + 2), (-w / 2, -h - g - 2), (g, h + g), (g, -2 * h - g)]
    far = [(g, sign * k * (h + 3)) for k in range(2, 2 + FAR_LEVELS) for sign in (1, -1)]
    return near + far


def _label_box(px: float, py: float, text: str, existing: list[Box],
               frame: Box) -> tuple[Box, bool]:
    """Where a label goes: the first spot (see _label_spots) that stays in the axes and
    covers no marker or label, or the first spot if none; and whether it is far.
    Text size is estimated from its length (no renderer is needed)."""
    w, h = LABEL_CHAR_WIDTH * LABEL_SIZE * len(text), LABEL_SIZE
    spots = _label_spots(w, h)
    boxes = [(px + dx, py + dy, px + dx + w, py + dy + h) for dx, dy in spots]
    for i, b in enumerate(boxes):
        if _inside(b, frame) and not any(_overlaps(b, o) for o in existing):
            return b, i >= NEAR_SPOTS
    return boxes[0], False


def _place_labels(ax: Axes, labels: list[Label]) -> None:
    """Labels beside their points without overlapping each other where there is room:
    the layout is settled first, so positions on the page are the final ones."""
    fig = ax.get_figure()
    fig.draw_without_rendering()
    to_pt = 72.0 / fig.dpi
    where = [tuple(trans.transform((x, y)) * to_pt) for x, y, _, _, trans in labels]
    taken: list[Box] = [(px - 5, py - 5, px + 5, py + 5) for px, py in where]  # markers
    frame = tuple(np.asarray(ax.bbox.extents) * to_pt)
    for (x, y, text, colour, trans), (px, py) in sorted(
            zip(labels, where, strict=True), key=lambda item: (item[1][0], item[1][1])):
        box, far = _label_box(px, py, text, taken, frame)
        taken.append(box)
        leader = {"arrowstyle": "-", "color": "0.75", "linewidth": 0.5} if far else None
        ax.annotate(text, (x, y), xycoords=trans, xytext=(box[0] - px, box[1] - py),
                    textcoords="offset points", fontsize=LABEL_SIZE, color=colour,
                    ha="left", va="bottom", arrowprops=leader)


def _draw_front(ax: Axes, pts: pd.DataFrame, higher: bool) -> None:
    """The non-dominated points, ringed, joined by the step line of the best score
    reachable within each latency."""
    ms = (pts["latency_s"] * MS_PER_S).tolist()
    scores = pts["accuracy"].tolist()
    front = pareto_front(list(zip(ms, scores, strict=True)), higher_is_better=higher)
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
    labelled with their full configuration, and are never on the front."""
    scoped, where = _scope(df, SYSTEM_SCOPE)
    data = _with_config(scoped)
    bw = _pick_bandwidth(sorted(data["bandwidth_mbps"].unique()), bandwidth_mbps)
    pts = _at_bandwidth(data, bw)
    metric = _metric_name(pts)
    higher = metric not in LOWER_IS_BETTER
    scored, missing = pts[pts["accuracy"].notna()], pts[pts["accuracy"].isna()]
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.add_subplot()
    strategies = sorted(pts["strategy"].unique(), key=_strategy_rank)
    _draw_front(ax, scored, higher)
    labels = _draw_points(ax, scored, strategies) + _draw_missing(ax, missing)
    ax.set_xlabel("inference latency (ms)")
    ax.set_ylabel(_metric_label(metric, higher))
    if scored.empty:  # the y axis carries nothing: no numbers to misread
        ax.set_yticks([])
    ax.grid(True, alpha=0.3)
    note = _unscored_note(missing)
    _title(ax, f"Latency vs {metric.replace('_', ' ')} at {bw:g} Mbit/s: {where}{note}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    _place_labels(ax, labels)  # last: needs the final layout
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
        return _closest(present, PAPER_BANDWIDTH_MBPS)
    if wanted not in present:
        raise ValueError(f"no results at {wanted:g} Mbit/s; present: "
                         f"{', '.join(f'{v:g}' for v in present)}")
    return wanted


# ---------------------------------------------------------------- communication vs CR

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
    same count as a dashed reference. The volume does not depend on the link, so rows
    repeated over bandwidths (or device profiles) count once."""
    scoped, where = _scope(df, MODEL_SCOPE)
    data = _with_config(scoped).drop_duplicates(["config"])
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
        ax.xaxis.set_major_formatter(_plain())
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("sent per device per layer (KB)")
    ax.grid(True, alpha=0.3)
    _title(ax, f"Communication vs {xlabel}: {where}")
    if ax.get_lines():
        ax.legend(loc="best", fontsize=9)
    return fig


# ---------------------------------------------------------------- timeline

def _timeline_rows(spans: Sequence[Span]) -> list[tuple[int, bool]]:
    """(device, is_tx) rows present, device by device: a device's program lanes
    (compute, staging, wait) never overlap and share a row; transmissions run alongside
    the program, so they get a row of their own under it."""
    return sorted({(device, lane == "tx") for device, lane, *_ in spans})


def _row_name(device: int, tx: bool) -> str:
    name = f"device {device}" + (" (master)" if device == 0 else "")
    return f"{name} tx" if tx else name


def timeline(spans: list[Span], title: str = "") -> Figure:
    """Gantt chart of one simulated inference, x in ms. ``spans`` are (device, lane,
    label, start_s, end_s), lane in compute / staging / wait / tx, as recorded by
    ``simulate(..., record=True)``. Span labels are not drawn (too many to read)."""
    if not spans:
        raise ValueError("no spans: simulate with record=True to get a timeline")
    rows = _timeline_rows(spans)
    fig = Figure(figsize=(10, 1.6 + 0.45 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    lanes = [lane for lane in (*PROGRAM_LANES, "tx") if any(s[1] == lane for s in spans)]
    for y, (device, tx) in enumerate(rows):
        for lane in lanes:
            bars = [(start * MS_PER_S, (end - start) * MS_PER_S)
                    for d, ln, _, start, end in spans
                    if d == device and ln == lane and (ln == "tx") == tx]
            if bars:
                ax.broken_barh(bars, (y - 0.4, 0.8), facecolors=LANE_COLOURS[lane],
                               edgecolor="white", linewidth=0.3)
    ax.set_yticks(range(len(rows)), [_row_name(d, tx) for d, tx in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # device 0 on top
    ax.set_xlim(left=0)
    ax.set_xlabel("time (ms)")
    ax.grid(True, axis="x", alpha=0.3)
    _title(ax, title or "Timeline of one inference")
    ax.legend(handles=[Patch(color=LANE_COLOURS[lane], label=lane) for lane in lanes],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return fig


_draw_timeline = timeline  # save_all's ``timeline`` argument shadows the name


# ---------------------------------------------------------------- files

def save_figure(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Writes ``name``.png (120 dpi) and ``name``.svg into ``out_dir`` (created if needed)
    without dates, versions or random ids: same figure, same bytes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASH_SALT}):
        fig.savefig(png, dpi=PNG_DPI, metadata={"Software": None})
        fig.savefig(svg, metadata={"Date": None})
    return [png, svg]


def save_all(results: pd.DataFrame, out_dir: Path, timeline: list[Span] | None = None,
             timeline_title: str = "") -> list[Path]:
    """Writes latency_vs_bandwidth, pareto, comm_vs_cr (and timeline when spans are given)
    as .png and .svg into ``out_dir`` (created if needed); returns the paths in that
    order, PNG before SVG. Each figure is dropped once written."""
    makers = [("latency_vs_bandwidth", lambda: latency_vs_bandwidth(results)),
              ("pareto", lambda: pareto(results)),
              ("comm_vs_cr", lambda: comm_vs_cr(results))]
    if timeline is not None:
        makers.append(("timeline", lambda: _draw_timeline(timeline, timeline_title)))
    paths: list[Path] = []
    for name, make in makers:
        fig = make()
        paths += save_figure(fig, out_dir, name)
        fig.clear()  # not a pyplot figure: clearing frees its artists now, not at GC
    return paths
