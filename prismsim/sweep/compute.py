"""Computing one need: a workload traced (or read from the disk cache), weights
fine-tuned (or found trained) and an accuracy evaluated (or read from its cache). Plain
functions of plain data, so they run in this
process, in worker processes or on a Dask cluster alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from prismsim.accuracy import evaluate
from prismsim.executors.trace_cache import WorkloadCache
from prismsim.finetune import finetune as train
from prismsim.strategies import CannotRunError
from prismsim.sweep.needs import AccuracyNeed, FinetuneNeed, WorkloadNeed
from prismsim.sweep.rows import NO_ACCURACY

ACCURACY_KEYS = ("metric", "value", "top1_agreement", "mean_kl", "mean_kl_ci95_low",
                 "mean_kl_ci95_high", "accuracy_source", "n_examples", "ci95_low", "ci95_high")


@dataclass(frozen=True)
class Skipped:
    """A workload the strategy cannot run on the model (found once the model is loaded:
    one the catalog does not describe), and why."""

    reason: str


def trace(need: WorkloadNeed) -> str | Skipped:
    """The workload as JSON: plain text travels back from another process or machine."""
    try:
        wl = WorkloadCache().get(need.model, need.strategy, need.devices, tokens=need.tokens,
                                 batch=need.batch, wire=need.wire, weights=need.weights,
                                 generate=need.generate, **dict(need.options))
    except CannotRunError as err:
        return Skipped(str(err))
    return wl.to_json()


def finetune(need: FinetuneNeed) -> str:
    """The fine-tuned weights' path (the sweep reports the need as a whole)."""
    return str(train(need.run, lambda label, n=1: None))


def accuracy(need: AccuracyNeed) -> dict[str, Any]:
    """The task metric and fidelity; a model or dataset that cannot be had (a hub one,
    offline) gives NaN with the reason in ``accuracy_source``."""
    try:
        r = evaluate(need.model, need.dataset, need.strategy, need.devices, split=need.split,
                     limit=need.limit, batch=need.batch, decode=need.decode,
                     **need.keywords())
    except (OSError, ValueError, RuntimeError) as err:
        return {**NO_ACCURACY, "accuracy_source": f"unavailable: {err}"}
    return {k: r.get(k) for k in ACCURACY_KEYS}


def init_worker(threads: int) -> None:
    """A worker process's torch threads: the machine's cores shared among the workers."""
    torch.set_num_threads(threads)
