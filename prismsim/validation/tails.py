"""The tail of one inference's latency, measured and predicted.

Measured: the master's p95 over a point's timed rounds (meaningful from TAIL_RUNS rounds
on: ``runs: 60`` in the validation file). Predicted, held out as the mean is: the same
workload, host and link replayed TAIL_SAMPLES times, each inference in its own world
drawn from what was measured of how things move, never from the strategy's runs: the
host's speed (the profile's ``speed_variability``, its probe stack timed back to back)
and the link's delay (the group's ping-pong: each small round trip's excess over the
fastest, halved, ``MessageCosts.delay_us``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prismsim.profiling.host_profile import HostProfile
from prismsim.profiling.message_costs import MessageCosts
from prismsim.sim.sampling import sample_inferences
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec
from prismsim.sim.variability import LinkVariability
from prismsim.workload import Workload

TAIL_Q = 0.95  # the quantile compared
TAIL_RUNS = 60  # timed rounds a point needs before its measured tail is judged
TAIL_SAMPLES = 200  # sampled inferences behind a predicted tail
TAIL_LIMIT_PCT = 15.0  # a predicted tail this close to the measured one counts as met


def measured_tail_ms(walls_s: list[float]) -> float:
    """The master's p95 latency over the timed rounds, ms (linear between order
    statistics)."""
    return float(np.quantile(walls_s, TAIL_Q)) * 1e3


def varying(device: DeviceSpec, link: LinkSpec, profile: HostProfile, costs: MessageCosts
            ) -> tuple[DeviceSpec, LinkSpec] | None:
    """The device and link with what was measured of how they move; None where
    nothing was (an older profile and ping-pong)."""
    if profile.speed_variability is None and not costs.delay_us:
        return None
    moving = device.model_copy(update={"variability": profile.speed_variability})
    if costs.delay_us:
        link = link.model_copy(update={"variability": LinkVariability(
            source="the testbed's ping-pong", delay_us=tuple(costs.delay_us))})
    return moving, link


def predicted_tail_ms(wl: Workload, device: DeviceSpec, host: HostSpec, link: LinkSpec,
                      profile: HostProfile, costs: MessageCosts) -> float | None:
    """The predicted p95 latency, ms (None: nothing measured of how things move)."""
    worlds = varying(device, link, profile, costs)
    if worlds is None:
        return None
    samples = sample_inferences(wl, worlds[0], worlds[1], TAIL_SAMPLES, host=host)
    return samples.quantile_s(TAIL_Q) * 1e3


def tail_summary(table: pd.DataFrame) -> str | None:
    """One line: at how many distributed points the predicted p95 is within
    TAIL_LIMIT_PCT of the measured (None: no point has both)."""
    rows = table[(table["devices"] > 1)].dropna(subset=["p95_error_pct"]) \
        if "p95_error_pct" in table else table.iloc[:0]
    if rows.empty:
        return None
    within = int((rows["p95_error_pct"].abs() <= TAIL_LIMIT_PCT).sum())
    return (f"tail: predicted p95 within {TAIL_LIMIT_PCT:g} % of measured at {within} of "
            f"{len(rows)} distributed points ({100 * within / len(rows):.0f} %; mean signed "
            f"{rows['p95_error_pct'].mean():+.1f} %)")
