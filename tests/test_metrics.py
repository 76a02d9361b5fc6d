"""Metrics against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from prismsim.accuracy import _Tally
from prismsim.metrics import accuracy, bits_per_byte, f1, mcc, mean_kl, spearman, top1_agreement


def test_classification_metrics_by_hand():
    pred = np.array([1, 1, 0, 0, 1, 0])
    labels = np.array([1, 0, 0, 1, 1, 0])
    # tp = 2, tn = 2, fp = 1, fn = 1
    assert accuracy(pred, labels) == pytest.approx(4 / 6)
    assert f1(pred, labels) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert mcc(pred, labels) == pytest.approx((2 * 2 - 1 * 1) / math.sqrt(3 * 3 * 3 * 3))
    assert mcc(np.ones(4, int), np.array([1, 0, 1, 0])) == 0.0  # empty margin


def test_spearman_by_hand():
    assert spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    # ranks of [1, 2, 2, 3] are [1, 2.5, 2.5, 4]; of [1, 3, 2, 4] they are [1, 3, 2, 4]:
    # Pearson of those is 4.5 / sqrt(4.5 * 5)
    assert spearman(np.array([1, 2, 2, 3]), np.array([1, 3, 2, 4])) == pytest.approx(
        4.5 / math.sqrt(4.5 * 5))


def test_bits_per_byte_of_a_uniform_guess():
    # guessing uniformly over 256 byte values costs ln(256) nats = 8 bits per byte
    assert bits_per_byte(100 * math.log(256), 100) == pytest.approx(8.0)


def test_fidelity_by_hand():
    ref = np.array([[0.0, 0.0], [2.0, 0.0]])
    same = ref.copy()
    assert top1_agreement(same, ref) == 1.0 and mean_kl(same, ref) == pytest.approx(0.0)
    flipped = np.array([[0.0, 0.0], [0.0, 2.0]])
    assert top1_agreement(flipped, ref) == 0.5  # the tie [0, 0] resolves to class 0 in both
    # second row: p = softmax([2, 0]) = [a, b], q = [b, a]: KL = (a - b) * 2
    a, b = math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)
    assert mean_kl(flipped, ref) == pytest.approx((0 + (a - b) * 2) / 2)


def test_ratio_bootstrap_collapses_on_equal_units_and_matches_wald_on_many():
    from prismsim.metrics import ratio_bootstrap

    same = ratio_bootstrap(np.full(50, 3.0), np.full(50, 2.0))
    assert same == pytest.approx((1.5, 1.5))
    # 2,000 Bernoulli(0.3) draws: the bootstrap of the mean approaches Wald's interval
    # p +- 1.96 sqrt(p (1 - p) / n), +-0.0201 here
    x = (np.random.default_rng(1).random(2000) < 0.3).astype(float)
    p = x.mean()
    half = 1.96 * np.sqrt(p * (1 - p) / len(x))
    low, high = ratio_bootstrap(x, np.ones(len(x)), resamples=4000)
    assert low == pytest.approx(p - half, abs=0.003)
    assert high == pytest.approx(p + half, abs=0.003)


def test_kl_interval_is_a_bootstrap_over_examples():
    """Half of 400 examples predict q = [b, a] where the exact model says p = [a, b]
    (KL (a - b) * 2 each, as above), the other half agree (KL 0): the mean is k / 2 and
    the interval about k / 2 +- 1.96 (k / 2) / sqrt(400), the normal one of a mean."""
    a, b = math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)
    k = (a - b) * 2
    ref = torch.tensor([[2.0, 0.0]]).repeat(400, 1)  # [examples, classes]
    out = ref.clone()
    out[::2] = torch.tensor([0.0, 2.0])
    tally = _Tally("image")
    for i in range(0, 400, 32):  # in batches, as evaluate() feeds it
        tally.add(out[i:i + 32], ref[i:i + 32], np.zeros(len(out[i:i + 32]), int))
    r = tally.result("accuracy")
    half = 1.96 * (k / 2) / math.sqrt(400)
    assert r["mean_kl"] == pytest.approx(k / 2)
    assert r["mean_kl_ci95_low"] == pytest.approx(k / 2 - half, rel=0.05)
    assert r["mean_kl_ci95_high"] == pytest.approx(k / 2 + half, rel=0.05)
