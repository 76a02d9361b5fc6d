"""Grids skip what a strategy cannot do on a model, with the reason in the row: a saved
Llama with 4 query heads sharing 2 KV heads gives tensor_parallel and galaxy at most 2
devices. The ``numerics``, ``flops`` and ``accuracy`` commands and a scenario sweep
complete, the rows they cannot run saying why."""

import io

import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner
from transformers import LlamaConfig, LlamaForCausalLM

import prismsim.scenario.grid
import prismsim.serve.file
from prismsim.cli.main import main
from prismsim.executors.trace import trace_workload
from prismsim.plan.file import load_plan
from prismsim.plan.search import count_steps, run_plan
from prismsim.scenario import load_scenario
from prismsim.sweep.run import run_sweep

TWO_KV = "tensor_parallel needs P <= 2: this model has only 2 KV heads"


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> str:
    """A saved random Llama: d 64, 4 heads of 16 over 2 KV heads, 2 blocks, 32 positions."""
    path = tmp_path_factory.mktemp("llama") / "two-kv-heads"
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(
        hidden_size=64, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
        intermediate_size=128, vocab_size=101, max_position_embeddings=32,
        tie_word_embeddings=True)).save_pretrained(path)
    return str(path)


def _csv(args: list[str]) -> pd.DataFrame:
    result = CliRunner().invoke(main, [*args, "--format", "csv"])
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout)).set_index(["strategy", "devices"])


def test_numerics_grid_completes_and_says_why(llama):
    df = _csv(["numerics", "--model", llama])  # the default grid: P = 2, 3
    assert len(df) == 1 + 2 + 2 * 3 + 2
    skipped = df.loc[("tensor_parallel", 3)]
    assert skipped["skipped"] == TWO_KV
    assert pd.isna(skipped["max_rel_err"]) and pd.isna(skipped["bytes_sent"])
    assert skipped["tokens"] == 32
    ran = df.loc[("tensor_parallel", 2)]
    assert pd.isna(ran["skipped"]) and ran["max_rel_err"] < 1e-5
    assert df["skipped"].notna().sum() == 1


def test_numerics_table_names_the_reason(llama):
    result = CliRunner().invoke(main, ["numerics", "--model", llama, "--strategy",
                                       "tensor_parallel", "--devices", "3"])
    assert result.exit_code == 0, result.output
    assert TWO_KV in result.output and "Error" not in result.output


def test_flops_grid_skips_what_cannot_split(llama):
    df = _csv(["flops", "--model", llama, "--tokens", "16", "--strategy", "single",
               "tensor_parallel", "galaxy", "--devices", "2", "3"])
    assert df.loc[("tensor_parallel", 3), "skipped"] == TWO_KV
    assert df.loc[("galaxy", 3), "skipped"] == TWO_KV.replace("tensor_parallel", "galaxy")
    assert pd.isna(df.loc[("galaxy", 3), "gflops_total"])
    # two ring AllReduces of N x d a block; each moves 2 (P - 1) / P of the 16 x 64 float32
    # tensor into every device: 2 x 2 x 1/2 x 4,096 bytes
    assert df.loc[("tensor_parallel", 2), "comm_bytes_per_device_per_layer"] == 8192
    assert pd.isna(df.loc[("tensor_parallel", 2), "skipped"])


def test_accuracy_grid_skips_beyond_the_heads():
    """vit-tiny has 3 heads: tensor_parallel runs at P = 3, not 4."""
    result = CliRunner().invoke(main, [
        "accuracy", "--model", "vit-tiny", "--dataset", "digits", "--strategy", "single",
        "tensor_parallel", "--devices", "3", "4", "--limit", "4", "--batch", "4"])
    assert result.exit_code == 0, result.output
    assert "tensor_parallel needs P <= 3: this model has only 3 heads" in result.output
    assert "accuracy source: vit-tiny" in result.output
    df = _csv(["accuracy", "--model", "vit-tiny", "--dataset", "digits", "--strategy",
               "single", "tensor_parallel", "--devices", "3", "4", "--limit", "4"])
    assert df.loc[("tensor_parallel", 3), "top1_agreement"] == 1.0
    assert pd.isna(df.loc[("tensor_parallel", 4), "value"])


def _scenario(tmp_path, model: str, **changes) -> str:
    data = {"name": "two_kv", "model": {"name": model, "tokens": 16},
            "strategies": ["single", "tensor_parallel"], "devices": {"count": [1, 2, 3]},
            "network": {"link": "ethernet-1g", "bandwidth_mbps": [100, 200]},
            "timeline": {"strategy": "tensor_parallel", "devices": 2},
            "output": str(tmp_path / "out"), **changes}
    path = tmp_path / "two_kv.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_sweep_rows_say_why_a_point_is_skipped(tmp_path, llama):
    path = _scenario(tmp_path, llama)
    check = CliRunner().invoke(main, ["check", path])
    assert check.exit_code == 0 and "ok: 4 points" in check.output  # 2 x (single, TP 2)
    assert f"2 more points are skipped, each a row saying why: {TWO_KV}" in check.output
    result = CliRunner().invoke(main, ["sweep", path])
    assert result.exit_code == 0, result.output
    csv = tmp_path / "out" / "results.csv"
    df = pd.read_csv(csv)
    assert list(zip(df["strategy"], df["devices"], strict=True)) == [
        ("single", 1)] * 2 + [("tensor_parallel", 2)] * 2 + [("tensor_parallel", 3)] * 2
    skipped = df[df["devices"] == 3]
    assert list(skipped["skipped"]) == [TWO_KV] * 2
    assert skipped["latency_s"].isna().all() and skipped["gflops_total"].isna().all()
    assert list(skipped["bandwidth_mbps"]) == [100.0, 200.0]
    assert df[df["devices"] < 3]["skipped"].isna().all()
    first = csv.read_bytes()
    again = CliRunner().invoke(main, ["sweep", path])  # resumed: nothing to recompute
    assert again.exit_code == 0, again.output
    assert csv.read_bytes() == first


def test_a_model_known_only_once_loaded_gives_the_same_rows(tmp_path, llama, monkeypatch):
    """Where the catalog cannot tell the heads, the sweep learns them when it traces."""
    known = run_sweep(load_scenario(_scenario(tmp_path, llama)), tmp_path / "known")
    monkeypatch.setattr(prismsim.scenario.grid, "model_heads", lambda name: None)
    s = load_scenario(_scenario(tmp_path, llama))
    assert s.skipped() == {} and len(s.grid()) == 6
    learnt = run_sweep(s, tmp_path / "learnt")
    assert (tmp_path / "learnt" / "results.csv").read_bytes() == \
        (tmp_path / "known" / "results.csv").read_bytes()
    assert list(learnt["skipped"].dropna()) == list(known["skipped"].dropna()) == [TWO_KV] * 2


def test_a_grid_of_nothing_that_can_run_is_an_error(tmp_path, llama):
    path = _scenario(tmp_path, llama, strategies=["tensor_parallel"], devices={"count": [3]},
                     timeline={"strategy": "tensor_parallel"})
    result = CliRunner().invoke(main, ["check", path])
    assert result.exit_code == 2
    assert f"two_kv.yaml: devices.count: no point can run ({TWO_KV})" in result.output


def test_a_plan_keeps_a_row_for_what_the_model_cannot_run(tmp_path, llama):
    """Boards of 1 GFLOP/s: single's row is the model's traced FLOPs over 1e9 s; TP at
    P = 3 cannot split 2 KV heads, so its row says so and is never feasible."""
    plan = {"name": "two_kv_plan", "model": {"name": llama, "tokens": 16},
            "accuracy": {"source": "by hand", "entries": [
                {"strategy": "single", "value": 0.9},
                {"strategy": "tensor_parallel", "value": 0.9}]},
            "accuracy_floor": 0.5, "latency_slo_ms": 10_000,
            "devices": [{"name": "board", "price_usd": 10, "peak_gflops": 1,
                         "efficiency": 1}],
            "counts": [1, 2, 3], "strategies": ["single", "tensor_parallel"],
            "links": ["ethernet-1g"]}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    loaded = load_plan(path)
    assert count_steps(loaded) == 2 * 2  # single and TP P=2: an accuracy and a workload each
    table = run_plan(loaded).table.set_index(["strategy", "count"])
    assert list(table.index) == [("single", 1), ("tensor_parallel", 2),
                                 ("tensor_parallel", 3)]  # feasible first, by cost
    skipped = table.loc[("tensor_parallel", 3)]
    assert skipped["fails"] == TWO_KV and not skipped["feasible"]
    assert pd.isna(skipped["latency_s"]) and skipped["cost_usd"] == 30
    single = trace_workload(llama, "single", 1, tokens=16)
    assert table.loc[("single", 1), "latency_s"] == pytest.approx(
        sum(t.flops for t in single.tasks[0]) / 1e9)


def test_a_serving_file_naming_what_cannot_run_is_one_line(tmp_path, llama, monkeypatch):
    """A serving file names each configuration, so one the model cannot run is the
    file's mistake: one line naming it, whether the heads are known from the model's
    config or only once it is loaded and traced."""
    serving = {"name": "two_kv_serving", "model": {"name": llama, "tokens": 16},
               "link": "ethernet-1g", "output": str(tmp_path / "out"),
               "configurations": [
                   {"label": "alone", "strategy": "single", "devices": 1,
                    "profile": "cpu-2core-2.1ghz"},
                   {"label": "adaptive", "strategy": "adaptive", "devices": 3,
                    "profile": "cpu-2core-2.1ghz",
                    "candidates": [{"strategy": "single"}, {"strategy": "tensor_parallel"}]}],
               "serving": {"rates_per_s": [1], "requests": 20, "warmup": 2,
                           "replications": 1}}
    path = tmp_path / "serving.yaml"
    path.write_text(yaml.safe_dump(serving))
    expected = "serving.yaml: configurations[1]"
    result = CliRunner().invoke(main, ["serve", str(path)])
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: {expected}.candidates[1]: {TWO_KV}"
    monkeypatch.setattr(prismsim.serve.file, "model_heads", lambda name: None)
    result = CliRunner().invoke(main, ["serve", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == f"Error: {expected}: {TWO_KV}"
