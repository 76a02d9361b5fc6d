"""Task metrics (the paper's Table III) and fidelity to the exact model."""

from __future__ import annotations

import math

import numpy as np


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(pred == labels))


def _confusion(pred: np.ndarray, labels: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, tn, fp, fn) with class 1 as positive."""
    tp = int(np.sum((pred == 1) & (labels == 1)))
    tn = int(np.sum((pred == 0) & (labels == 0)))
    fp = int(np.sum((pred == 1) & (labels == 0)))
    fn = int(np.sum((pred == 0) & (labels == 1)))
    return tp, tn, fp, fn


def f1(pred: np.ndarray, labels: np.ndarray) -> float:
    """Binary F1 of the positive class (MRPC, QQP)."""
    tp, _, fp, fn = _confusion(pred, labels)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def mcc(pred: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation coefficient (CoLA); 0 when a margin is empty."""
    tp, tn, fp, fn = _confusion(pred, labels)
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denom if denom else 0.0


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(pred: np.ndarray, target: np.ndarray) -> float:
    """Spearman rank correlation (STS-B): Pearson correlation of the ranks."""
    return float(np.corrcoef(_ranks(np.asarray(pred)), _ranks(np.asarray(target)))[0, 1])


def bits_per_byte(ce_nats_sum: float, n_bytes: int) -> float:
    """Cross-entropy in nats summed over predicted bytes -> bits per byte (or character)."""
    return ce_nats_sum / n_bytes / math.log(2)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def top1_agreement(logits: np.ndarray, ref_logits: np.ndarray) -> float:
    """Share of positions whose arg-max equals the exact model's."""
    return float(np.mean(logits.argmax(-1) == ref_logits.argmax(-1)))


def kl_per_position(logits: np.ndarray, ref_logits: np.ndarray) -> np.ndarray:
    """KL(exact || distributed) of each position (every axis but the last), in nats."""
    log_p, log_q = _log_softmax(ref_logits.astype(np.float64)), _log_softmax(
        logits.astype(np.float64))
    return np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)


def mean_kl(logits: np.ndarray, ref_logits: np.ndarray) -> float:
    """Mean KL(exact || distributed) over positions, in nats."""
    return float(np.mean(kl_per_position(logits, ref_logits)))


METRICS = {"accuracy": accuracy, "f1": f1, "mcc": mcc, "spearman": spearman}
# byte / character LMs, and a token LM's perplexity (scripts/decode_perplexity.py)
LOWER_IS_BETTER = frozenset({"bits_per_byte", "bits_per_character", "perplexity"})


Z_95 = 1.959964  # the normal distribution's 0.975 quantile


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default): good also near 0 and 1,
    where the normal approximation leaves [0, 1]."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return center - half, center + half


def ratio_bootstrap(num: np.ndarray, den: np.ndarray, resamples: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of sum(num) / sum(den) over units resampled
    with replacement (bits per byte over windows: num nats, den bytes x ln 2)."""
    n = len(num)
    if n < 2:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    ratios = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)

