"""How a validation compares, for every table it writes: each figure's error against the
measured one (``error_pct``), the configuration's options as one text (``options_text``,
so the tables join), the mean absolute percentage error, the share of points within a
bound (nn-Meter's +-10 % metric), and the measured-vs-simulated scatter plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from matplotlib.figure import Figure


def error_pct(predicted: float, measured: float) -> float:
    """How far ``predicted`` is from ``measured``, in percent of it (+: predicted high)."""
    return 100 * (predicted / measured - 1)


def options_text(options: dict[str, Any]) -> str:
    """A configuration's options as every validation table writes them: YAML flow text,
    keys sorted ("{}", "{cr: 4, exchange: ring}"), read back by ``yaml.safe_load``."""
    return yaml.safe_dump(options, default_flow_style=True).strip()


def mape(table: pd.DataFrame, name: str = "predicted", distributed_only: bool = True
         ) -> float:
    """Mean absolute percentage error of ``name``'s latencies (predicted, simulated,
    ...: the columns <name>_ms and <name>_error_pct)."""
    rows = table[table["devices"] > 1] if distributed_only else table
    return float(rows[f"{name}_error_pct"].abs().mean())


def share_within(table: pd.DataFrame, name: str = "predicted", limit_pct: float = 10.0
                 ) -> float:
    """The share of distributed points whose error is within +-limit_pct."""
    rows = table[table["devices"] > 1]
    return float((rows[f"{name}_error_pct"].abs() <= limit_pct).mean())


def scatter_plot(table: pd.DataFrame, path: Path, name: str = "predicted") -> None:
    """Measured against ``name``'s latencies, per configuration."""
    column = f"{name}_ms"
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.add_subplot()
    for (strategy, options, devices), group in table.groupby(["strategy", "options",
                                                              "devices"]):
        label = f"{strategy} {options if options != '{}' else ''} P={devices}"
        ax.scatter(group["measured_ms"], group[column], label=label, s=18)
    top = float(max(table["measured_ms"].max(), table[column].max())) * 1.05
    ax.plot([0, top], [0, top], color="gray", lw=0.8, ls="--", label="equal")
    what = name.replace("_", " ")
    ax.set(xlabel="measured latency (ms)", ylabel=f"{what} latency (ms)", xlim=(0, top),
           ylim=(0, top), title=f"{what.capitalize()} vs testbed (MAPE "
                                f"{mape(table, name):.1f} %)")
    ax.legend(fontsize=6)
    fig.savefig(path, dpi=120, metadata={"Software": None})


def error_grid(table: pd.DataFrame, column: str = "predicted_error_pct") -> pd.DataFrame:
    """Every distributed point's error in one table: a row per strategy, options and
    device count, a column per network point ("<Mbit/s> Mbit/s <ms> ms")."""
    rows = table[table["devices"] > 1].copy()
    rows["network"] = [f"{b:g} Mbit/s {lat:g} ms" for b, lat in
                       zip(rows["bandwidth_mbps"], rows["latency_ms"], strict=True)]
    grid = rows.pivot_table(index=["strategy", "options", "devices"], columns="network",
                            values=column, sort=False)
    return grid.round(1)


def layer_waits(layers: pd.DataFrame) -> pd.DataFrame:
    """Per distributed point: the median time from one layer's end to the next on the
    master (its wait for the exchange plus the layer's compute), measured and predicted,
    over the layers after the first exchange (the first also waits for the input)."""
    rows = []
    keys = ["strategy", "options", "devices", "bandwidth_mbps", "latency_ms"]
    for key, group in layers[layers["devices"] > 1].groupby(keys, sort=False):
        group = group.sort_values("layer")
        steady = group["layer"] >= group["layer"].min() + 2
        measured = group["measured_ms"].diff()[steady].median()
        predicted = group["predicted_ms"].diff()[steady].median()
        rows.append({**dict(zip(keys, key, strict=True)), "measured_layer_ms": measured,
                     "predicted_layer_ms": predicted,
                     "error_pct": error_pct(predicted, measured)})
    return pd.DataFrame(rows)


def mean_signed(table: pd.DataFrame, name: str = "predicted", distributed: bool = True
                ) -> float:
    """Mean signed error of ``name``'s latencies, in percent (+: predicted slow): the
    bias, over the distributed points (``distributed``) or the single-device ones."""
    rows = table[(table["devices"] > 1) == distributed]
    return float(rows[f"{name}_error_pct"].mean())


POINT = ("strategy", "options", "devices", "bandwidth_mbps", "latency_ms")  # a row's point


def repeatability(table: pd.DataFrame, other: pd.DataFrame) -> dict[str, float]:
    """The same grid measured twice: each distributed point's measured latency in
    ``table`` against ``other``'s (+: this run slower), over the points both have; with
    the largest share of the CPU other virtual machines took during a group of each run
    (percent; NaN where a run did not record it)."""
    both = table.merge(other, on=list(POINT), suffixes=("", "_other"))
    both = both[both["devices"] > 1]
    if both.empty:
        raise ValueError("the two runs have no distributed point in common")
    diff = 100 * (both["measured_ms"] / both["measured_ms_other"] - 1)
    stolen = [float(t["stolen_cpu_pct"].max()) if "stolen_cpu_pct" in t else float("nan")
              for t in (table, other)]
    return {"points": len(both), "mape": float(diff.abs().mean()),
            "within_10_share": float((diff.abs() <= 10).mean()),
            "mean_signed": float(diff.mean()), "stolen_max_pct": stolen[0],
            "other_stolen_max_pct": stolen[1]}
