"""Serving in a world that moves: each request's service drawn from the device's
variability. A single server's mean wait against Pollaczek-Khinchine (M/G/1), each
request's own service time against Lindley's recursion, and the slow factor's
correlation time from independent requests to one factor for all."""

from __future__ import annotations

import numpy as np
import pytest

from prismsim.serve.arrivals import arrivals_s
from prismsim.serve.engine import serve
from prismsim.serve.requests import ServingSetup
from prismsim.serve.stats import mean_ci, request_table, run_summary
from prismsim.sim import DeviceSpec, LinkSpec
from prismsim.sim.variability import SpeedVariability
from prismsim.workload import Task, Workload

SERVICE_S = 0.01  # the mean service: 1e7 FLOPs at 1 GFLOP/s
SERVER = Workload({}, [[Task("compute", "c", 10_000_000)]])
LINK = LinkSpec(bandwidth_mbps=1e9)


def _device(correlation_s: float = 0.0) -> DeviceSpec:
    """Each request's service uniform on [0.1, 1.9] x the mean (mean 1, variance
    1.8^2 / 12 = 0.27 of the mean squared)."""
    return DeviceSpec(peak_gflops=1.0, efficiency=1.0, variability=SpeedVariability(
        slow=((0.0, 0.1), (1.0, 1.9)), slow_correlation_s=correlation_s))


def test_mg1_mean_wait_is_pollaczek_khinchine():
    """W = lambda E[S^2] / (2 (1 - rho)): 50 x 1.27e-4 / 1.0 = 6.35 ms at rho = 0.5,
    against 5.0 ms had every request taken the mean (M/D/1); 20 replications."""
    rate, rho = 50.0, 50.0 * SERVICE_S
    theory_s = rate * 1.27 * SERVICE_S**2 / (2 * (1 - rho))
    deterministic_s = rho * SERVICE_S / (2 * (1 - rho))
    waits = []
    for seed in range(20):
        setup = ServingSetup({1: SERVER}, seed=seed)
        res = serve(setup, arrivals_s("poisson", rate, 20_000, seed), _device(), LINK)
        waits.append(run_summary(res, request_table(res, warmup=1000))["queue_wait_mean_s"])
    mean, half = mean_ci(waits)
    assert abs(mean - theory_s) <= half and half < 0.1 * theory_s
    assert mean - half > deterministic_s


def test_each_request_is_served_for_its_own_drawn_time_in_turn():
    arrivals = arrivals_s("poisson", 80.0, 3000, 2)
    res = serve(ServingSetup({1: SERVER}, seed=4), arrivals, _device(), LINK)
    table = request_table(res, warmup=0)
    service = (table["finish_s"] - table["start_s"]).to_numpy()
    assert service.min() >= 0.1 * SERVICE_S - 1e-12 and service.max() <= 1.9 * SERVICE_S
    assert service.mean() == pytest.approx(SERVICE_S, rel=3 * 0.52 / 3000**0.5)
    # Lindley: W(n+1) = max(0, W(n) + S(n) - gap(n)) with each request's own S(n)
    waits, expected = table["queue_wait_s"].to_numpy(), np.zeros(len(arrivals))
    for i in range(1, len(arrivals)):
        gap = arrivals[i] - arrivals[i - 1]
        expected[i] = max(0.0, expected[i - 1] + service[i - 1] - gap)
    assert waits == pytest.approx(expected, abs=1e-9)
    again = serve(ServingSetup({1: SERVER}, seed=4), arrivals, _device(), LINK)
    assert [r.finish_s for r in again.requests] == [r.finish_s for r in res.requests]


def test_a_slow_factor_that_holds_longer_than_the_run_is_one_for_every_request():
    arrivals = arrivals_s("poisson", 20.0, 200, 3)
    held = serve(ServingSetup({1: SERVER}, seed=1), arrivals, _device(1e9), LINK)
    apart = serve(ServingSetup({1: SERVER}, seed=1), arrivals, _device(0.0), LINK)

    def services(res) -> np.ndarray:
        return np.array([r.finish_s - r.start_s for r in res.requests])
    assert np.ptp(services(held)) < 1e-3 * SERVICE_S  # one draw, barely moving
    assert np.ptp(services(apart)) > 0.5 * SERVICE_S  # a draw a request
    assert services(held)[0] == pytest.approx(services(apart)[0])  # the same first draw
