"""A host's speed variability read from step times made by hand: two speed levels (the
slow part's quantiles), steps alternating around each level (the fast part's CV), and
an AR(1) series of known correlation time."""

import math

import numpy as np
import pytest

from prismsim.profiling.speed_variability import (
    correlation_s,
    measure_speed_variability,
    speed_variability,
)
from prismsim.sim.variability import quantile_mean


def _two_levels(fast: float = 0.0) -> np.ndarray:
    """10 blocks of 200 steps: 5 at 1.0 ms, then 5 at 1.5 ms (mean 1.25 ms); within a
    block, steps alternate (1 - fast) and (1 + fast) times the level."""
    wobble = np.tile([1 - fast, 1 + fast], 100)  # [200]
    return np.concatenate([level * 1e-3 * wobble for level in [1.0] * 5 + [1.5] * 5])


def test_two_speed_levels_give_the_slow_quantiles_and_no_fast_part():
    v = speed_variability(_two_levels(), "by hand", hold_s=0.25)  # 200 steps a block
    # blocks at 1.0 / 1.25 = 0.8 and 1.5 / 1.25 = 1.2 of the mean, five each
    assert [q for q, _ in v.slow] == [0.0, 0.1, 0.5, 0.9, 0.99, 1.0]
    assert [f for _, f in v.slow] == pytest.approx([0.8, 0.8, 1.0, 1.2, 1.2, 1.2])
    assert v.fast_cv == pytest.approx(0.0, abs=1e-12)
    assert quantile_mean(v.slow) == pytest.approx(1.0, abs=0.02)
    # blocks centred -0.2 x 5 then +0.2 x 5: autocorrelation 7/10, 4/10, 1/10 at lags 1,
    # 2, 3 (a pair within a level adds, a pair across subtracts); 1/e between 2 and 3
    e = math.exp(-1)
    assert v.slow_correlation_s == pytest.approx((2 + (0.4 - e) / (0.4 - 0.1)) * 0.25)


def test_steps_alternating_around_their_level_are_the_fast_part():
    v = speed_variability(_two_levels(fast=0.1), "by hand", hold_s=0.25)
    assert v.fast_cv == pytest.approx(0.1)  # +-10 % around each block's own mean
    assert [f for _, f in v.slow] == pytest.approx([0.8, 0.8, 1.0, 1.2, 1.2, 1.2])


def test_an_ar1_series_has_its_correlation_time():
    """log factors x_k = phi x_(k-1) + noise: autocorrelation phi^k, 1/e at
    k = -1 / ln(phi) = 20 steps of 1 ms."""
    rng, phi, n = np.random.default_rng(0), math.exp(-1 / 20), 40_000
    noise = rng.normal(0.0, 0.05, n)
    x = np.zeros(n)
    for k in range(1, n):
        x[k] = phi * x[k - 1] + noise[k]
    times_s = 1e-3 * np.exp(x)
    held = times_s / times_s.mean()
    assert correlation_s(held, 1e-3) == pytest.approx(0.020, rel=0.15)


def test_a_host_that_does_not_vary_has_no_correlation_time():
    assert correlation_s(np.ones(50), 0.2) == 0.0
    with pytest.raises(ValueError, match="two or more positive"):
        speed_variability(np.array([1e-3]), "one step")


def test_this_hosts_variability_is_measured_around_its_mean():
    v = measure_speed_variability(window_s=0.5)
    assert v.source.startswith("prismsim profile-device ")
    factors = [f for _, f in v.slow]
    assert factors == sorted(factors) and factors[0] > 0
    assert quantile_mean(v.slow) == pytest.approx(1.0, rel=0.05)
