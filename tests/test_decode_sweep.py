"""Generation in the commands: ``prismsim simulate --generate``, a scenario's ``decode:``
axes (prompt and generation lengths), their per-token columns and the tokens/s figure."""

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.scenario import ScenarioError, load_scenario
from prismsim.sweep.run import run_sweep

TINY = {"name": "tiny_decode", "model": {"name": "llama-tiny"},
        "decode": {"prompt_tokens": 16, "generate": 3}, "strategies": ["single", "voltage"],
        "devices": {"count": [1, 2]},
        "network": {"link": "ethernet-1g", "bandwidth_mbps": 100, "latency_ms": [0.5, 1.5]}}


def _scenario(tmp_path: Path, **changes) -> Path:
    data = {**TINY, **changes, "output": str(tmp_path / "out")}
    path = tmp_path / "tiny_decode.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_simulate_generate_prints_the_per_token_line():
    """llama-tiny: d = 128, 8 heads of 16, 2 blocks. voltage split-KV at P = 3 sends per
    block the query (128 floats) to 2 devices and gets 2 partials of 8 x 17 floats back:
    2 x 512 + 2 x 544 = 2,112 bytes, 4,224 a token."""
    result = CliRunner().invoke(main, [
        "simulate", "--model", "llama-tiny", "--strategy", "voltage", "--devices", "3",
        "--generate", "4", "--prompt-tokens", "32"])
    assert result.exit_code == 0, result.output
    assert "(tokens 11/11/10)" in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("4 tokens:"))
    assert "time to first token" in line and "sent 4.22 KB/token" in line


def test_simulate_generate_refuses_what_cannot_decode():
    runner = CliRunner()
    vit = runner.invoke(main, ["simulate", "--model", "vit-tiny", "--strategy", "voltage",
                               "--generate", "2"])
    assert vit.exit_code == 2 and "causal language model" in vit.output
    alone = runner.invoke(main, ["simulate", "--model", "llama-tiny", "--prompt-tokens", "8"])
    assert alone.exit_code == 2 and "--prompt-tokens goes with --generate" in alone.output


def test_decode_rows_grow_with_link_latency(tmp_path):
    """1 ms more one-way latency adds 2 blocks x 2 hops x 1 ms to voltage's time per
    output token (split-KV); one device's does not move."""
    df = run_sweep(load_scenario(_scenario(tmp_path)))
    assert set(df["generate"]) == {3} and set(df["tokens"]) == {16}
    speed = df.set_index(["strategy", "latency_ms"])
    single, voltage = speed.loc["single"], speed.loc["voltage"]
    assert single.loc[1.5, "tpot_s"] == pytest.approx(single.loc[0.5, "tpot_s"])
    assert voltage.loc[1.5, "tpot_s"] - voltage.loc[0.5, "tpot_s"] == pytest.approx(0.004)
    assert (df["tokens_per_s"] == 1 / df["tpot_s"]).all()
    assert (df["ttft_s"] < df["latency_s"]).all()
    assert (speed.loc["voltage", "bytes_per_token"] > 0).all()
    plot = CliRunner().invoke(main, ["plot", str(tmp_path / "out")])
    assert plot.exit_code == 0, plot.output
    assert (tmp_path / "out" / "tokens_per_s.png").exists()
    written = pd.read_csv(tmp_path / "out" / "results.csv")
    assert not math.isnan(written["tpot_s"].iloc[0])


def test_decode_section_errors_name_file_and_field(tmp_path):
    with pytest.raises(ScenarioError, match=r"tiny_decode.yaml: model.tokens: .*prompt_tokens"):
        load_scenario(_scenario(tmp_path, model={"name": "llama-tiny", "tokens": 8}))
    with pytest.raises(ScenarioError, match=r"strategies\[2\]: 'galaxy' has no decoding"):
        load_scenario(_scenario(tmp_path, strategies=["single", "voltage", "galaxy"]))
