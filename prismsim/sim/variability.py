"""A world that moves: how a device's speed and a link's delay vary from one moment to the
next, as distributions the replay draws from (``sim/sampling.py``).

A device's compute step takes its mean time (operator table or FLOP rate) times two
factors: a **slow** one that holds over a request (the clock, the temperature, work that
shares the board: drawn once a request and device from its quantiles) and a **fast** one
of each step of its own (caches, interrupts: lognormal with mean 1). A link adds to each
message's one-way delay an **extra delay** drawn from its quantiles (queueing in the
network, the receiver's scheduling), which does not occupy the medium.

A distribution is given by its quantiles, ``[[q, value], ...]`` with q increasing in
[0, 1] and values never decreasing (as a quantile function never decreases): values are
linear in q between two given ones, and the end values hold beyond them (the first one
for all q below its own, the last for all above). One pair is a value that never varies.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from pydantic import Field, NonNegativeFloat, field_validator

from prismsim.userfiles import StrictModel

Quantiles = tuple[tuple[float, float], ...]  # ((q, value), ...)


def check_quantiles(points: Quantiles) -> Quantiles:
    """The quantiles of a distribution that has its mass in [0, 1] of q, or ValueError."""
    if not points:
        raise ValueError("a distribution needs at least one [q, value] pair")
    qs = [q for q, _ in points]
    if any(not 0.0 <= q <= 1.0 for q in qs):
        raise ValueError("quantile levels must lie in [0, 1]")
    if any(a >= b for a, b in itertools.pairwise(qs)):
        raise ValueError("quantile levels must increase")
    values = [v for _, v in points]
    if any(a > b for a, b in itertools.pairwise(values)):
        raise ValueError("values must not decrease as q grows (a quantile function)")
    return points


def quantile_mean(points: Quantiles) -> float:
    """The distribution's mean: the end values' tails plus each segment's average."""
    (q0, v0), (q1, v1) = points[0], points[-1]
    inner = sum((qb - qa) * (va + vb) / 2 for (qa, va), (qb, vb) in itertools.pairwise(points))
    return q0 * v0 + inner + (1.0 - q1) * v1


def quantile_draws(points: Quantiles, uniforms: np.ndarray) -> np.ndarray:
    """Values at the given uniform draws in [0, 1) (inverse transform sampling)."""
    qs, values = zip(*points, strict=True)
    return np.interp(uniforms, qs, values)


def lognormal_sigma(cv: float) -> float:
    """The log-space deviation of a lognormal whose coefficient of variation is ``cv``."""
    return math.sqrt(math.log1p(cv * cv))


class SpeedVariability(StrictModel):
    """How a device's compute speed moves, as factors on each step's mean time."""

    source: str = ""  # where the numbers come from (profile-device, a paper; "assumed")
    # the slow factor, one a request (x the step's mean time), by its quantiles
    slow: Quantiles = ((0.5, 1.0),)
    # how long a slow factor holds, seconds (serving: requests this close share it);
    # 0: each request draws its own
    slow_correlation_s: NonNegativeFloat = 0.0
    # the fast factor of each step: lognormal with mean 1 and this coefficient of
    # variation; 0: none
    fast_cv: NonNegativeFloat = 0.0

    @field_validator("slow")
    @classmethod
    def _slow(cls, points: Quantiles) -> Quantiles:
        check_quantiles(points)
        if points[0][1] <= 0:
            raise ValueError("a slow factor must be above 0 (a step that takes no time)")
        return points

    @property
    def varies(self) -> bool:
        """Whether a draw can differ from the mean times (a factor other than 1)."""
        return self.fast_cv > 0 or any(factor != 1.0 for _, factor in self.slow)


class LinkVariability(StrictModel):
    """How a link's one-way delay moves: an extra delay on each message's data."""

    source: str = ""  # where the numbers come from (a ping-pong, a measurement; "assumed")
    # each message's extra one-way delay, microseconds, by its quantiles
    delay_us: Quantiles = Field(default=((0.5, 0.0),))

    @field_validator("delay_us")
    @classmethod
    def _delay(cls, points: Quantiles) -> Quantiles:
        check_quantiles(points)
        if points[0][1] < 0:
            raise ValueError("an extra delay cannot be negative")
        return points

    @property
    def varies(self) -> bool:
        """Whether a draw can add to a message's delay."""
        return self.delay_us[-1][1] > 0
