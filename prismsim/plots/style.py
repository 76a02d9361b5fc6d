"""What every figure shares: units, strategy colours and markers, configuration labels
and order, the scope of a figure (which rows may share it) and its title, axes."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

from prismsim.configuration import NO_FINETUNE, Configuration

MS_PER_S = 1e3
LOG_Y_ABOVE = 10.0  # max/min latency beyond which the latency axis turns logarithmic
BYTES_PER_KB = 1e3  # decimal kilobytes, like the Mbit/s of the links
PAPER_BANDWIDTH_MBPS = 200.0  # the setting the paper highlights
REASON_CHARS = 60  # of an accuracy_source quoted in the Pareto title
UNSCORED_Y = 0.03  # axes fraction where points without a score are drawn

# Known strategies first, in a fixed order, so colours and legends do not depend on the
# order of rows; unknown ones follow alphabetically.
STRATEGY_ORDER = ("single", "voltage", "tensor_parallel", "galaxy", "prism", "adaptive")
STRATEGY_COLOURS = {"single": "black", "voltage": "tab:blue", "tensor_parallel": "tab:purple",
                    "galaxy": "tab:green", "prism": "tab:orange",
                    "adaptive": "tab:cyan"}  # red is the Pareto front's
MARKERS = {"single": "s", "voltage": "o", "tensor_parallel": "D", "prism": "^", "adaptive": "*"}
OTHER_MARKERS = ("v", "P", "X", "*", "h")
FINETUNE_COLOURS = ("tab:brown", "tab:pink", "tab:olive", "tab:gray")  # by mode, in order
LANE_COLOURS = {"compute": "tab:blue", "staging": "tab:orange", "wait": "0.8", "tx": "tab:green"}
PROGRAM_LANES = ("compute", "staging", "wait")  # sequential on a device: they share one row

# Columns whose values must agree for points to be comparable on one figure. The first
# three are always named in the title; the others only when the frame holds several values.
SYSTEM_SCOPE = ("latency_model", "model", "device_profile", "link", "medium", "latency_ms",
                "broadcast", "batch", "wire", "tokens", "generate")
MODEL_SCOPE = ("latency_model", "model", "batch", "wire", "tokens", "generate")
ALWAYS_NAMED = frozenset({"model", "device_profile", "link"})


def strategy_rank(strategy: str) -> tuple[int, str]:
    known = strategy in STRATEGY_ORDER
    return (STRATEGY_ORDER.index(strategy) if known else len(STRATEGY_ORDER), strategy)


def strategy_marker(strategy: str, others: Sequence[str]) -> str:
    if strategy in MARKERS:
        return MARKERS[strategy]
    return OTHER_MARKERS[others.index(strategy) % len(OTHER_MARKERS)]


def _nan_key(x: float) -> float:
    # NaN sorts first: a configuration without CR before those with one.
    return -math.inf if pd.isna(x) else float(x)


def tuned(df: pd.DataFrame) -> pd.Series:
    """Whether each row's weights were fine-tuned (rows without the column: none)."""
    if "finetune" not in df:
        return pd.Series(False, index=df.index)
    return df["finetune"].notna() & (df["finetune"] != NO_FINETUNE)


def own_weights(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with the model's own weights: a fine-tuned row's latency, energy and bytes
    are its plain twin's (same programs), so figures of those draw each once."""
    return df[~tuned(df)]


def with_config(df: pd.DataFrame) -> pd.DataFrame:
    """Adds ``config`` (label) and ``order`` (rank of the configuration) columns."""
    df = df.copy()
    for col in ("cr", "segments", "exchange", "finetune"):
        if col not in df:
            df[col] = math.nan
    cols = ["strategy", "devices", "cr", "segments", "exchange", "finetune"]
    keys = df[cols].drop_duplicates()
    ranked = sorted(keys.itertuples(index=False), key=lambda k: (
        strategy_rank(k.strategy), k.devices, _nan_key(k.cr), _nan_key(k.segments),
        str(k.exchange), "" if pd.isna(k.finetune) or k.finetune == NO_FINETUNE
        else str(k.finetune)))
    labels = [Configuration.of(*k).label() for k in ranked]
    df["config"] = [Configuration.of(*k).label() for k in df[cols].itertuples(index=False)]
    df["order"] = df["config"].map({lab: i for i, lab in enumerate(labels)})
    return df.sort_values(["order", "bandwidth_mbps"], kind="stable")


def scope_rows(df: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, str]:
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


def set_title(ax: Axes, text: str, width: int = 80) -> None:
    """Long titles (model, device, link, ...) wrapped so they stay inside the figure."""
    ax.set_title(textwrap.fill(text, width), fontsize="medium")


def _scope_name(col: str, value: object) -> str:
    units = {"latency_ms": "{:g} ms link latency", "batch": "batch {}", "wire": "{} on the wire",
             "tokens": "{} tokens", "broadcast": "broadcast={}",
             "generate": "{:g} tokens generated"}
    return units.get(col, "{}").format(value)


def plain_ticks() -> FuncFormatter:
    """Tick labels as plain numbers (200, not 2x10^2 on log axes); one per axis, as
    matplotlib formatters are bound to their axis."""
    return FuncFormatter(lambda v, _: f"{v:g}")


def log_ticks_at(ax: Axes, values: Sequence[float]) -> None:
    """Log x axis with one labelled tick at each value present, no minor labels."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(list(values)))
    ax.xaxis.set_major_formatter(plain_ticks())
    ax.xaxis.set_minor_locator(NullLocator())


def latency_y_axis(ax: Axes, ms: Sequence[float]) -> None:
    """Linear from 0, or log when latencies span more than a decade (slow links can be
    100x slower than fast ones, which would flatten every other line onto the axis)."""
    lo, hi = min(ms), max(ms)
    if lo > 0 and hi / lo > LOG_Y_ABOVE:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plain_ticks())
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.yaxis.set_minor_formatter(plain_ticks())
        ax.set_ylabel("inference latency (ms, log)")
    else:
        ax.set_ylim(bottom=0)
        ax.set_ylabel("inference latency (ms)")


def metric_name(pts: pd.DataFrame) -> str:
    # A sweep without a dataset leaves ``metric`` empty: every point is then unscored.
    named = pts["metric"].dropna() if "metric" in pts else pd.Series(dtype=object)
    return str(named.iloc[0]) if len(named) else "accuracy"


def metric_label(metric: str, higher: bool) -> str:
    direction = "higher" if higher else "lower"
    return f"{metric.replace('_', ' ')} ({direction} is better)"


def strategy_colour(strategy: str, strategies: Sequence[str]) -> str:
    return STRATEGY_COLOURS.get(strategy, f"C{strategies.index(strategy) % 10}")


