"""Writing figures: PNG and SVG, byte-identical from one run to the next."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from prismsim.plots.decode import has_decoding, tokens_per_s
from prismsim.plots.latency import comm_vs_cr, latency_vs_bandwidth
from prismsim.plots.pareto import pareto
from prismsim.plots.timeline import timeline as draw_timeline
from prismsim.sim.results import Span

PNG_DPI = 120
SVG_HASH_SALT = "prismsim"  # fixed salt: SVG element ids stay the same across runs

def save_figure(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Writes ``name``.png (120 dpi) and ``name``.svg into ``out_dir`` (created if needed)
    without dates, versions or random ids: same figure, same bytes."""
    png, svg = Path(out_dir) / f"{name}.png", Path(out_dir) / f"{name}.svg"
    write_figure(fig, png)
    write_figure(fig, svg)
    return [png, svg]


def write_figure(fig: Figure, path: Path) -> None:
    """One file, PNG (120 dpi) or SVG by its suffix, its folder made; no dates, versions
    or random ids: same figure, same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        fig.savefig(path, dpi=PNG_DPI, metadata={"Software": None})
        return
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASH_SALT}):
        fig.savefig(path, metadata={"Date": None})


def save_all(results: pd.DataFrame, out_dir: Path, timeline: list[Span] | None = None,
             timeline_title: str = "") -> list[Path]:
    """Writes latency_vs_bandwidth, pareto, comm_vs_cr (tokens_per_s for generation rows;
    timeline when spans are given)
    as .png and .svg into ``out_dir`` (created if needed); returns the paths in that
    order, PNG before SVG. Each figure is dropped once written."""
    makers = [("latency_vs_bandwidth", lambda: latency_vs_bandwidth(results)),
              ("pareto", lambda: pareto(results)),
              ("comm_vs_cr", lambda: comm_vs_cr(results))]
    if has_decoding(results):
        makers.append(("tokens_per_s", lambda: tokens_per_s(results)))
    if timeline is not None:
        makers.append(("timeline", lambda: draw_timeline(timeline, timeline_title)))
    paths: list[Path] = []
    for name, make in makers:
        fig = make()
        paths += save_figure(fig, out_dir, name)
        fig.clear()  # not a pyplot figure: clearing frees its artists now, not at GC
    return paths
