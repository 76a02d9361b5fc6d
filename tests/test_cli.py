"""The command line, driven with click's CliRunner."""

import io
from importlib.metadata import version

import pandas as pd
import pytest
from click.testing import CliRunner

from prismsim.cli.main import main


def test_version_and_help():
    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"prismsim, version {version('prismsim')}"
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0 and "numerics" in result.output


def test_numerics_reports_exactness_and_bytes():
    result = CliRunner().invoke(main, ["numerics", "--model", "vit-tiny", "--strategy",
                                       "voltage", "--devices", "2", "--format", "csv"])
    assert result.exit_code == 0, result.output
    row = pd.read_csv(io.StringIO(result.stdout)).iloc[0]
    assert row["max_rel_err"] < 1e-5
    # 197 tokens x 192 features x 4 bytes = 151,296 bytes of rows: the master's input
    # (each device ends up with all rows), then both devices' rows after layers 1..3
    assert row["bytes_sent"] == 151_296 * 4
    assert row["messages"] == 2 + 3 * 2


def test_numerics_bad_input_is_one_clear_line():
    result = CliRunner().invoke(main, ["numerics", "--strategy", "nope"])
    assert result.exit_code == 2
    assert "unknown ['nope']" in result.output
    result = CliRunner().invoke(main, ["numerics", "--devices", "two"])
    assert result.exit_code == 2 and "'two' is not a valid int" in result.output


def test_flops_table_with_space_separated_values():
    result = CliRunner().invoke(main, [
        "flops", "--model", "vit-tiny", "--strategy", "single", "voltage", "prism",
        "--devices", "2", "3", "--means", "5", "--format", "csv"])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.stdout)).set_index(["strategy", "devices"])
    assert len(df) == 5  # single, voltage x 2, prism x 2
    # 197 tokens: P=2 -> 99/98, the busiest receiver gets 99 rows; P=3 -> 66/66/65: 132
    assert df.loc[("voltage", 2), "pdplc_tokens"] == 99
    assert df.loc[("voltage", 3), "pdplc_tokens"] == 132
    assert df.loc[("prism", 2), "pdplc_tokens"] == 5
    assert df.loc[("prism", 2), "comm_speedup_pct"] == pytest.approx(100 * (1 - 5 / 99))
    assert df.loc[("prism", 2), "cr"] == pytest.approx(99 / 5)


def test_flops_rejects_bad_values():
    result = CliRunner().invoke(main, ["flops", "--causal-count", "sometimes"])
    assert result.exit_code == 2 and "sometimes" in result.output


def test_simulate_prints_a_breakdown_and_writes_a_trace(tmp_path):
    trace = tmp_path / "t.json"
    result = CliRunner().invoke(main, [
        "simulate", "--model", "vit-tiny", "--strategy", "voltage", "--devices", "2",
        "--bandwidth-mbps", "100", "--latency-ms", "1", "--trace", str(trace)])
    assert result.exit_code == 0, result.output
    assert "100 Mbit/s" in result.output and "energy_j" in result.output
    assert trace.exists() and "traceEvents" in trace.read_text()


def test_simulate_unknown_link_is_one_clear_line():
    result = CliRunner().invoke(main, ["simulate", "--model", "vit-tiny", "--link", "pigeon"])
    assert result.exit_code == 2
    assert "unknown link 'pigeon'" in result.output and "Traceback" not in result.output


def test_assets_list_and_accuracy_command():
    result = CliRunner().invoke(main, ["assets", "list"])
    assert result.exit_code == 0 and "dinov2-small-onnx" in result.output
    result = CliRunner().invoke(main, [
        "accuracy", "--model", "minilm-l6", "--limit", "3", "--strategy", "single", "voltage",
        "--devices", "2", "--format", "csv"])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.stdout))
    assert list(df["strategy"]) == ["single", "voltage"]
    assert list(df["top1_agreement"]) == [1.0, 1.0]
    result = CliRunner().invoke(main, ["assets", "fetch", "imagenet"])
    assert result.exit_code == 2 and "unknown asset" in result.output


def test_simulate_heterogeneous_devices_split_by_speed(tmp_path):
    catalog = tmp_path / "cat.yaml"
    catalog.write_text("devices:\n  fast: {peak_gflops: 2, efficiency: 1}\n"
                       "  slow: {peak_gflops: 1, efficiency: 1}\n")
    base = ["simulate", "--model", "vit-tiny", "--strategy", "voltage", "--devices", "3",
            "--catalog", str(catalog), "--device", "fast", "slow", "slow"]
    # speeds 2:1:1 over 197 tokens: shares 98.5 / 49.25 / 49.25, the spare to the largest
    # remainder -> 99/49/49; the equal split is 66/66/65
    speed = CliRunner().invoke(main, [*base, "--split", "speed"])
    assert speed.exit_code == 0, speed.output
    assert "fast + slow + slow (tokens 99/49/49)" in speed.output
    equal = CliRunner().invoke(main, base)
    assert "(tokens 66/66/65)" in equal.output
    wrong = CliRunner().invoke(main, [*base[:-1]])
    assert wrong.exit_code == 2 and "2 device profiles for 3 devices" in wrong.output
