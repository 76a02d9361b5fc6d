"""Every shipped scenario, reduced (few examples, few bandwidths), runs and shows the
orderings it exists to show."""

from pathlib import Path

import pytest
import yaml

from prismsim.scenario import ScenarioError, load_scenario
from prismsim.sweep.run import run_sweep


def reduced(tmp_path: Path, name: str, **changes) -> Path:
    data = yaml.safe_load(Path(f"scenarios/{name}.yaml").read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    data["output"] = str(tmp_path / name)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# plan_*.yaml are capacity plans (prismsim plan, tests/test_plan.py), validate_*.yaml
# testbed grids (prismsim validate, tests/test_testbed.py) and files with a serving:
# section serving files (prismsim serve, tests/test_serve_command.py), not scenarios
@pytest.mark.parametrize("name", [p.stem for p in sorted(Path("scenarios").glob("*.yaml"))
                                  if not p.stem.startswith(("plan_", "validate_"))
                                  and "serving" not in yaml.safe_load(p.read_text())])
def test_every_scenario_validates(name):
    assert len(load_scenario(f"scenarios/{name}.yaml").grid()) > 0


def test_paper_vit_b16_offline_gives_latency_and_says_why_no_accuracy(tmp_path):
    df = run_sweep(load_scenario(reduced(tmp_path, "paper_vit_b16",
                                         network__bandwidth_mbps=[200], dataset__limit=4)))
    assert len(df) == 1 + 2 + 2 * 3 and df.accuracy.isna().all()
    assert df.accuracy_source.str.startswith("unavailable: dataset 'cifar10'").all()
    single = df[df.strategy == "single"].latency_s.item()
    assert (df[df.strategy == "voltage"].latency_s > single).all()
    assert (df[df.strategy == "prism"].latency_s < single).all()
    assert df[df.strategy == "single"].gflops_total.item() == pytest.approx(35.15, rel=0.01)


def test_bert_text_reduced(tmp_path):
    df = run_sweep(load_scenario(reduced(tmp_path, "bert_text", network__bandwidth_mbps=[200],
                                         dataset__limit=4, prism={"cr": [4]})))
    assert len(df) == 1 + 2 + 2 + 2  # single, voltage x2, prism x2, tensor_parallel x2
    assert (df.tokens == 256).all() and (df.metric == "accuracy").all()
    tp, voltage = (df[df.strategy == s].set_index("devices").latency_s
                   for s in ("tensor_parallel", "voltage"))
    assert (tp > voltage).all()  # two AllReduces of N x d a block cost more than one AllGather


# jetson_wifi (voltage slower than one board at every batch, adaptive rows): test_adaptive.py


def test_gpt2_text_reduced(tmp_path):
    df = run_sweep(load_scenario(reduced(tmp_path, "gpt2_text", network__bandwidth_mbps=[200],
                                         dataset__limit=4, prism={"cr": [2, 16]})))
    assert len(df) == 1 + 2 + 4 and (df.metric == "bits_per_byte").all()
    assert (df.n_examples == 4).all()  # windows; bits per byte's bootstrap interval holds it
    assert ((df.accuracy_ci95_low <= df.accuracy) & (df.accuracy <= df.accuracy_ci95_high)).all()
    single = df[df.strategy == "single"].accuracy.item()
    assert (df[df.strategy == "voltage"].accuracy - single).abs().max() < 1e-5
    for p, rows in df[df.strategy == "prism"].groupby("devices"):
        bpb = rows.set_index("cr").accuracy
        assert bpb[16.0] >= bpb[2.0] > single, p  # more compression, more bits per byte


MIXED = """name: mixed
model: {name: vit-tiny}
strategies: [single, voltage]
devices: {count: 1, profile: fast, mix: [[fast, slow, slow]], split: SPLIT}
network: {bandwidth_mbps: 100000, latency_ms: 0}
catalog:
  devices:
    fast: {peak_gflops: 2, efficiency: 1}
    slow: {peak_gflops: 1, efficiency: 1}
"""


def _mixed_rows(tmp_path, split):
    path = tmp_path / f"{split}.yaml"
    path.write_text(MIXED.replace("SPLIT", split))
    df = run_sweep(load_scenario(path), tmp_path / split)
    return df.set_index("strategy")


def test_mixed_set_runs_voltage_on_its_three_devices_split_by_speed(tmp_path):
    from prismsim.executors.trace_cache import WorkloadCache

    speed, equal = _mixed_rows(tmp_path, "speed"), _mixed_rows(tmp_path, "equal")
    row = speed.loc["voltage"]
    assert (row["devices"], row["device_profile"], row["split"]) == (3, "fast+slow+slow",
                                                                      "speed")
    assert speed.loc["single"]["device_profile"] == "fast"
    # speeds 2:1:1 -> 197 tokens as 99/49/49 (equal: 66/66/65), as the cached workload says
    wl = WorkloadCache().get("vit-tiny", "voltage", 3, weights=[1.0, 0.5, 0.5])
    assert wl.meta["sizes"] == [99, 49, 49]
    # compute-bound (100 Gbit/s, no latency): the slow boards' 66 rows set the pace when
    # split equally; in proportion to speed every board finishes its rows about together
    assert row["latency_s"] < equal.loc["voltage"]["latency_s"]


def test_mixed_set_names_an_unknown_profile(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(MIXED.replace("SPLIT", "speed").replace("[[fast, slow, slow]]",
                                                             "[[fast, slwo]]"))
    with pytest.raises(ScenarioError, match=r"bad.yaml: devices.mix\[0\]\[1\]: unknown device "
                                            r"'slwo'"):
        load_scenario(path)
