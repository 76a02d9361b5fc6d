"""Figures of sweep results, checked on a small hand-made results table whose Pareto
fronts and line counts are worked out by hand below."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from prismsim import plots
from prismsim.sim import Span

BANDWIDTHS = (50.0, 200.0, 1000.0)
# (strategy, P, CR, latency ms at 50 / 200 / 1000 Mbit/s, accuracy, comm bytes/device/layer)
CONFIGS = [
    ("single", 1, math.nan, (500, 500, 500), 0.81, 0.0),
    ("voltage", 2, math.nan, (900, 420, 300), 0.81, 300_000.0),
    ("voltage", 3, math.nan, (1200, 450, 280), 0.81, 400_000.0),
    ("prism", 2, 4.0, (600, 330, 270), 0.80, 75_000.0),
    ("prism", 3, 4.0, (700, 300, 220), 0.79, 100_000.0),
    ("prism", 3, 8.0, (500, 260, 200), 0.75, 50_000.0),
]
LABELS = ["single", "voltage P=2", "voltage P=3", "prism P=2 CR=4", "prism P=3 CR=4",
          "prism P=3 CR=8"]


def results(model: str = "vit-base") -> pd.DataFrame:
    rows = []
    for strategy, p, cr, lat_ms, acc, comm in CONFIGS:
        for bw, ms in zip(BANDWIDTHS, lat_ms, strict=True):
            rows.append({
                "model": model, "strategy": strategy, "devices": p, "cr": cr,
                "segments": math.nan, "device_profile": "cpu-2core-2.1ghz",
                "link": "ethernet-1g", "medium": "switched", "bandwidth_mbps": bw,
                "latency_ms": 0.5, "batch": 1, "latency_s": ms / 1e3, "energy_j": 1.0,
                "bytes_on_air": int(comm * 12), "gflops_per_device": 17.5 / p,
                "comm_bytes_per_device_per_layer": comm, "pdplc_tokens": 0.0,
                "metric": "accuracy", "accuracy": acc, "accuracy_source": "hand-made",
            })
    return pd.DataFrame(rows)


def line(ax, label: str):
    return next(ln for ln in ax.get_lines() if ln.get_label() == label)


# ---------------------------------------------------------------- latency vs bandwidth

def test_latency_vs_bandwidth_one_line_per_configuration():
    fig = plots.latency_vs_bandwidth(results())
    ax = fig.axes[0]
    assert len(ax.get_lines()) == len(CONFIGS)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == LABELS
    assert ax.get_xscale() == "log"
    assert list(ax.get_xticks()) == list(BANDWIDTHS)
    assert list(line(ax, "single").get_ydata()) == [500.0] * 3  # flat, in ms
    assert list(line(ax, "prism P=3 CR=8").get_ydata()) == pytest.approx([500, 260, 200])


def test_latency_vs_bandwidth_keeps_the_first_model_only():
    df = pd.concat([results("vit-base"), results("bert-base")])
    fig = plots.latency_vs_bandwidth(df)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == len(CONFIGS)
    assert "vit-base" in ax.get_title() and "bert-base" not in ax.get_title()


def test_latency_axis_turns_log_past_a_decade():
    df = results()
    df.loc[df["bandwidth_mbps"] == 50.0, "latency_s"] *= 20  # 24 s vs 0.2 s
    assert plots.latency_vs_bandwidth(df).axes[0].get_yscale() == "log"
    assert plots.latency_vs_bandwidth(results()).axes[0].get_yscale() == "linear"


# ---------------------------------------------------------------- pareto figure

def front_latencies(fig) -> list[float]:
    return list(line(fig.axes[0], "Pareto front").get_xdata())


def test_pareto_at_200_mbps_by_default():
    fig = plots.pareto(results())
    ax = fig.axes[0]
    # At 200 Mbit/s: 260 ms/0.75, 300/0.79, 330/0.80, 420/0.81 each trade; voltage P=3
    # (450/0.81) and single (500/0.81) are slower than voltage P=2 for the same accuracy.
    assert front_latencies(fig) == pytest.approx([260, 300, 330, 420])
    assert len(ax.texts) == len(CONFIGS)  # every point labelled
    assert "P=3 CR=8" in {t.get_text() for t in ax.texts}
    assert "200 Mbit/s" in ax.get_title()
    assert "higher is better" in ax.get_ylabel()


def test_pareto_at_another_bandwidth():
    # At 1000 Mbit/s voltage P=3 (280 ms) beats voltage P=2 (300 ms) at equal accuracy.
    assert front_latencies(plots.pareto(results(), 1000.0)) == pytest.approx([200, 220, 270, 280])
    with pytest.raises(ValueError, match="present: 50, 200, 1000"):
        plots.pareto(results(), 100.0)


def test_pareto_lower_is_better_for_bits_per_byte():
    df = results()
    df["metric"] = "bits_per_byte"
    loss = {0.81: 1.0, 0.80: 1.05, 0.79: 1.1, 0.75: 1.3}  # worse accuracy, more bits
    df["accuracy"] = df["accuracy"].map(loss)
    fig = plots.pareto(df)
    assert front_latencies(fig) == pytest.approx([260, 300, 330, 420])
    assert "lower is better" in fig.axes[0].get_ylabel()


def test_pareto_unscored_points_are_grey_and_off_the_front():
    df = results()
    df.loc[df["cr"] == 8.0, "accuracy"] = math.nan
    fig = plots.pareto(df)
    ax = fig.axes[0]
    assert front_latencies(fig) == pytest.approx([300, 330, 420])
    assert list(line(ax, "no score").get_xdata()) == pytest.approx([260])
    assert "prism P=3 CR=8" in {t.get_text() for t in ax.texts}
    assert len(ax.texts) == len(CONFIGS)
    assert "no score" in ax.get_title()


def test_pareto_without_a_dataset():
    df = results()
    df["metric"], df["accuracy"] = math.nan, math.nan  # as a sweep without a dataset writes
    df["accuracy_source"] = "no dataset in the scenario"
    ax = plots.pareto(df).axes[0]
    assert "Pareto front" not in [ln.get_label() for ln in ax.get_lines()]
    assert len(line(ax, "no score").get_xdata()) == len(CONFIGS)
    assert len(ax.texts) == len(CONFIGS)
    assert "no dataset in the scenario" in ax.get_title()
    assert list(ax.get_yticks()) == []


# ---------------------------------------------------------------- communication vs CR

def test_comm_vs_cr():
    fig = plots.comm_vs_cr(results())
    ax = fig.axes[0]
    # prism P=2 and P=3 lines, and a voltage reference at each P.
    assert sorted(ln.get_label() for ln in ax.get_lines()) == [
        "prism P=2", "prism P=3", "voltage P=2", "voltage P=3"]
    p3 = line(ax, "prism P=3")
    assert list(p3.get_xdata()) == [4.0, 8.0]  # one point per CR despite 3 bandwidths
    assert list(p3.get_ydata()) == pytest.approx([100.0, 50.0])  # KB
    assert list(line(ax, "voltage P=3").get_ydata()) == pytest.approx([400.0, 400.0])
    assert line(ax, "voltage P=2").get_linestyle() == "--"


def test_comm_vs_segment_means_when_no_cr_is_given():
    df = results()
    # The Table IV scenarios give L (means per partition), not CR.
    df["segments"] = df["cr"].map({4.0: 20.0, 8.0: 10.0})
    df["cr"] = math.nan
    ax = plots.comm_vs_cr(df).axes[0]
    p3 = line(ax, "prism P=3")
    assert list(p3.get_xdata()) == [10.0, 20.0]
    assert list(p3.get_ydata()) == pytest.approx([50.0, 100.0])
    assert "L" in ax.get_xlabel()


# ---------------------------------------------------------------- timeline

SPANS = [Span(*s) for s in [
    (0, "compute", "embed", 0.0, 0.001), (0, "tx", "x -> [1]", 0.001, 0.0015),
    (0, "compute", "L0", 0.001, 0.002), (1, "wait", "x", 0.0, 0.0015),
    (1, "compute", "L0", 0.0015, 0.0025),
]]


def test_timeline_rows_and_ms():
    fig = plots.timeline(SPANS, "two devices")
    ax = fig.axes[0]
    # device 0's program, device 0's transmissions, device 1 (it sends nothing).
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "device 0 (master)", "device 0 (master) tx", "device 1"]
    assert len(ax.collections) == 4  # (row, lane) groups: d0 compute, d0 tx, d1 wait, d1 compute
    assert ax.dataLim.x1 == pytest.approx(2.5)  # last span ends at 2.5 ms
    assert ax.get_title() == "two devices"
    with pytest.raises(ValueError):
        plots.timeline([], "")


# ---------------------------------------------------------------- files

NAMES = ["latency_vs_bandwidth.png", "latency_vs_bandwidth.svg", "pareto.png", "pareto.svg",
         "comm_vs_cr.png", "comm_vs_cr.svg"]


def test_save_all_writes_every_figure_byte_identically(tmp_path):
    # Two runs on the same data, one with a timeline: the shared figures must match byte
    # for byte (no dates, versions or random SVG ids), and the timeline adds two files.
    a = plots.save_all(results(), tmp_path / "a")
    b = plots.save_all(results(), tmp_path / "b", SPANS, "t")
    assert [p.name for p in a] == NAMES
    assert [p.name for p in b] == [*NAMES, "timeline.png", "timeline.svg"]
    assert all(p.parent == tmp_path / "a" and p.stat().st_size > 0 for p in a)
    for x, y in zip(a, b, strict=False):
        assert x.read_bytes() == y.read_bytes(), x.name
    assert a[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert a[1].read_text().lstrip().startswith("<?xml")
    assert "<dc:date>" not in a[1].read_text()


def test_timeline_files_are_byte_identical(tmp_path):
    first = plots.save_figure(plots.timeline(SPANS, "t"), tmp_path / "c", "timeline")
    again = plots.save_figure(plots.timeline(SPANS, "t"), tmp_path / "d", "timeline")
    assert [p.name for p in first] == ["timeline.png", "timeline.svg"]
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in first]
