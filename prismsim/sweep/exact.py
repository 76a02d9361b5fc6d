"""Exact strategies cost nothing twice: voltage, tensor_parallel and galaxy compute what
one device computes (``tests/test_exact_against_hf.py`` proves it to float tolerance), so
a sweep evaluates one of them once per model and dataset, as the check, and gives the
others single's metrics, saying so in ``accuracy_source``."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from prismsim.sweep.needs import AccuracyNeed

EXACT = frozenset({"voltage", "tensor_parallel", "galaxy"})


def _single(need: AccuracyNeed) -> AccuracyNeed:
    return dataclasses.replace(need, strategy="single", devices=1, options=(), weights=None)


@dataclasses.dataclass(frozen=True)
class Plan:
    evaluate: list[AccuracyNeed]  # what is evaluated
    borrowed: dict[AccuracyNeed, tuple[AccuracyNeed, AccuracyNeed]]  # -> (single, check)


def plan(needs: list[AccuracyNeed]) -> Plan:
    """Single and one exact configuration (the first) of each model and data are
    evaluated; every other exact one borrows single's metrics."""
    evaluate: list[AccuracyNeed] = []
    checks: dict[AccuracyNeed, AccuracyNeed] = {}  # single's need -> its check
    borrowed = {}
    for n in needs:
        if n.strategy not in EXACT:
            evaluate.append(n)
            continue
        single = _single(n)
        check = checks.setdefault(single, n)
        if check == n:
            evaluate.append(n)
        else:
            borrowed[n] = (single, check)
    for single in checks:
        if single not in evaluate:
            evaluate.append(single)
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
        gap = abs(checked["value"] - base["value"])
        out[need] = {**base, "accuracy_source": (
            f"{_label(need)} is exact: single's metrics, checked by evaluating "
            f"{_label(check)} (top-1 agreement {checked['top1_agreement']:.4f}, metric "
            f"{gap:.2g} from single's); {base['accuracy_source']}")}
    return out
