"""How this host's speed moves (``prismsim profile-device``): the generic probe stack of
the gauge (``gauge.py``, no model's code) timed back to back for a window (60 s by
default), one torch thread, and its times read as a device's ``SpeedVariability``
(``sim/variability.py``):

- each time over the window's mean is the factor that step ran at;
- its **slow** part is that factor averaged over ``hold_s`` (what holds over a request):
  the quantiles of those averages, over their mean;
- its **fast** part is each time over its own average: their coefficient of variation;
- the slow part's **correlation time** is the lag at which the autocorrelation of the
  averages falls to 1/e (the time over which the host keeps its speed).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from prismsim.profiling.gauge import REFERENCE
from prismsim.profiling.probe_stack import probe_stack
from prismsim.sim.variability import SpeedVariability

WINDOW_S = 60.0  # how long the probe stack is timed
HOLD_S = 0.2  # what holds over a request: the factor averaged over this long
LEVELS = (0.0, 0.1, 0.5, 0.9, 0.99, 1.0)  # the quantile levels a profile keeps


def probe_times_s(window_s: float = WINDOW_S) -> np.ndarray:
    """Seconds of each forward of the gauge's probe stack, back to back for
    ``window_s``, with one torch thread (the caller's restored)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    stack, x = probe_stack(*REFERENCE)
    out: list[float] = []
    try:
        with torch.no_grad():
            stack(x)
            end = time.perf_counter() + window_s
            while (now := time.perf_counter()) < end:
                stack(x)
                out.append(time.perf_counter() - now)
    finally:
        torch.set_num_threads(threads)
    return np.array(out)


def _held(times_s: np.ndarray, hold_s: float) -> np.ndarray:
    """The factors averaged over consecutive blocks of about ``hold_s`` (at least one
    step each): one value a block."""
    factors = times_s / times_s.mean()
    per_block = max(1, round(hold_s / float(times_s.mean())))
    blocks = len(factors) // per_block
    return factors[:blocks * per_block].reshape(blocks, per_block).mean(axis=1)  # [blocks]


def correlation_s(held: np.ndarray, block_s: float) -> float:
    """The lag (seconds) at which the blocks' autocorrelation falls to 1/e, linear
    between the two lags around it; 0 for blocks that do not vary."""
    centred = held - held.mean()
    variance = float(np.dot(centred, centred))
    if variance == 0.0:
        return 0.0
    before = 1.0  # the autocorrelation at lag 0
    for lag in range(1, len(held)):
        now = float(np.dot(centred[:-lag], centred[lag:])) / variance
        if now < math.exp(-1):
            return (lag - 1 + (before - math.exp(-1)) / (before - now)) * block_s
        before = now
    return (len(held) - 1) * block_s


def speed_variability(times_s: np.ndarray, source: str, hold_s: float = HOLD_S
                      ) -> SpeedVariability:
    """The variability of a device whose steps took ``times_s`` back to back."""
    if len(times_s) < 2 or float(times_s.min()) <= 0:
        raise ValueError("speed variability needs two or more positive step times")
    held = _held(times_s, hold_s)
    slow = held / held.mean()
    per_block = len(times_s) // len(held)
    own = times_s[:len(held) * per_block].reshape(len(held), per_block)  # [blocks, steps]
    fast = (own / own.mean(axis=1, keepdims=True)).ravel()
    block_s = per_block * float(times_s.mean())
    quantiles = tuple((q, float(np.quantile(slow, q))) for q in LEVELS)
    return SpeedVariability(source=source, slow=quantiles,
                            slow_correlation_s=correlation_s(held, block_s),
                            fast_cv=float(fast.std() / fast.mean()) if per_block > 1 else 0.0)


def measure_speed_variability(window_s: float = WINDOW_S) -> SpeedVariability:
    """This host's speed variability, from the probe stack timed for ``window_s``."""
    times_s = probe_times_s(window_s)
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    return speed_variability(times_s, f"prismsim profile-device {when}: the gauge's probe "
                             f"stack timed {len(times_s)} times over {window_s:g} s, one "
                             f"torch thread; slow part held over {HOLD_S:g} s")
