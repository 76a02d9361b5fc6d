"""The per-device timeline of one simulated inference (a Gantt chart)."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from prismsim.plots.style import LANE_COLOURS, MS_PER_S, PROGRAM_LANES, set_title
from prismsim.sim.results import Span


def _timeline_rows(spans: Sequence[Span]) -> list[tuple[int, bool]]:
    """(device, is_tx) rows present, device by device: a device's program lanes
    (compute, staging, wait) never overlap and share a row; transmissions run alongside
    the program, so they get a row of their own under it."""
    return sorted({(s.device, s.lane == "tx") for s in spans})


def _row_name(device: int, tx: bool) -> str:
    name = f"device {device}" + (" (master)" if device == 0 else "")
    return f"{name} tx" if tx else name


def timeline(spans: list[Span], title: str = "") -> Figure:
    """Gantt chart of one simulated inference, x in ms. ``spans`` as recorded by
    ``simulate(..., record=True)``, lane in compute / staging / wait / tx. Span labels
    are not drawn (too many to read)."""
    if not spans:
        raise ValueError("no spans: simulate with record=True to get a timeline")
    rows = _timeline_rows(spans)
    fig = Figure(figsize=(10, 1.6 + 0.45 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    lanes = [lane for lane in (*PROGRAM_LANES, "tx") if any(s.lane == lane for s in spans)]
    for y, (device, tx) in enumerate(rows):
        for lane in lanes:
            bars = [(s.start_s * MS_PER_S, (s.end_s - s.start_s) * MS_PER_S) for s in spans
                    if s.device == device and s.lane == lane and (lane == "tx") == tx]
            if bars:
                ax.broken_barh(bars, (y - 0.4, 0.8), facecolors=LANE_COLOURS[lane],
                               edgecolor="white", linewidth=0.3)
    ax.set_yticks(range(len(rows)), [_row_name(d, tx) for d, tx in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # device 0 on top
    ax.set_xlim(left=0)
    ax.set_xlabel("time (ms)")
    ax.grid(True, axis="x", alpha=0.3)
    set_title(ax, title or "Timeline of one inference")
    ax.legend(handles=[Patch(color=LANE_COLOURS[lane], label=lane) for lane in lanes],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return fig
