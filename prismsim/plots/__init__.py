"""Figures of sweep results: latency vs bandwidth (the paper's Fig. 5), the latency /
accuracy Pareto front, communication vs compression rate, and a per-device timeline.

Every figure function takes the sweep's results frame (one row a simulated point) and
returns a ``matplotlib.figure.Figure``; nothing is shown. Figures are built without
pyplot, so they are never registered in pyplot's global figure list and are freed like
any object. ``save_all`` writes them as PNG and SVG, byte-identical from one run to the
next. Modules: ``style`` (what figures share), ``labels`` (label placement), ``latency``,
``pareto``, ``timeline``, ``files``.
"""

import matplotlib

matplotlib.use("Agg")  # headless: sweeps run on servers and in CI; never open a window

from prismsim.plots.files import save_all, save_figure
from prismsim.plots.latency import comm_vs_cr, latency_vs_bandwidth
from prismsim.plots.pareto import pareto
from prismsim.plots.timeline import timeline

__all__ = ["comm_vs_cr", "latency_vs_bandwidth", "pareto", "save_all", "save_figure",
           "timeline"]
