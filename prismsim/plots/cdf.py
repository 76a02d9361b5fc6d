"""The latency distribution of one inference (``simulate --samples``): its empirical CDF,
with the mean-time replay and the p50 / p95 / p99 marked."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from prismsim.plots.style import MS_PER_S

MARKED = ((0.5, ":"), (0.95, "--"), (0.99, "-"))  # quantile, line style


def latency_cdf(latency_s: np.ndarray, mean_time_s: float, title: str = "") -> Figure:
    """Share of inferences done by each latency; ``mean_time_s``: the replay of mean
    times (every step and message at its mean), for reference."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    x_ms = np.sort(latency_s) * MS_PER_S
    share = np.arange(1, len(x_ms) + 1) / len(x_ms)
    ax.step(x_ms, share, where="post", color="C0", label=f"{len(x_ms)} sampled inferences")
    for q, style in MARKED:
        at_ms = float(np.quantile(latency_s, q)) * MS_PER_S
        ax.axvline(at_ms, color="C1", linestyle=style, linewidth=1,
                   label=f"p{round(q * 100)} {at_ms:.1f} ms")
    ax.axvline(mean_time_s * MS_PER_S, color="black", linewidth=1,
               label=f"mean times {mean_time_s * MS_PER_S:.1f} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("share of inferences done")
    ax.set_ylim(0, 1.01)
    ax.grid(True, alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
