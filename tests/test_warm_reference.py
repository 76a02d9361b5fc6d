"""What is timed warm while profiling is taken against the warm reference, and the warm
probes are timed in interleaved passes: worked by hand with fake clocks."""

from __future__ import annotations

import pytest

from prismsim.profiling import operators
from prismsim.profiling.block_probe import interleaved_medians


def test_a_slow_spell_in_one_pass_is_outvoted():
    """Two probes, three passes in turn (a, b, a, b, a, b); the second pass falls in a
    slow spell (1.9 and 3.6 where the others read about 1 and 2): each median is the
    reading of a quiet pass."""
    order: list[str] = []

    def timer(name: str, readings: list[float]):
        left = iter(readings)

        def read() -> list[float]:
            order.append(name)
            return [next(left)]
        return read

    medians = interleaved_medians([timer("a", [1.0, 1.9, 1.1]), timer("b", [2.0, 3.6, 2.2])],
                                  passes=3)
    assert medians == [1.1, 2.2]
    assert order == ["a", "b"] * 3


class _Reads:
    """A gauge that always reads ``seconds``."""

    def __init__(self, seconds: float):
        self.read_s = seconds

    def seconds(self, batches: int = 1) -> float:
        return self.read_s


def test_warm_products_are_timed_against_the_warm_reference(monkeypatch):
    """The cold reference reads 2 ms, the warm one 0.5 ms. A warm product of 1 us is
    0.002 warm references; a cold one of 6 us, 0.003 cold references; every pass alike,
    and each gauge read once before the passes and once after each chunk of calls."""
    monkeypatch.setattr(operators, "Gauge", lambda: _Reads(2e-3))
    monkeypatch.setattr(operators, "WarmGauge", lambda: _Reads(0.5e-3))
    monkeypatch.setattr(operators, "_reps", lambda fn: 1)
    monkeypatch.setattr(operators, "_batch_s", lambda fn, reps: fn())
    calls = {("warm", 1, 2, 2): lambda: 1e-6, (1, 2, 2): lambda: 6e-6}
    passes, readings, warm_readings = operators.time_calls(calls, rounds=2)
    assert passes[("warm", 1, 2, 2)] == pytest.approx([2e-3, 2e-3])
    assert passes[(1, 2, 2)] == pytest.approx([3e-3, 3e-3])
    assert readings == [2e-3] * 3 and warm_readings == [0.5e-3] * 3
