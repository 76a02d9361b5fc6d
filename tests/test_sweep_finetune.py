"""Fine-tuning as a sweep axis: prism rows with their weights fine-tuned under their own
setting, beside the plain ones; trained once per distinct need; errors for scenarios
that cannot have it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from prismsim.plots.pareto import pareto
from prismsim.scenario import load_scenario
from prismsim.scenario.schema import ScenarioError
from prismsim.sweep.rows import gain_columns
from prismsim.sweep.run import count_tasks, run_sweep

TINY = Path("scenarios/tiny_vit.yaml").read_text()
TUNED = TINY.replace("network: {bandwidth_mbps: [50, 200, 1000], latency_ms: 1}",
                     "network: {bandwidth_mbps: [50, 200], latency_ms: 1}\n"
                     "dataset: {name: digits, limit: 60}\n"
                     "finetune: {modes: [none, head], train_limit: 120}")


def _scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_finetune_doubles_the_prism_configurations_only(tmp_path):
    """single 1, voltage P=2,3, prism P=2,3 x CR 2,4 x {none, head}: 1 + 2 + 8
    configurations x 2 bandwidths; tasks: 4 fine-tunings, accuracies of single, the
    voltage check and 8 prism, 3 + 8 workloads (fine-tuning changes no program), 22
    points."""
    s = load_scenario(_scenario(tmp_path, TUNED))
    points = s.grid()
    assert len(points) == 22
    assert sorted({p.finetune for p in points if p.strategy != "prism"}) == ["none"]
    assert sum(p.finetune == "head" for p in points) == 8
    assert count_tasks(s) == 22 + 7 + 4 + 10


def test_fine_tuned_rows_beside_plain_ones(tmp_path, monkeypatch):
    """Each fine-tuning runs once for both bandwidths; a fine-tuned row has its plain
    twin's latency and an accuracy of its own, from the fine-tuned weights: on seeded
    random weights the plain head is at chance, a head fitted to the features under
    prism is far above it."""
    import prismsim.sweep.compute as compute

    trained = []
    real = compute.finetune
    monkeypatch.setattr(compute, "finetune", lambda need: trained.append(need) or real(need))
    df = run_sweep(load_scenario(_scenario(tmp_path, TUNED)), tmp_path / "out")
    assert len(trained) == 4 and len(set(trained)) == 4
    prism = df[df["strategy"] == "prism"]
    key = ["devices", "cr", "bandwidth_mbps"]
    plain = prism[prism["finetune"] == "none"].set_index(key)
    tuned = prism[prism["finetune"] == "head"].set_index(key)
    assert (tuned["latency_s"] == plain["latency_s"]).all()
    assert (plain["accuracy"] < 0.3).all() and (tuned["accuracy"] > 0.5).all()
    assert tuned["accuracy_source"].str.contains("fine-tuned by prismsim finetune").all()
    gain = tuned["accuracy"] - plain["accuracy"]
    assert (tuned["finetune_gain"] - gain).abs().max() < 1e-12
    assert (tuned["finetune_gain_ci95_low"] < gain).all()
    assert (tuned["finetune_gain_ci95_high"] > gain).all()
    assert plain["finetune_gain"].isna().all()
    fig = pareto(df, 200)
    arrows = [a for a in fig.axes[0].texts  # (labels with leader lines have text)
              if getattr(a, "arrow_patch", None) is not None and not a.get_text()]
    assert len(arrows) == 4  # one plain -> fine-tuned arrow a prism setting


@pytest.mark.parametrize(("text", "message"), [
    (TUNED.replace("strategies: [single, voltage, prism]", "strategies: [single, voltage]")
     .replace("prism: {cr: [2, 4]}\n", ""), "finetune.modes: fine-tuning is an axis of prism"),
    (TUNED.replace("dataset: {name: digits, limit: 60}\n", ""), "finetune.modes: needs a "
     "dataset"),
    (TUNED.replace("{name: digits, limit: 60}", "{name: digits, limit: 60, split: train}"),
     "dataset.split: fine-tuned models train on the train split"),
    (TUNED.replace("[none, head]", "[none, middle]"), "'middle' is not none, head, last:K"),
])
def test_scenarios_that_cannot_fine_tune(tmp_path, text, message):
    with pytest.raises(ScenarioError, match=message):
        load_scenario(_scenario(tmp_path, text))


def test_a_bare_list_stands_for_the_modes(tmp_path):
    text = TUNED.replace("finetune: {modes: [none, head], train_limit: 120}",
                         'finetune: [head, "last:2"]')
    s = load_scenario(_scenario(tmp_path, text))
    assert sorted({p.finetune for p in s.grid() if p.strategy == "prism"}) == ["head",
                                                                               "last:2"]


def test_the_gain_interval_by_hand():
    """MOVER from the two rows' intervals: accuracy 0.80 (0.70-0.88) after, 0.60
    (0.50-0.69) before: 0.20 - hypot(0.10, 0.09), 0.20 + hypot(0.08, 0.10); bits per
    byte (lower is better) 1.5 (1.4-1.6) after, 2.0 (1.8-2.3) before: a gain of 0.5,
    0.5 - hypot(0.1, 0.2), 0.5 + hypot(0.1, 0.3)."""
    def row(metric, value, low, high):
        return {"metric": metric, "accuracy": value, "accuracy_ci95_low": low,
                "accuracy_ci95_high": high}

    g = gain_columns(row("accuracy", 0.80, 0.70, 0.88), row("accuracy", 0.60, 0.50, 0.69))
    assert g["finetune_gain"] == pytest.approx(0.20)
    assert g["finetune_gain_ci95_low"] == pytest.approx(0.20 - 0.1345362, abs=1e-6)
    assert g["finetune_gain_ci95_high"] == pytest.approx(0.20 + 0.1280625, abs=1e-6)
    g = gain_columns(row("bits_per_byte", 1.5, 1.4, 1.6), row("bits_per_byte", 2.0, 1.8, 2.3))
    assert g["finetune_gain"] == pytest.approx(0.5)
    assert g["finetune_gain_ci95_low"] == pytest.approx(0.5 - 0.2236068, abs=1e-6)
    assert g["finetune_gain_ci95_high"] == pytest.approx(0.5 + 0.3162278, abs=1e-6)
    assert math.isnan(gain_columns(row("accuracy", 0.8, 0.7, 0.9), None)["finetune_gain"])
