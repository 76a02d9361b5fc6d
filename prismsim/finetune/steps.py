"""What every training run's steps share: the seeded order of the examples (or windows)
and the optimiser."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from prismsim.models.tuned import FinetuneRun


def order(n: int, tuning: FinetuneRun) -> Iterator[np.ndarray]:
    """Each step's example indices: seeded permutations, one per pass over the data."""
    epoch, pos, perm = 0, 0, np.random.default_rng([tuning.seed, 0]).permutation(n)
    while True:
        if pos + tuning.batch > n:
            epoch, pos = epoch + 1, 0
            perm = np.random.default_rng([tuning.seed, epoch]).permutation(n)
        yield perm[pos:pos + tuning.batch]
        pos += tuning.batch


def optimiser(tuning: FinetuneRun, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    if tuning.optimizer == "sgd":
        return torch.optim.SGD(params, lr=tuning.lr)
    return torch.optim.AdamW(params, lr=tuning.lr)
