"""``prismsim finetune``: train a model through a strategy's per-device programs, then
say its accuracy under that strategy before and after (held-out test examples)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from prismsim.cli.common import user_errors
from prismsim.progress import reporter

if TYPE_CHECKING:
    from prismsim.models.tuned import FinetuneRun


@click.command()
@click.option("--model", default="dinov2-small", show_default=True,
              help="a classifier: dinov2-small, minilm-l6, vit-tiny, ...")
@click.option("--dataset", default=None, help="default: the model's own (mnist-5k, ...)")
@click.option("--strategy", default="prism", show_default=True)
@click.option("--devices", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--segments", type=click.IntRange(min=1), default=None,
              help="prism: Segment Means per partition")
@click.option("--cr", type=click.FloatRange(min=1), default=None, help="prism: compression rate")
@click.option("--mode", default="head", show_default=True,
              help="head, last:K or all; language models: last:K or lora:R")
@click.option("--train-limit", type=click.IntRange(min=1), default=5000, show_default=True,
              help="training examples, the train split's first (every one of a split "
                   "this small; a language model: windows)")
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True,
              help="last:K / all: optimiser steps")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-5,
              show_default=True, help="last:K / all: learning rate")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--optimizer", type=click.Choice(["adamw", "sgd"]), default="adamw",
              show_default=True)
@click.option("--seed", default=0, show_default=True, help="order of the examples")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads (default: torch's own)")
@click.option("--limit", type=click.IntRange(min=0), default=1000, show_default=True,
              help="test examples for the accuracy before and after (0: none)")
def finetune(model: str, dataset: str | None, strategy: str, devices: int,
             segments: int | None, cr: float | None, mode: str, train_limit: int, steps: int,
             lr: float, batch: int, optimizer: str, seed: int, threads: int | None,
             limit: int) -> None:
    """Fine-tune MODEL under STRATEGY on P devices (resumable; cached); prints the
    fine-tuned model's name, usable wherever a model name is."""
    import torch

    from prismsim.assets import AssetError
    from prismsim.finetune import finetune as run
    from prismsim.finetune import train_data, validation_report
    from prismsim.finetune.blocks import planned_steps
    from prismsim.models.tuned import FinetuneRun, check, tuned_name

    if threads:
        torch.set_num_threads(threads)
    tuning = FinetuneRun(model, strategy, devices, cr, segments, mode, dataset, train_limit,
                        steps, lr, batch, optimizer, seed)
    with user_errors(AssetError, ValueError):
        check(tuning)
        total = len(train_data(tuning)) if mode == "head" else planned_steps(tuning)
        with reporter(f"fine-tuning {tuned_name(tuning)}", total) as progress:
            path = run(tuning, progress)
        click.echo(f"{tuned_name(tuning)} -> {path}")
        report = validation_report(path)
        _validation(report)
        if report and report.get("metric") == "mean_nll":  # a language model
            click.echo(f"held-out perplexity: .venv/bin/python scripts/decode_perplexity.py "
                       f"--model {tuned_name(tuning)}")
        elif limit:
            _compare(tuning, limit)


def _validation(report: dict | None) -> None:
    """One line: what the held-out training examples (or windows) decided."""
    if report is None:
        return
    if "best_step" in report:  # trained for steps: a language model, last:K or all
        _trained_validation(report)
        return
    figures = (f"{report['before']:.4f} with the model's own head, {report['after']:.4f} "
               f"refitted (L2 {report['l2']:g}) on {report['n_validation']} held-out "
               f"training examples")
    if report["kept_base"]:
        click.echo(f"validation: not better refitted ({figures}): the model's own head is "
                   f"kept")
    else:
        click.echo(f"validation: {figures}: the refitted head is kept")


def _trained_validation(report: dict) -> None:
    """One line: what the held-out training windows (language models: perplexity) or
    examples (accuracy, at the learning rate chosen) decided."""
    import math

    if report["metric"] == "mean_nll":
        before, after = math.exp(report["before"]), math.exp(report["after"])
        figures, held = f"perplexity {before:.3f} before, {after:.3f}", "windows"
    else:
        figures = f"accuracy {report['before']:.4f} before, {report['after']:.4f}"
        held = f"examples, learning rate {report['lr']:g}"
    figures += (f" at best (step {report['best_step']}) on {report['n_validation']} "
                f"held-out training {held}")
    if report["kept_base"]:
        click.echo(f"validation: not better trained ({figures}): the base model is kept")
    else:
        click.echo(f"validation: {figures}: the trained state is kept")


def _compare(tuning: FinetuneRun, limit: int) -> None:
    from prismsim.accuracy import evaluate
    from prismsim.finetune import train_data
    from prismsim.models.tuned import tuned_name

    dataset = train_data(tuning).name
    for label, name in (("before", tuning.base), ("after", tuned_name(tuning))):
        r = evaluate(name, dataset, tuning.strategy, tuning.devices, limit=limit,
                     **tuning.options())
        lo, hi, n = r["ci95_low"], r["ci95_high"], r["n_examples"]
        click.echo(f"{label}: {r['metric']} {r['value']:.4f} (95 % interval {lo:.4f}-"
                   f"{hi:.4f}, {n} {dataset} test examples) under {tuning.strategy} "
                   f"P={tuning.devices}")


COMMANDS = (finetune,)
