"""Exact strategies cost nothing twice: voltage, tensor_parallel and galaxy (those
declared ``exact`` in ``strategies.STRATEGIES``) compute what one device computes
(``tests/test_exact_against_hf.py`` proves it to float tolerance), so a sweep evaluates
one of them once per model and dataset, on its first ``CHECK_EXAMPLES`` examples, as the
check, and gives every one of them single's metrics, saying so (with the check's
agreement) in ``accuracy_source``."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from prismsim.configuration import SINGLE
from prismsim.strategies import STRATEGIES
from prismsim.sweep.needs import AccuracyNeed

CHECK_EXAMPLES = 32  # the check's examples: agreement with single, not the task metric


def exact_strategies() -> frozenset[str]:
    """The strategies declared exact (``StrategyEntry.exact``) besides single itself."""
    return frozenset(n for n, entry in STRATEGIES.items() if entry.exact and n != SINGLE)


def _single(need: AccuracyNeed) -> AccuracyNeed:
    return dataclasses.replace(need, strategy="single", devices=1, options=(), weights=None)


def _check(need: AccuracyNeed) -> AccuracyNeed:
    limit = CHECK_EXAMPLES if need.limit is None else min(need.limit, CHECK_EXAMPLES)
    return dataclasses.replace(need, limit=limit)


@dataclasses.dataclass(frozen=True)
class Plan:
    evaluate: list[AccuracyNeed]  # what is evaluated
    borrowed: dict[AccuracyNeed, tuple[AccuracyNeed, AccuracyNeed]]  # -> (single, check)


def plan(needs: list[AccuracyNeed]) -> Plan:
    """Every inexact need, single and one exact configuration's check (the first) of
    each model and data are evaluated; every exact need borrows single's metrics."""
    exact = exact_strategies()
    evaluate = [n for n in needs if n.strategy not in exact]
    checks: dict[AccuracyNeed, AccuracyNeed] = {}  # single's need -> its check
    borrowed = {}
    for n in needs:
        if n.strategy in exact:
            single = _single(n)
            borrowed[n] = (single, checks.setdefault(single, _check(n)))
    for single, check in checks.items():
        evaluate += [single] if single not in evaluate else []
        evaluate.append(check)
    return Plan(evaluate, borrowed)


def _label(n: AccuracyNeed) -> str:
    return f"{n.strategy} P={n.devices}"


def fill(p: Plan, results: dict[AccuracyNeed, dict[str, Any]]) -> dict[AccuracyNeed, Any]:
    """``results`` of the evaluated needs, and the borrowed ones from single's."""
    out = dict(results)
    for need, (single, check) in p.borrowed.items():
        base, checked = results[single], results[check]
        if math.isnan(base["value"]):  # nothing to borrow: single's reason stands
            out[need] = base
            continue
        out[need] = {**base, "accuracy_source": (
            f"{_label(need)} is exact: single's metrics, checked by evaluating "
            f"{_label(check)} on the first {checked['n_examples']} examples (top-1 "
            f"agreement {checked['top1_agreement']:.4f}, mean KL {checked['mean_kl']:.2g}); "
            f"{base['accuracy_source']}")}
    return out
