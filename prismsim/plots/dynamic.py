"""A serving run under a link trace: the link's rate over time above, and below, for
each configuration that chooses per request (adaptive), each request's latency at its
arrival, coloured by the way it was served."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from prismsim.plots.style import MS_PER_S, STRATEGY_COLOURS


def trace_and_choices(trace: pd.DataFrame, requests: pd.DataFrame, title: str = ""
                      ) -> Figure:
    """``trace``: columns time_s, bandwidth_mbps (the rate after loss, from the serving
    run's start); ``requests``: one run's requests (label, arrival_s, latency_s,
    choice), those with a choice drawn, one panel per label."""
    chosen = requests[requests["choice"].fillna("") != ""]
    labels = list(dict.fromkeys(chosen["label"]))
    fig = Figure(figsize=(8.0, 2.0 + 1.9 * len(labels)))
    axes = fig.subplots(1 + len(labels), 1, sharex=True, squeeze=False)[:, 0]
    end_s = float(requests["arrival_s"].max()) if len(requests) else float(trace["time_s"].max())
    shown = trace[trace["time_s"] <= end_s]
    axes[0].step(shown["time_s"], shown["bandwidth_mbps"], where="post", color="C0")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("link (Mbit/s)")
    colours = {c: STRATEGY_COLOURS.get(c.split()[0], "grey") for c in set(chosen["choice"])}
    for ax, label in zip(axes[1:], labels, strict=True):
        rows = chosen[chosen["label"] == label]
        for choice, group in rows.groupby("choice"):
            ax.scatter(group["arrival_s"], group["latency_s"] * MS_PER_S, s=4,
                       color=colours[choice], label=choice)
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms)")
        ax.set_title(label, fontsize=8, loc="left")
        ax.legend(fontsize=7, markerscale=3, loc="upper right")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
