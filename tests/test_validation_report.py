"""How a validation's figures are summed up: the bias (mean signed error) beside the
MAPE, and how far two measurements of the same grid are apart (repeatability), by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.validation.report import mean_signed, repeatability

POINTS = [("voltage", "{}", 2, 50.0, 1.0), ("prism", "{cr: 4}", 2, 50.0, 1.0),
          ("prism", "{cr: 4}", 3, 200.0, 10.0), ("single", "{}", 1, 50.0, 1.0)]
COLUMNS = ["strategy", "options", "devices", "bandwidth_mbps", "latency_ms"]


def run(measured_ms: list[float], errors_pct: list[float], stolen_pct: list[float]
        ) -> pd.DataFrame:
    table = pd.DataFrame(POINTS, columns=COLUMNS)
    return table.assign(measured_ms=measured_ms, predicted_error_pct=errors_pct,
                        stolen_cpu_pct=stolen_pct)


def test_the_bias_is_the_mean_signed_error_of_the_distributed_points() -> None:
    table = run([100, 200, 300, 50], [-12.0, -9.0, +3.0, +20.0], [0, 0, 0, 0])
    assert mean_signed(table) == pytest.approx(-6.0)  # (-12 - 9 + 3) / 3
    assert mean_signed(table, distributed=False) == pytest.approx(20.0)


def test_two_runs_of_one_grid_are_compared_point_by_point() -> None:
    """This run against an earlier one: 108/100 (+8 %), 190/200 (-5 %), 336/300
    (+12 %) on the distributed points; one device is left out, and so is a point only
    one run has."""
    now = run([108, 190, 336, 999], [0] * 4, [0.5, 2.0, 1.0, 0])
    earlier = run([100, 200, 300, 10], [0] * 4, [6.0, 0, 0, 0])
    earlier.loc[len(earlier)] = ["voltage", "{}", 3, 50.0, 1.0, 100, 0, 0]
    r = repeatability(now, earlier)
    assert r["points"] == 3
    assert r["mape"] == pytest.approx(25.0 / 3)
    assert r["mean_signed"] == pytest.approx(5.0)
    assert r["within_10_share"] == pytest.approx(2 / 3)
    assert (r["stolen_max_pct"], r["other_stolen_max_pct"]) == (2.0, 6.0)
    older = earlier.drop(columns="stolen_cpu_pct")
    assert math.isnan(repeatability(now, older)["other_stolen_max_pct"])
    with pytest.raises(ValueError, match="no distributed point in common"):
        repeatability(now, earlier[earlier["devices"] == 1])


def test_against_a_folder_without_a_validation_table_is_one_line_before_any_run(
        tmp_path) -> None:
    result = CliRunner().invoke(main, ["validate", "scenarios/validate_vit_tiny.yaml",
                                       "--against", str(tmp_path)])
    assert result.exit_code == 2 and "no validation.csv" in result.output
