"""Fine-tuning a causal language model under a strategy (prismsim/finetune_lm.py): the
one-pass training window against real teacher-forced decoding, adapters that start as
the identity and merge into the weights, last:K through prism at CR 1 against one device
with SGD, the base kept when training only makes it worse, an interrupted run resumed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import prismsim.finetune.language as lm
from prismsim.cli.main import main
from prismsim.datasets import token_windows
from prismsim.executors.memory import (
    forced_sizes,
    run_forced_decoding,
    run_generation,
    run_numerics,
)
from prismsim.models.load import load_model, merge_adapters
from prismsim.models.tuned import FinetuneRun, parse, tuned_name
from tests.conftest import ByteTokenizer

MODEL = "llama-tiny"  # 2 blocks, GQA 8/4, RoPE, SwiGLU; vocabulary 512
PROMPT, LENGTH = 24, 40  # a small window: 24 prompt tokens, 16 continuation


def ids(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 512, (n, LENGTH), generator=gen)  # [n, LENGTH]


def run_of(tuning: FinetuneRun, tmp_path: Path, progress=lambda *a: None) -> lm.Run:
    return lm.Run(load_model(MODEL), tuning, tmp_path / "w.safetensors", progress, PROMPT)


@pytest.mark.parametrize(("devices", "cr"), [(2, 2.0), (3, 4.0)])
def test_a_window_in_one_pass_equals_teacher_forced_decoding(devices: int, cr: float) -> None:
    """The continuation decoded token by token by the last device (its cache, the
    earlier partitions' Segment Means) gives the logits of the one-pass window."""
    stack, w = load_model(MODEL), ids(2)
    gen = run_generation(stack, w[:, :PROMPT], LENGTH - PROMPT, "prism", devices,
                         forced=w[:, PROMPT:], cr=cr)
    sizes = forced_sizes(devices, LENGTH, PROMPT)
    assert sum(sizes) == LENGTH - 1 and sizes[0] == 24 // devices
    one = run_forced_decoding(stack, w, PROMPT, "prism", devices, cr=cr)
    torch.testing.assert_close(one, gen.logits, atol=2e-5, rtol=1e-5)


def test_an_adapter_at_zero_changes_no_logit_and_merges_into_the_weights() -> None:
    stack, x = load_model(MODEL), ids(1)[:, :32]
    before = run_numerics(stack, x, "prism", 2, cr=2.0)
    lm.add_adapters(stack, rank=4)
    assert torch.equal(run_numerics(stack, x, "prism", 2, cr=2.0), before)
    with torch.no_grad():  # a non-zero adapter: the programs run through it
        for block in stack.blocks:
            block.q.lora_B["default"].weight.normal_(0, 0.05)
            block.fc2.lora_B["default"].weight.normal_(0, 0.05)
    adapted = run_numerics(stack, x, "prism", 2, cr=2.0)
    assert (adapted - before).abs().max() > 1e-3
    state = lm.adapter_state(stack)
    assert len(state) == 2 * 7 * 2  # A and B, 7 projections, 2 blocks
    fresh = load_model(MODEL)
    assert merge_adapters(fresh.hf, dict(state)) == {}
    torch.testing.assert_close(run_numerics(fresh, x, "prism", 2, cr=2.0), adapted,
                               atol=1e-5, rtol=1e-5)


def test_last_k_under_prism_at_cr_1_trains_as_one_device(tmp_path: Path) -> None:
    """At CR 1 every Segment Mean is one row: prism's programs compute what one device
    does, so SGD steps through them give the same parameters."""
    train = ids(3, seed=1)
    held = train[:2]  # scored on what it trains on: the trained state is kept
    common = dict(mode="last:1", steps=3, lr=0.1, batch=1, optimizer="sgd")
    single = FinetuneRun(MODEL, "single", 1, **common)
    prism = FinetuneRun(MODEL, "prism", 2, cr=1.0, **common)
    a, va = lm.train_lm(run_of(single, tmp_path / "a"), train, held)
    b, vb = lm.train_lm(run_of(prism, tmp_path / "b"), train, held)
    assert set(a) == set(b) and any(n.startswith("model.layers.1.") for n in a)
    base = dict(load_model(MODEL).hf.named_parameters())
    assert va.best_state is not None and va.best < va.before
    assert all((a[n] - base[n]).abs().max() > 1e-4 for n in a if n.endswith("proj.weight"))
    for n in a:
        torch.testing.assert_close(b[n], a[n], atol=1e-5, rtol=1e-4)
    assert vb.before == pytest.approx(va.before, rel=1e-5)
    assert vb.best == pytest.approx(va.best, rel=1e-4)


def test_the_base_is_kept_when_training_only_makes_it_worse(tmp_path: Path) -> None:
    """A learning rate far too large: every validation score is worse than the base's,
    so the weights file holds zero adapters and the report says the base is kept."""
    tuning = FinetuneRun(MODEL, "prism", 2, cr=2.0, mode="lora:4", steps=2, lr=50.0, batch=1)
    state, val = lm.train_lm(run_of(tuning, tmp_path), ids(2, seed=3), ids(2, seed=4))
    assert val.best_state is None and val.report(2, "mean_nll")["kept_base"]
    assert all(not t.any() for n, t in state.items() if n.endswith("lora_B"))
    stack = load_model(MODEL)
    x = ids(1)[:, :32]
    before = run_numerics(stack, x, "prism", 2, cr=2.0)
    merge_adapters(stack.hf, state)
    assert torch.equal(run_numerics(stack, x, "prism", 2, cr=2.0), before)


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lm, "EVAL_EVERY", 2)
    tuning = FinetuneRun(MODEL, "prism", 2, cr=2.0, mode="lora:4", steps=4, lr=0.01, batch=1)
    train, held = ids(4, seed=5), ids(2, seed=6)
    whole, whole_val = lm.train_lm(run_of(tuning, tmp_path / "whole"), train, held)

    def stop_at_step_3(message: str, n: int = 0) -> None:
        if message.startswith("step 3/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lm.train_lm(run_of(tuning, tmp_path / "cut", stop_at_step_3), train, held)
    assert (tmp_path / "cut" / "w.ckpt.safetensors").exists()
    resumed, val = lm.train_lm(run_of(tuning, tmp_path / "cut"), train, held)
    for n in whole:
        torch.testing.assert_close(resumed[n], whole[n], atol=1e-6, rtol=1e-5)
    assert val.report(2, "mean_nll") == pytest.approx(whole_val.report(2, "mean_nll"))


def test_validation_windows_follow_the_training_ones_disjoint_by_index() -> None:
    text = bytes(range(32, 127)) * 20  # 1,900 one-byte tokens
    tok = ByteTokenizer()
    train, held = lm.lm_windows(text, tok, 5, 30)
    assert train.shape == (5, 30) and held.shape == (lm.VALIDATION_WINDOWS, 30)
    assert train[0, 0] == 32 and train[4, 29] == text[149]  # windows 0-4: bytes 0-149
    assert held[0, 0] == text[150] and held[-1, -1] == text[29 * 30 - 1]
    assert torch.equal(held, torch.from_numpy(token_windows(text, tok, lm.VALIDATION_WINDOWS,
                                                            30, skip=5)))
    every, last = lm.lm_windows(text, tok, 10**6, 30)  # more than the text holds
    assert every.shape == (1899 // 30 - lm.VALIDATION_WINDOWS, 30)  # 63 - 24 = 39 windows
    assert torch.equal(last, torch.from_numpy(token_windows(text, tok, lm.VALIDATION_WINDOWS,
                                                            30, skip=39)))


def test_a_lora_name_reads_back() -> None:
    name = "smollm2-135m@prism-p2-cr4-lora8-s400-lr0.001-b1"
    tuning = parse(name)
    assert tuning.mode == "lora:8" and tuning.lora_rank() == 8 and tuning.cr == 4.0
    assert tuning.steps == 400 and tuning.batch == 1 and tuning.last_blocks() is None
    assert tuned_name(tuning) == name


def test_a_language_model_without_a_tokenizer_is_one_line() -> None:
    result = CliRunner().invoke(main, ["finetune", "--model", MODEL, "--mode", "lora:4",
                                       "--limit", "0"])
    assert result.exit_code != 0
    assert "llama-tiny: no tokenizer to read wiki-xml with" in result.output
    assert "Traceback" not in result.output


def test_lora_on_a_classifier_is_one_line() -> None:
    result = CliRunner().invoke(main, ["finetune", "--model", "vit-tiny", "--mode", "lora:4",
                                       "--limit", "0"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "vit-tiny: lora:R fine-tunes language models" in result.output


def test_a_tuned_language_model_says_its_validation_and_where_its_perplexity_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command after training: the held-out windows' verdict in one line (perplexity
    e^NLL: e^3 = 20.086, e^2.5 = 12.182), then the script that measures the held-out test
    perplexity instead of a classifier's accuracy."""
    import json

    import prismsim.finetune as ft

    weights = tmp_path / "w.safetensors"
    weights.with_suffix(".json").write_text(json.dumps({"validation": {
        "n_validation": 24, "metric": "mean_nll", "before": 3.0, "after": 2.5,
        "best_step": 150, "kept_base": False}}))
    monkeypatch.setattr(ft, "finetune", lambda tuning, progress: weights)
    result = CliRunner().invoke(main, ["finetune", "--model", "smollm2-135m", "--mode",
                                       "lora:8", "--cr", "4"])
    assert result.exit_code == 0, result.output
    assert ("validation: perplexity 20.086 before, 12.182 at best (step 150) on 24 held-out "
            "training windows: the trained state is kept") in result.output
    assert ("scripts/decode_perplexity.py --model smollm2-135m@prism-p2-cr4-lora8"
            in result.output)
