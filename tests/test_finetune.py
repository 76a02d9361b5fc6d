"""Fine-tuning through the per-device programs: gradients, exactness at CR = 1, resuming,
names, and the Wilson interval the accuracies carry."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from click.testing import CliRunner

import prismsim.finetune as ft
import prismsim.finetune.blocks as blocks
from prismsim.accuracy import batches
from prismsim.cli.main import main
from prismsim.datasets import dataset
from prismsim.finetune.checkpoint import checkpoint
from prismsim.finetune.steps import optimiser, order
from prismsim.metrics import wilson_interval
from prismsim.models.load import load_model
from prismsim.models.tuned import FinetuneRun, parse, tuned_name

SPEC = FinetuneRun("vit-tiny", "prism", 2, cr=4.0, mode="last:1", dataset="digits",
                    train_limit=16, steps=3, lr=1e-3, batch=4)


def _quiet(label: str, n: int = 1) -> None:
    return None


def test_wilson_interval_by_hand():
    # 8 of 10: p = 0.8, z = 1.96: centre (0.8 + z^2/20) / (1 + z^2/10) = 0.7168,
    # half-width z sqrt(0.016 + z^2/400) / (1 + z^2/10) = 0.2266; 0 of 10: [0, 0.2775]
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9434), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)


def test_names_round_trip():
    spec = FinetuneRun("dinov2-small", "prism", 3, segments=10)
    assert tuned_name(spec) == "dinov2-small@prism-p3-m10-head"
    assert parse(tuned_name(spec)) == spec
    assert tuned_name(SPEC) == "vit-tiny@prism-p2-cr4-last1-s3-lr0.001-b4-n16+digits"
    assert parse(tuned_name(SPEC)) == SPEC
    with pytest.raises(ValueError, match="not fine-tuned yet: run prismsim finetune "
                                         "--model vit-tiny --strategy prism --devices 2"):
        load_model("vit-tiny@prism-p2-cr4-head+digits")


def test_head_features_are_what_the_classifier_reads():
    """Under single, the features are ViT's own [CLS] row after its final LayerNorm."""
    stack = load_model("vit-tiny")
    spec = FinetuneRun("vit-tiny", "single", 1, dataset="digits", train_limit=6, batch=3)
    data = ft.train_data(spec)
    x, y = ft.features(stack, spec, data, _quiet)
    pixels = torch.cat([inp["pixel_values"] for inp, _ in batches("vit-tiny", data, 3)])
    with torch.no_grad():
        own = stack.hf.vit(pixel_values=pixels).last_hidden_state[:, 0]
    assert x.shape == (6, 192) and torch.allclose(x, own, atol=1e-5)
    assert y.tolist() == data.labels.tolist()


def _path(spec: FinetuneRun):
    from prismsim.models.load import state_hash
    from prismsim.models.tuned import weights_path
    return weights_path(spec, state_hash(load_model(spec.base).hf))


def _run(spec: FinetuneRun, progress=_quiet, path=None) -> blocks.Blocks:
    return blocks.Blocks(load_model(spec.base), spec, ft.train_data(spec), progress,
                         path or _path(spec))


def _stepped(spec: FinetuneRun, n: int = 3) -> dict[str, torch.Tensor]:
    """The trained parameters after n optimiser steps, no validation."""
    run = _run(spec)
    params = blocks.trainable(run.stack, spec)
    opt, examples = optimiser(spec, params.values()), order(len(run.fit), spec)
    for i in range(1, n + 1):
        blocks.step(run, params, opt, next(examples), i)
    run.stack.hf.requires_grad_(False)
    return {k: v.detach().clone() for k, v in params.items()}


def test_prism_at_cr_one_trains_as_one_device_does():
    """SGD, so the steps follow the gradients (Adam scales even round-off in a gradient
    that is zero in exact arithmetic, such as the key bias's, up to a full step)."""
    sgd = dataclasses.replace(SPEC, optimizer="sgd", lr=0.05)
    one = _stepped(dataclasses.replace(sgd, strategy="single", devices=1, cr=None))
    split = _stepped(dataclasses.replace(sgd, cr=1.0))
    base = load_model("vit-tiny")
    assert sorted(one) == sorted(split)
    assert any(not torch.equal(one[k], dict(base.hf.named_parameters())[k]) for k in one)
    for k in one:
        assert torch.allclose(one[k], split[k], atol=1e-5), k


def test_a_step_under_prism_lowers_the_loss_under_prism():
    """The gradient flows through the per-device programs: one SGD step on a batch,
    computed under prism (CR 4), lowers that batch's loss under prism."""
    spec = dataclasses.replace(SPEC, optimizer="sgd", lr=0.05)
    stack, data = load_model("vit-tiny"), ft.train_data(spec)
    params = blocks.trainable(stack, spec)
    idx = next(order(len(data), spec))
    before = blocks.loss_on(stack, spec, data, idx)
    before.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values())
    torch.optim.SGD(list(params.values()), lr=spec.lr).step()
    with torch.no_grad():
        after = blocks.loss_on(stack, spec, data, idx)
    assert after.item() < before.item()


def _scripted(monkeypatch, errors: list[float]) -> list[str]:
    """Held-out errors in the order they are asked for; the progress labels seen."""
    monkeypatch.setattr(blocks, "EVAL_EVERY", 2)
    queue = iter(errors)
    monkeypatch.setattr(blocks, "held_error", lambda run: next(queue))
    return []


def test_the_learning_rate_and_the_state_are_chosen_on_held_out_examples(monkeypatch,
                                                                         tmp_path):
    """12 steps, a score every 2: errors 0.5 before; the trials at lr x1, x0.1, x10 after
    2 steps 0.4, 0.45, 0.3 (x10 goes on, 1e-2); then 0.35, 0.35, 0.35 at steps 4, 6, 8:
    three misses, so steps 9-12 are never run and the state of step 2 is kept."""
    seen = _scripted(monkeypatch, [0.5, 0.4, 0.45, 0.3, 0.35, 0.35, 0.35])
    spec = dataclasses.replace(SPEC, steps=12)
    _, report = blocks.train_blocks(_run(spec, lambda label, n=1: seen.append(label),
                                         tmp_path / "w.safetensors"))
    assert report["lr"] == pytest.approx(1e-2) and report["best_step"] == 2
    assert report["before"] == 0.5 and report["after"] == pytest.approx(0.7)
    assert not report["kept_base"] and report["n_validation"] == 3  # a fifth of 16
    steps = [label.split(":")[0] for label in seen if label.startswith("step")]
    assert steps == ["step 1/12", "step 2/12"] * 3 + [f"step {n}/12" for n in range(3, 9)]


def test_the_base_is_kept_when_no_state_beats_it(monkeypatch, tmp_path):
    """A run built to lose: every trial and score is worse than the base's 0.2 error."""
    _scripted(monkeypatch, [0.2, 0.3, 0.25, 0.4, 0.3, 0.3, 0.3])
    spec = dataclasses.replace(SPEC, steps=12, lr=0.5)
    run = _run(spec, path=tmp_path / "w.safetensors")
    base = {k: v.detach().clone() for k, v in run.stack.hf.named_parameters()}
    state, report = blocks.train_blocks(run)
    assert report["kept_base"] and report["after"] == report["before"] == 0.8
    for k, v in state.items():
        assert torch.equal(v, base[k]), k


def test_an_interrupted_run_resumes_to_the_same_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(blocks, "EVAL_EVERY", 2)
    spec = dataclasses.replace(SPEC, steps=4, seed=5)
    whole, whole_report = blocks.train_blocks(_run(spec, path=tmp_path / "w.safetensors"))

    def stop_at_step_3(label: str, n: int = 1) -> None:
        if label.startswith("step 3/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ft.finetune(spec, stop_at_step_3)
    assert checkpoint(_path(spec)).exists()
    steps: list[str] = []
    path = ft.finetune(spec, lambda label, n=1: steps.append(label))
    assert [s.split(":")[0] for s in steps if s.startswith("step")] == ["step 3/4", "step 4/4"]
    tuned = dict(load_model(tuned_name(spec)).hf.named_parameters())
    for k, v in whole.items():
        assert torch.allclose(tuned[k], v, atol=1e-6), k
    assert ft.validation_report(path) == pytest.approx(whole_report)
    assert not checkpoint(path).exists()


def test_finetune_command_prints_the_name_and_both_accuracies():
    args = ["finetune", "--model", "vit-tiny", "--dataset", "digits", "--strategy", "prism",
            "--devices", "2", "--cr", "4", "--mode", "head", "--train-limit", "60",
            "--limit", "40"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "vit-tiny@prism-p2-cr4-head-n60+digits ->" in result.output
    lines = {ln.split(":")[0]: ln for ln in result.output.splitlines()
             if ln.startswith(("before:", "after:"))}
    assert set(lines) == {"before", "after"}
    assert "40 digits test examples" in lines["after"]
    # the head was judged on 12 of the 60 training examples (a fifth), in one line
    (judged,) = [ln for ln in result.output.splitlines() if ln.startswith("validation:")]
    assert "on 12 held-out training examples" in judged
    bad = CliRunner().invoke(main, [*args[:-6], "--mode", "middle"])
    assert bad.exit_code == 2 and "mode must be head, last:K, all or lora:R" in bad.output
    assert len(dataset("digits", "test").head(40)) == 40


def test_by_default_a_small_train_split_is_used_whole() -> None:
    """MNIST-5k has 4,000 training digits, Rotten Tomatoes 3,893 training sentences; a
    name that asks for fewer says so."""
    assert len(ft.train_data(FinetuneRun("dinov2-small"))) == 4000
    assert len(ft.train_data(FinetuneRun("minilm-l6"))) == 3893
    assert tuned_name(FinetuneRun("minilm-l6", train_limit=1000)).endswith("-head-n1000")
