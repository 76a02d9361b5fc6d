"""Planning on tails: ``rank: p99`` judges, ranks and draws the front on the p99 of one
inference over worlds drawn from the devices' variability, worked out by hand here.

Two boards at $100 each, one device (single, one 10-GFLOP compute step), no idle power:

| board  | GFLOP/s | compute W | mean-times latency | energy        | slow factor        |
|--------|---------|-----------|--------------------|---------------|--------------------|
| steady | 10      | 2         | 10 / 10 = 1.0 s    | 2 x 1.0 = 2 J | none               |
| jumpy  | 20      | 4         | 10 / 20 = 0.5 s    | 4 x 0.5 = 2 J | 1 to q .9, 3 > .95 |

Same cost, same energy: latency breaks the tie. On mean times jumpy (0.5 s) is first and
beats steady on the front. Jumpy's slow factor is 1 up to q = 0.9, linear to 3 at 0.95,
3 beyond: of 400 sampled inferences about 20 draw above 0.95, so the sample's p99 (between
its 3rd and 4th largest) is 3 x 0.5 = 1.5 s exactly, and its p50 0.5 s; steady never
varies, its p99 is its 1.0 s. On p99 steady is first and alone on the front; with a
1200 ms SLO jumpy misses it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.configuration import Configuration
from prismsim.plan.file import load_plan
from prismsim.plan.report import front_line, headline, sampling_note, shown_columns
from prismsim.plan.search import COLUMNS, run_plan
from prismsim.workload import Task, Workload

PLAN = """\
name: tails
model: {name: vit-tiny}
accuracy:
  source: hand-picked for the test
  entries: [{strategy: single, value: 0.9}]
accuracy_floor: 0.8
latency_slo_ms: 2000
devices:
  - {name: steady, price_usd: 100, peak_gflops: 10, efficiency: 1, compute_w: 2}
  - {name: jumpy, price_usd: 100, peak_gflops: 20, efficiency: 1, compute_w: 4,
     variability: {slow: [[0.0, 1.0], [0.9, 1.0], [0.95, 3.0]]}}
counts: [1]
strategies: [single]
links: [ethernet-1g]
"""
SAMPLES = "samples: {n: 400, seed: 0}\n"


def one_step(c: Configuration) -> Workload:
    assert c.strategy == "single" and c.devices == 1
    return Workload(meta={}, tasks=[[Task("compute", "c", 10 * 10**9)]])


def _run(tmp_path: Path, text: str):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return run_plan(load_plan(path), workload=one_step)


def test_the_ranking_flips_from_mean_times_to_the_p99(tmp_path):
    mean = _run(tmp_path, PLAN + SAMPLES)
    p99 = _run(tmp_path, PLAN + SAMPLES + "rank: p99\n")
    assert mean.ranked["device"].tolist() == ["jumpy", "steady"]
    assert p99.ranked["device"].tolist() == ["steady", "jumpy"]
    assert mean.front["device"].tolist() == ["jumpy"]
    assert p99.front["device"].tolist() == ["steady"]
    for result in (mean, p99):
        rows = result.table.set_index("device")
        assert rows["latency_s"].to_dict() == pytest.approx({"steady": 1.0, "jumpy": 0.5})
        assert rows["energy_j"].to_dict() == pytest.approx({"steady": 2.0, "jumpy": 2.0})
        assert rows["latency_p99_s"].to_dict() == pytest.approx({"steady": 1.0, "jumpy": 1.5})
        assert rows["latency_p50_s"].to_dict() == pytest.approx({"steady": 1.0, "jumpy": 0.5})
        # jumpy's mean factor: 0.9 x 1 + 0.05 x 2 + 0.05 x 3 = 1.15, 0.575 s; its standard
        # deviation 0.49, so 400 draws' mean is within 0.49 / 20 / 1.15 = 2.1 % (one SE)
        assert rows.loc["jumpy", "latency_mean_sampled_s"] == pytest.approx(0.575, rel=0.05)
        assert result.varies is True and sampling_note(result) is None


def test_a_p99_slo_fails_the_jumpy_board(tmp_path):
    text = PLAN.replace("latency_slo_ms: 2000", "latency_slo_ms: 1200") + "rank: p99\n"
    result = _run(tmp_path, text)  # no samples: given: n 1000, seed 0
    rows = result.table.set_index("device")
    assert rows["feasible"].to_dict() == {"steady": True, "jumpy": False}
    assert rows.loc["jumpy", "fails"] == "latency"
    assert rows.loc["jumpy", "latency_p99_s"] == pytest.approx(1.5)
    assert headline(result) == ("1 of 2 configurations meet the accuracy floor 0.8 and the "
                                "1200 ms SLO on one inference's p99 over sampled worlds; "
                                "cheapest first, then lowest energy:")
    assert front_line(result) == "Pareto front over cost, p99 latency and energy:"
    mean = _run(tmp_path, PLAN.replace("latency_slo_ms: 2000", "latency_slo_ms: 1200"))
    assert mean.table["feasible"].all()  # on mean times both make it


def test_without_the_new_keys_the_table_is_as_before(tmp_path):
    result = _run(tmp_path, PLAN)
    assert list(result.table.columns) == COLUMNS
    assert "latency_p99_s" not in shown_columns(result.table)
    assert result.varies is None and sampling_note(result) is None
    assert headline(result) == ("2 of 2 configurations meet the accuracy floor 0.8 and the "
                                "2000 ms SLO; cheapest first, then lowest energy:")
    assert front_line(result) == "Pareto front over cost, latency and energy:"


def test_when_nothing_varies_the_p99_is_the_mean_times_and_a_line_says_so(tmp_path):
    text = PLAN.replace(",\n     variability: {slow: [[0.0, 1.0], [0.9, 1.0], [0.95, 3.0]]}",
                        "") + "rank: p99\n"
    result = _run(tmp_path, text)
    assert result.ranked["device"].tolist() == ["jumpy", "steady"]  # 0.5 s, then 1.0 s
    assert (result.table["latency_p99_s"] == result.table["latency_s"]).all()
    assert result.varies is False
    assert sampling_note(result).startswith("no candidate device or link has variability")


def test_cli_prints_the_p99_column_and_writes_it(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.replace("name: tails", "name: tails\noutput: " + str(tmp_path / "o"))
                    + SAMPLES + "rank: p99\n")
    result = CliRunner().invoke(main, ["plan", str(path)])
    assert result.exit_code == 0, result.output
    assert "latency_p99_s" in result.output
    # the CLI traces vit-tiny: steady takes its FLOPs / 10 GFLOP/s, jumpy's p99 3 x / 20
    table = pd.read_csv(tmp_path / "o" / "plan.csv").set_index("device")
    assert table.index.tolist() == ["steady", "jumpy"]
    steady_s = table.loc["steady", "latency_s"]
    assert table.loc["jumpy", "latency_s"] == pytest.approx(steady_s / 2)
    assert table["latency_p99_s"].tolist() == pytest.approx([steady_s, 1.5 * steady_s])


def test_an_unknown_rank_names_the_key(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN + "rank: p95\n")
    result = CliRunner().invoke(main, ["plan", str(path)])
    assert result.exit_code == 2
    assert "plan.yaml: rank: Input should be 'mean' or 'p99'" in result.output
