"""Training judged on held-out examples, as language models and classifiers' blocks are
trained: the base's score before training, a score every so many steps, the best state
kept (the base's where none beats it), and a checkpoint at each score that a resumed
run reads back (the initial state included: LoRA's A is drawn at random)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from prismsim.finetune.checkpoint import resume, save_checkpoint

Params = dict[str, nn.Parameter]


@dataclass
class Validation:
    """The held-out scores so far (lower is better) and the best state."""

    before: float  # the base model's score
    best: float  # the best score so far (before, at the start)
    best_step: int = 0  # the step the best state was reached at (0: the base)
    misses: int = 0  # scores in a row without a better one
    # the best state's trained parameters (None: the base's)
    best_state: dict[str, Tensor] | None = None

    def score(self, value: float, step: int, params: Params) -> None:
        if value < self.best:
            self.best, self.best_step, self.misses = value, step, 0
            self.best_state = {n: p.detach().clone() for n, p in params.items()}
        else:
            self.misses += 1

    def meta(self) -> dict:
        return {"before": self.before, "best": self.best, "best_step": self.best_step,
                "misses": self.misses}

    def report(self, n_held: int, metric: str) -> dict:
        return {"n_validation": n_held, "metric": metric, "before": self.before,
                "after": self.best, "best_step": self.best_step,
                "kept_base": self.best_state is None}


def clone(params: Params) -> dict[str, Tensor]:
    return {n: p.detach().clone() for n, p in params.items()}


def save_scored(path: Path, params: Params, opt: torch.optim.Optimizer, step: int,
                val: Validation, initial: dict[str, Tensor], meta: dict | None = None) -> None:
    """The checkpoint after a score: parameters, optimiser, initial and best states."""
    extra = {f"initial.{n}": t for n, t in initial.items()}
    extra.update({f"best.{n}": t for n, t in (val.best_state or {}).items()})
    save_checkpoint(path, params, opt, step, extra, {**val.meta(), **(meta or {})})


def restore_scored(path: Path, params: Params, opt: torch.optim.Optimizer,
                   initial: dict[str, Tensor]) -> tuple[Validation | None, int, dict]:
    """From the checkpoint: the validation so far, the steps done and the sidecar, with
    parameters, optimiser state and ``initial`` put back; (None, 0, {}) without one."""
    done, extra, meta = resume(path, params, opt)
    if not done:
        return None, 0, {}
    initial.update({n: extra[f"initial.{n}"] for n in initial})
    best = {n: extra[f"best.{n}"] for n in params if f"best.{n}" in extra}
    fields = {k: meta[k] for k in ("before", "best", "best_step", "misses")}
    return Validation(**fields, best_state=best or None), done, meta


def put(params: Params, state: dict[str, Tensor]) -> None:
    """The parameters set to ``state``'s values."""
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(state[n])


def keep_best(params: Params, val: Validation, initial: dict[str, Tensor]) -> None:
    """The parameters set to the best state, or to the initial one where none beat it."""
    put(params, val.best_state or initial)
