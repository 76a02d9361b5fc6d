"""What a process pays for having waited: on this kind of (virtual) host the first
compute step after a process was blocked for a while runs slower than the same step
right after another (the idle vCPU comes back at a lower clock, its caches serve
someone else meanwhile). ``profile-device`` measures it on the generic probe stack
(``probe_stack.py``, no model's code): the step's time after sleeping each gap, less
its time back to back, in interleaved rounds. The simulator's host model adds it to the
first compute step after each wait (``HostSpec.wake_us_by_idle_ms``).
"""

from __future__ import annotations

import statistics
import time

import torch

from prismsim.profiling.probe_stack import probe_stack

IDLE_GAPS_MS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)  # how long the process was blocked
PROBES = ((256, 64, 1), (256, 64, 4))  # width, tokens, blocks: ~1.5 and ~6 ms a step
ROUNDS = 25  # interleaved rounds over every gap; the median counts


def _round(step: object, out: dict[float, list[float]]) -> None:
    """One round: the step back to back, then after each gap."""
    for gap_ms in (0.0, *IDLE_GAPS_MS):
        if gap_ms:
            time.sleep(gap_ms / 1e3)
        start = time.perf_counter()
        step()  # type: ignore[operator]
        out[gap_ms].append(time.perf_counter() - start)


def _extra_us(width: int, tokens: int, blocks: int, rounds: int) -> dict[float, float]:
    """Per gap: the probe step's median time after it, less its median back to back."""
    stack, x = probe_stack(width, tokens, blocks)
    out: dict[float, list[float]] = {g: [] for g in (0.0, *IDLE_GAPS_MS)}
    with torch.no_grad():
        for _ in range(3):
            stack(x)
        for _ in range(rounds):
            _round(lambda: stack(x), out)
    base = statistics.median(out[0.0])
    return {g: (statistics.median(out[g]) - base) * 1e6 for g in IDLE_GAPS_MS}


def wake_penalties(rounds: int = ROUNDS) -> list[list[float]]:
    """[[idle ms, extra us], ...]: the median over the probes of each gap's extra time
    (never below 0), with one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        extras = [_extra_us(*probe, rounds) for probe in PROBES]
    finally:
        torch.set_num_threads(threads)
    return [[g, max(0.0, statistics.median(e[g] for e in extras))] for g in IDLE_GAPS_MS]
