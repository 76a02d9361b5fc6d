"""Training a classifier's last K blocks (``last:K``: with the final norm and the head) or
every parameter (``all``) under a strategy, as a careful practitioner does: a seeded fifth
of the training examples is held out (``models/heads.py``'s ``validation_split``); the
learning rate is chosen on them among ``LR_FACTORS`` times ``--lr``, each tried for the
first ``EVAL_EVERY`` steps from the same start (the best goes on); the held-out accuracy
is scored every ``EVAL_EVERY`` steps, the best state kept, training stopped after
``PATIENCE`` scores without a better one, and the base model kept where no state beats it.
AdamW (or SGD), ``batch`` examples a step in a seeded order; the model stays in eval mode
(no dropout), so a run is deterministic. A checkpoint at each score; a run resumes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from prismsim.accuracy import batches
from prismsim.datasets import Dataset
from prismsim.executors.memory import run_numerics
from prismsim.finetune.scoring import (
    Validation,
    clone,
    keep_best,
    put,
    restore_scored,
    save_scored,
)
from prismsim.finetune.steps import optimiser, order
from prismsim.models.heads import validation_split
from prismsim.models.stack import ModelStack
from prismsim.models.tuned import FinetuneRun
from prismsim.progress import Progress

LR_FACTORS = (1.0, 0.1, 10.0)  # learning rates tried, times --lr (ties: the earlier)
EVAL_EVERY = 50  # steps between held-out scores (and each learning rate's trial)
PATIENCE = 3  # scores without a better one before training stops


@dataclass
class Blocks:
    """One run: the model, what it trains, its data split, where it checkpoints."""

    stack: ModelStack
    tuning: FinetuneRun
    data: Dataset
    progress: Progress
    path: Path  # the weights file (the checkpoint beside it)

    def __post_init__(self) -> None:
        self.fit, self.held = validation_split(len(self.data), self.tuning.seed)


def trainable(stack: ModelStack, tuning: FinetuneRun) -> dict[str, nn.Parameter]:
    """The parameters ``tuning`` trains, by their names in the model; only they require
    gradients afterwards."""
    stack.hf.requires_grad_(False)
    k = tuning.last_blocks()
    if k is None:
        parts: list[nn.Module] = [stack.hf]
    else:
        if k > len(stack.blocks):
            raise ValueError(f"{stack.name} has {len(stack.blocks)} blocks, not {k}")
        parts = [*stack.blocks[-k:], stack.head.local, classifier(stack)[1]]
    for m in parts:
        m.requires_grad_(True)
    named = {id(p): n for n, p in stack.hf.named_parameters()}
    chosen = [p for m in parts for p in m.parameters() if p.requires_grad]
    stray = [p for p in chosen if id(p) not in named]
    if stray:
        raise ValueError(f"{stack.name}: its blocks hold copies of the model's parameters "
                         f"(e.g. GPT-2's split projections): {tuning.mode} is not supported")
    return {named[id(p)]: p for p in chosen}


def classifier(stack: ModelStack) -> tuple[str, nn.Linear]:
    """The linear head the features go into (its name in the model)."""
    clf = getattr(stack.hf, "classifier", None)
    if not isinstance(clf, nn.Linear):
        raise ValueError(f"{stack.name}: fine-tuning needs a classification head "
                         f"(a linear `classifier`)")
    return "classifier", clf


def subset(data: Dataset, idx: np.ndarray) -> Dataset:
    examples = data.examples[idx] if isinstance(data.examples, np.ndarray) else [
        data.examples[i] for i in idx]
    return Dataset(data.name, data.split, data.kind, examples,
                   None if data.labels is None else data.labels[idx], data.classes)


def loss_on(stack: ModelStack, tuning: FinetuneRun, data: Dataset, idx: np.ndarray) -> Tensor:
    """Mean cross-entropy of examples ``idx`` computed under the strategy, with its graph."""
    total, count = torch.zeros(()), 0
    for inputs, target in batches(tuning.base, subset(data, idx), len(idx)):
        logits = run_numerics(stack, inputs, tuning.strategy, tuning.devices, grad=True,
                              **tuning.options())
        y = torch.as_tensor(np.asarray(target))
        total = total + nn.functional.cross_entropy(logits.float(), y, reduction="sum")
        count += len(y)
    return total / count


def held_error(run: Blocks) -> float:
    """1 - accuracy on the held-out examples under the strategy (lower is better)."""
    right = 0
    with torch.no_grad():
        for inputs, target in batches(run.tuning.base, subset(run.data, run.held),
                                      run.tuning.batch):
            logits = run_numerics(run.stack, inputs, run.tuning.strategy, run.tuning.devices,
                                  **run.tuning.options())
            right += int((logits.argmax(-1).numpy() == np.asarray(target)).sum())
    return 1.0 - right / len(run.held)


def step(run: Blocks, params: dict[str, nn.Parameter], opt: torch.optim.Optimizer,
         idx: np.ndarray, n: int) -> None:
    """One optimiser step on training examples ``idx`` (indices into the fitted ones)."""
    loss = loss_on(run.stack, run.tuning, run.data, run.fit[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
    run.progress(f"step {n}/{run.tuning.steps}: loss {loss.item():.4f}", 1)


def planned_steps(tuning: FinetuneRun) -> int:
    """Optimiser steps a run takes at most: every learning rate's trial, then the rest."""
    return tuning.steps + (len(LR_FACTORS) - 1) * min(EVAL_EVERY, tuning.steps)


def train_blocks(run: Blocks) -> tuple[dict[str, Tensor], dict]:
    """The trained parameters to keep (the base's where no state beats it on the held-out
    examples) and what decided it."""
    params = trainable(run.stack, run.tuning)
    initial = clone(params)
    opt = optimiser(run.tuning, params.values())
    val, done, meta = restore_scored(run.path, params, opt, initial)
    try:
        if val is None:
            val, opt, done, lr = _choose_lr(run, params, initial)
        else:
            lr = meta["lr"]  # the optimiser's state is back: its rate, the one chosen
            for group in opt.param_groups:
                group["lr"] = lr
        _go_on(run, params, opt, val, initial, done, lr)
        keep_best(params, val, initial)
    finally:
        run.stack.hf.requires_grad_(False)
    report = val.report(len(run.held), "accuracy")
    report.update(before=1 - val.before, after=1 - val.best, lr=lr)
    return clone(params), report


def _choose_lr(run: Blocks, params: dict[str, nn.Parameter], initial: dict[str, Tensor]
               ) -> tuple[Validation, torch.optim.Optimizer, int, float]:
    """Each learning rate's first steps from the base; the best trial's state, scored
    (a checkpoint), its optimiser, the steps done and the rate."""
    before = held_error(run)
    run.progress(f"validation before: accuracy {1 - before:.4f}", 0)
    first, trials = min(EVAL_EVERY, run.tuning.steps), []
    for factor in LR_FACTORS:
        put(params, initial)
        lr = run.tuning.lr * factor
        opt = optimiser(dataclasses.replace(run.tuning, lr=lr), params.values())
        examples = order(len(run.fit), run.tuning)
        for n in range(1, first + 1):
            step(run, params, opt, next(examples), n)
        trials.append((held_error(run), lr, clone(params), opt))
        run.progress(f"learning rate {lr:g}: accuracy {1 - trials[-1][0]:.4f} after "
                     f"{first} steps", 0)
    error, lr, state, opt = min(trials, key=lambda t: t[0])  # ties: the earlier
    put(params, state)
    val = Validation(before=before, best=before)
    val.score(error, first, params)
    save_scored(run.path, params, opt, first, val, initial, {"lr": lr})
    return val, opt, first, lr


def _go_on(run: Blocks, params: dict[str, nn.Parameter], opt: torch.optim.Optimizer,
           val: Validation, initial: dict[str, Tensor], done: int, lr: float) -> None:
    """Steps ``done`` + 1 ... ``steps``, scored every EVAL_EVERY (and at the last), until
    PATIENCE scores in a row are no better."""
    examples = order(len(run.fit), run.tuning)
    for n in range(1, run.tuning.steps + 1):
        idx = next(examples)
        if n <= done:
            continue
        if val.misses >= PATIENCE:
            break
        step(run, params, opt, idx, n)
        if n % EVAL_EVERY == 0 or n == run.tuning.steps:
            val.score(held_error(run), n, params)
            run.progress(f"validation at step {n}: best accuracy {1 - val.best:.4f} (step "
                         f"{val.best_step}; {1 - val.before:.4f} before)", 0)
            save_scored(run.path, params, opt, n, val, initial, {"lr": lr})
