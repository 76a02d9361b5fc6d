"""The files of a serving run: runs, summary with intervals, capacity, requests, plot;
and redrawing the plot from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from prismsim.plots.dynamic import trace_and_choices
from prismsim.plots.files import save_figure
from prismsim.plots.serving import latency_vs_load
from prismsim.serve.stats import aggregate
from prismsim.sim.link_trace import TraceClock
from prismsim.sim.specs import LinkSpec

SHOWN_IF_ANY = ["lost_share", "regret_mean_s", "regret_p99_s"]  # (events; an oracle)
TRACE_POINTS = 5000  # the rate written out (link_trace.csv) at most this many times

SHOWN = ["label", "load", "value", "throughput_per_s", "latency_p50_s", "latency_p99_s",
         "latency_p99_s_ci95", "drop_share", "compute_util_max", "local_share",
         "energy_per_request_j"]


def write_results(out: Path, runs: pd.DataFrame, requests: pd.DataFrame,
                  capacity: pd.DataFrame | None, slo_ms: float | None, title: str,
                  link: LinkSpec | None = None, oracle: str | None = None
                  ) -> tuple[pd.DataFrame, list[Path]]:
    """runs.csv, summary.csv (means and ``_ci95`` half-widths over replications; with an
    ``oracle`` configuration's label, each one's regret against it), capacity.csv,
    requests.parquet and serving.png/.svg; under a link trace, link_trace.csv and
    dynamic.png/.svg."""
    out.mkdir(parents=True, exist_ok=True)
    summary = with_regret(aggregate(runs, ["label", "load", "value"]), oracle)
    runs.to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    requests.to_parquet(out / "requests.parquet", index=False)
    written = [out / "runs.csv", out / "summary.csv", out / "requests.parquet"]
    if capacity is not None:
        capacity.to_csv(out / "capacity.csv", index=False)
        written.append(out / "capacity.csv")
    if not summary.empty:
        written += plot(out, summary, capacity, slo_ms, title)
    if link is not None and link.trace is not None and not requests.empty:
        end_s = float(requests["finish_s"].max())
        trace_table(link, end_s).to_csv(out / "link_trace.csv", index=False)
        written += [out / "link_trace.csv", *plot_dynamic(out, title)]
    return summary, written


def with_regret(summary: pd.DataFrame, oracle: str | None) -> pd.DataFrame:
    """``summary`` with each row's mean and p99 latency over those of the ``oracle``
    configuration at the same offered load (``regret_mean_s``, ``regret_p99_s``)."""
    if oracle is None or summary.empty:
        return summary
    key = ["load", "value"]
    ref = summary[summary["label"] == oracle].set_index(key)
    at = summary.set_index(key).index
    out = summary.copy()
    for col in ("mean", "p99"):
        base = ref[f"latency_{col}_s"].reindex(at).to_numpy()
        out[f"regret_{col}_s"] = summary[f"latency_{col}_s"].to_numpy() - base
    return out


def trace_table(link: LinkSpec, end_s: float) -> pd.DataFrame:
    """The link's rate after loss (Mbit/s) from the run's start to ``end_s``, at each
    step of its trace (or at most ``TRACE_POINTS`` evenly spaced times)."""
    assert link.trace is not None
    clock = TraceClock(link.trace, link.bandwidth_mbps)
    steps = np.diff(link.trace.times_s)
    step_s = max(float(steps.min()) if len(steps) else end_s, end_s / TRACE_POINTS)
    times = np.arange(0.0, end_s + step_s, step_s)
    return pd.DataFrame({"time_s": times,
                         "bandwidth_mbps": [clock.bandwidth_mbps(t) for t in times]})


def plot_dynamic(out: Path, title: str) -> list[Path]:
    """dynamic.png/.svg from link_trace.csv and requests.parquet (replication 0 at the
    first offered load)."""
    requests = pd.read_parquet(out / "requests.parquet")
    first = requests[(requests["replication"] == 0)
                     & (requests["value"] == requests["value"].min())]
    fig = trace_and_choices(pd.read_csv(out / "link_trace.csv"), first,
                            f"{title}\nrequests at {first['value'].min():g}/s, replication 0")
    return save_figure(fig, out, "dynamic")


def plot(out: Path, summary: pd.DataFrame, capacity: pd.DataFrame | None,
         slo_ms: float | None, title: str) -> list[Path]:
    return save_figure(latency_vs_load(summary, capacity, slo_ms, title), out, "serving")


def replot(out: Path, slo_ms: float | None, title: str) -> list[Path]:
    """Redraw serving.png/.svg from summary.csv (and capacity.csv) of a finished run."""
    path = out / "summary.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no summary to plot (run prismsim serve first)")
    cap = out / "capacity.csv"
    written = plot(out, pd.read_csv(path), pd.read_csv(cap) if cap.exists() else None,
                   slo_ms, title)
    if (out / "link_trace.csv").exists():
        written += plot_dynamic(out, title)
    return written
