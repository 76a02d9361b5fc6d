"""The files of a serving run: runs, summary with intervals, capacity, requests, plot;
and redrawing the plot from them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prismsim.plots.files import save_figure
from prismsim.plots.serving import latency_vs_load
from prismsim.serve.stats import aggregate

SHOWN = ["label", "load", "value", "throughput_per_s", "latency_p50_s", "latency_p99_s",
         "latency_p99_s_ci95", "drop_share", "compute_util_max", "local_share",
         "energy_per_request_j"]


def write_results(out: Path, runs: pd.DataFrame, requests: pd.DataFrame,
                  capacity: pd.DataFrame | None, slo_ms: float | None, title: str
                  ) -> tuple[pd.DataFrame, list[Path]]:
    """runs.csv, summary.csv (means and ``_ci95`` half-widths over replications),
    capacity.csv, requests.parquet and serving.png/.svg."""
    out.mkdir(parents=True, exist_ok=True)
    summary = aggregate(runs, ["label", "load", "value"])
    runs.to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    requests.to_parquet(out / "requests.parquet", index=False)
    written = [out / "runs.csv", out / "summary.csv", out / "requests.parquet"]
    if capacity is not None:
        capacity.to_csv(out / "capacity.csv", index=False)
        written.append(out / "capacity.csv")
    if not summary.empty:
        written += plot(out, summary, capacity, slo_ms, title)
    return summary, written


def plot(out: Path, summary: pd.DataFrame, capacity: pd.DataFrame | None,
         slo_ms: float | None, title: str) -> list[Path]:
    return save_figure(latency_vs_load(summary, capacity, slo_ms, title), out, "serving")


def replot(out: Path, slo_ms: float | None, title: str) -> list[Path]:
    """Redraw serving.png/.svg from summary.csv (and capacity.csv) of a finished run."""
    path = out / "summary.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no summary to plot (run prismsim serve first)")
    cap = out / "capacity.csv"
    return plot(out, pd.read_csv(path), pd.read_csv(cap) if cap.exists() else None,
                slo_ms, title)
