"""A refitted head is kept only when it is better on held-out training examples
(models/heads.py's choose_head), checked on cases built by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prismsim.models.heads import accuracy_of, choose_head, fit_linear, validation_split


def _head(weight: torch.Tensor) -> nn.Linear:
    head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.zero_()
    return head


def test_the_validation_examples_are_apart_from_those_fitted():
    fit, val = validation_split(103, seed=4)
    assert len(val) == 21 and len(fit) == 82  # a fifth, rounded, held out
    assert set(fit).isdisjoint(val) and set(fit) | set(val) == set(range(103))
    again, _ = validation_split(103, seed=4)
    assert np.array_equal(fit, again)  # seeded
    with pytest.raises(ValueError, match="2 or more training examples"):
        validation_split(1, seed=0)


def test_a_base_head_better_than_any_refit_is_kept():
    """Built to overfit: 50 features, 10 examples, labels the base head's own answers
    with those of the fitted examples scrambled. The base head is right on every held-out
    example; no head fitted on scrambled labels can be better there, so the base stays."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(10, 50, generator=gen)
    base = _head(torch.randn(3, 50, generator=gen))
    y = base(x).argmax(1)
    fit, val = validation_split(10, seed=0)
    y[fit] = (y[fit] + 1) % 3  # every fitted label wrong
    choice = choose_head(x, y, 3, base, seed=0)
    assert choice.before == 1.0 and choice.kept_base and choice.head is base
    assert choice.n_validation == len(val) == 2


def test_a_refit_better_on_validation_replaces_the_base():
    """Labels by the sign of the first feature; the base head reads only the second, so
    it is right about half the time; a refit learns the rule."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(200, 4, generator=gen)
    y = (x[:, 0] > 0).long()
    base = _head(torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0]]))
    choice = choose_head(x, y, 2, base, seed=0)
    assert not choice.kept_base and choice.after > choice.before + 0.3
    assert accuracy_of(choice.head, x, y) > 0.95


def test_a_warm_start_reaches_the_same_optimum():
    """The L2-penalized loss is strictly convex in the weights, and the unpenalized biases
    matter only up to a shift common to every class (softmax): starting from another head
    gives the same weights and the same probabilities (to L-BFGS's tolerance)."""
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(60, 5, generator=gen), torch.randint(0, 3, (60,), generator=gen)
    cold = fit_linear(x, y, 3, l2=0.1)
    warm = fit_linear(x, y, 3, l2=0.1, start=_head(torch.randn(3, 5, generator=gen)))
    assert torch.allclose(cold.weight, warm.weight, atol=1e-3)
    with torch.no_grad():
        assert torch.allclose(cold(x).softmax(1), warm(x).softmax(1), atol=1e-3)
