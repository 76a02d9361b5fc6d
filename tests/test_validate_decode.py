"""Generation on the testbed (a validation file's ``decode:``): token times read from the
devices' records, refusals, and prefill + greedy decoding for real over GLOO."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from test_testbed import needs_testbed

from prismsim.cli.main import main
from prismsim.testbed.network import Testbed
from prismsim.testbed.runner import RealConfig, run_configs
from prismsim.validation.file import ValidationFileError, load_validation_file
from prismsim.validation.tokens import measured_tokens, token_ends_s
from tests.conftest import assert_refused


def _record(config: int, head_ends: list[float], device: int = 1) -> dict:
    steps = [["embed", None, 0.0, 0.001], ["L0.block", 0, 0.001, 0.002]]
    steps += [[f"t{i}.head", None, end - 0.0005, end] for i, end in enumerate(head_ends)]
    return {"config": config, "device": device, "steps": steps}


def test_token_ends_are_the_head_steps_in_order():
    steps = [["t1.head", None, 0.0, 0.030], ["L1.t1.block", 1, 0.0, 0.025],
             ["t0.head", None, 0.0, 0.010]]
    assert token_ends_s(steps) == [0.010, 0.030]
    assert token_ends_s([["L0.block", 0, 0.0, 0.1]]) == []


def test_measured_token_times_are_medians_over_rounds_by_hand():
    # three rounds of 3 tokens: ttft 10, 12, 20 ms; tpot (30-10)/2, (40-12)/2, (24-20)/2
    records = [_record(0, [0.010, 0.020, 0.030]), _record(0, [0.012, 0.020, 0.040]),
               _record(0, [0.020, 0.022, 0.024]), _record(0, [], device=0),
               _record(1, [0.5, 0.9])]
    out = measured_tokens(records, 0)
    assert out["measured_ttft_ms"] == pytest.approx(12.0)
    assert out["measured_tpot_ms"] == pytest.approx(10.0)  # median of 10, 14, 2
    assert out["measured_ms"] == pytest.approx(30.0)  # last tokens at 30, 40, 24 ms
    assert (out["measured_min_ms"], out["measured_max_ms"]) == pytest.approx((24.0, 40.0))
    assert measured_tokens(records, 1)["measured_tpot_ms"] == pytest.approx(400.0)


def test_token_times_count_from_the_masters_start():
    """The last device left the barrier at 100.000 s, the master started the round 4 ms
    later (after the others' "ready"): tokens at 10 and 20 ms on the last device's clock
    are at 6 and 16 ms of the request; a round without starts (older runs) is not moved."""
    owner = {**_record(0, [0.010, 0.020]), "rep": 0, "t0_s": 100.000}
    master = {**_record(0, [], device=0), "rep": 0, "t0_s": 100.004}
    out = measured_tokens([owner, master], 0)
    assert out["measured_ttft_ms"] == pytest.approx(6.0)
    assert out["measured_tpot_ms"] == pytest.approx(10.0)
    assert out["measured_ms"] == pytest.approx(16.0)
    assert measured_tokens([_record(0, [0.010, 0.020])], 0)["measured_ttft_ms"] == \
        pytest.approx(10.0)


@pytest.mark.parametrize(("text", "message"), [
    ("model: llama-tiny\nstrategies:\n  - strategy: galaxy\ndecode: {generate: 8}\n",
     "grid.yaml: strategies[0]: 'galaxy' has no decoding"),
    ("model: vit-tiny\nstrategies:\n  - strategy: voltage\ndecode: {generate: 8}\n",
     "grid.yaml: model: decoding needs a causal language model"),
    ("model: llama-tiny\nstrategies:\n  - strategy: voltage\ndecode: {generate: 1}\n",
     "grid.yaml: decode.generate"),
])
def test_a_decode_grid_names_its_bad_field(tmp_path, text, message):
    assert_refused(tmp_path / "grid.yaml", text, load_validation_file, ValidationFileError,
                   message)


def test_validate_load_refuses_a_decode_grid(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("model: llama-tiny\nstrategies:\n  - strategy: voltage\n"
                    "decode: {generate: 8}\noffered_load: {}\n")
    result = CliRunner().invoke(main, ["validate", str(path), "--load", "-o",
                                       str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "grid.yaml: decode: serving under load runs one forward" in result.output


def test_a_decode_grid_runs_what_it_names(tmp_path):
    """Each round prefills ``prompt_tokens`` and generates ``generate`` tokens; a grid
    without decode: runs one forward (the shipped grids are loaded in
    test_validation.py)."""
    path = tmp_path / "grid.yaml"
    path.write_text("model: llama-tiny\nstrategies:\n  - strategy: tensor_parallel\n"
                    "decode: {prompt_tokens: 16, generate: 5}\n")
    assert load_validation_file(path).decode_pair() == (16, 5)
    path.write_text("model: llama-tiny\nstrategies:\n  - strategy: tensor_parallel\n")
    assert load_validation_file(path).decode_pair() is None


@needs_testbed
def test_gloo_decoding_is_exact_and_pays_its_hops():
    """llama-tiny (2 blocks) at P = 2 with 5 ms one way: split-KV decoding sends the
    query and gets a partial back in each block, 2 x 2 = 4 delays a token; tensor
    parallel two AllReduces a block, each a send and a receive between the two devices,
    2 x 2 x 2 = 8; prism decodes on the last device alone, with no message."""
    configs = [RealConfig("voltage"), RealConfig("tensor_parallel"),
               RealConfig("prism", {"cr": 4}), RealConfig("voltage", {"decode": "local"})]
    with Testbed(2, 1000e6, delay_s=0.005) as tb:
        records = run_configs(tb, "llama-tiny", configs, warmup=1, runs=2, decode=(64, 8))
    exact = [r["max_abs_error"] for r in records if "max_abs_error" in r and r["config"] != 2]
    assert len(exact) == 3 * 2 and max(exact) < 1e-4  # voltage, TP, local: each round
    tpot = [measured_tokens(records, c)["measured_tpot_ms"] for c in range(4)]
    assert tpot[0] - tpot[3] > 0.8 * 4 * 5.0, tpot
    assert tpot[1] - tpot[3] > 0.8 * 8 * 5.0, tpot
    assert tpot[2] < 4 * 5.0 and tpot[3] < 4 * 5.0, tpot  # no delay in a token
