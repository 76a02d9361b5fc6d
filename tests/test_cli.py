"""The command line, driven with click's CliRunner."""

import io
from importlib.metadata import version

import pandas as pd
from click.testing import CliRunner

from prismsim.cli import main


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
    row = pd.read_csv(io.StringIO(result.output)).iloc[0]
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
