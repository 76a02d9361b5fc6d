"""What an adaptive group believes each candidate takes on its idle devices, by policy:

- ``nominal``: at the link's nominal rate, simulated once (the seeds' adaptive PRISM with
  a performance map made offline; blind to any change of the link);
- ``estimated``: at the rate the group infers from its own transfers (the bits each copy
  carried over its time on the air, smoothed over the last few seconds), as a real system
  can; while it serves locally it sends nothing and learns nothing, so every
  ``probe_s`` without a transfer it sends a probe of ``PROBE_BYTES`` (which takes its
  airtime like any message);
- ``oracle``: at the rate the link trace has at the moment of the choice (it knows the
  trace, not the future: a drop during the request is still a surprise).

Either of the last two reads a performance map: each candidate's one inference on idle
devices simulated at ``MAP_POINTS`` bandwidths (geometric between the trace's lowest and
highest), its latency and each device's part interpolated in log bandwidth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prismsim.sim import simulate
from prismsim.sim.link_trace import TraceClock
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec
from prismsim.workload import Workload

POLICIES = ("nominal", "estimated", "oracle")
MAP_POINTS = 25  # bandwidths of a performance map (geometric)
MAP_SPAN = 100.0  # without a trace, a map spans nominal / 100 ... nominal x 1.5
HALF_LIFE_S = 2.0  # the estimate: a transfer this long ago counts half as much
PROBE_S = 5.0  # the estimate: a probe after this long without a transfer
PROBE_BYTES = 256 * 1024  # one probe's payload


@dataclass(frozen=True)
class Candidate:
    """One way to serve a request: ``workload`` (batch 1) on 1 device, or on all P."""

    label: str
    workload: Workload


@dataclass(frozen=True)
class IdleRun:
    """A candidate's one inference on a group's idle devices."""

    candidate: Candidate
    latency_s: float  # request start to its output
    part_s: tuple[float, ...]  # request start to each device's end of its part


def idle_run(c: Candidate, specs: Sequence[DeviceSpec], link: LinkSpec,
             host: HostSpec | None = None) -> IdleRun:
    """``c``'s one inference on the first of ``specs`` it needs, over ``link`` (on
    ``host``'s cores, where given)."""
    r = simulate(c.workload, list(specs[:c.workload.n_devices]), link, host=host)
    return IdleRun(c, r.latency_s, tuple(d.finish_s for d in r.devices))


def map_bandwidths_mbps(link: LinkSpec) -> np.ndarray:
    """The bandwidths a map is simulated at: the trace's range (its rate after loss),
    or around the nominal rate."""
    if link.trace is None:
        low, high = link.bandwidth_mbps / MAP_SPAN, link.bandwidth_mbps * 1.5
    else:
        clock = TraceClock(link.trace, link.bandwidth_mbps)
        rates = [s * link.bandwidth_mbps for s in clock.speed]
        low, high = min(r for r in rates if r > 0) / 2, max(rates) * 1.5
    return np.geomspace(low, high, MAP_POINTS)


class PerformanceMap:
    """Each candidate's idle run at every bandwidth of a grid; read at any bandwidth
    by interpolation in log bandwidth (the ends hold beyond the grid)."""

    def __init__(self, candidates: Sequence[Candidate], specs: Sequence[DeviceSpec],
                 link: LinkSpec, host: HostSpec | None = None):
        self.candidates = tuple(candidates)
        self.log_mbps = np.log(map_bandwidths_mbps(link))
        steady = link.model_copy(update={"trace": None})
        runs = [[idle_run(c, specs, steady.model_copy(update={"bandwidth_mbps": float(b)}),
                          host) for b in np.exp(self.log_mbps)] for c in candidates]
        # per candidate: [bandwidths] latencies, [bandwidths, devices] part ends
        self.latency_s = [np.array([r.latency_s for r in rs]) for rs in runs]
        self.part_s = [np.array([r.part_s for r in rs]) for rs in runs]

    def at(self, bandwidth_mbps: float) -> list[IdleRun]:
        """Every candidate's idle run at ``bandwidth_mbps`` (0: the lowest of the map)."""
        out = []
        for c, lat, parts in zip(self.candidates, self.latency_s, self.part_s, strict=True):
            part = tuple(interpolate(self.log_mbps, parts[:, p], bandwidth_mbps)
                         for p in range(parts.shape[1]))
            out.append(IdleRun(c, interpolate(self.log_mbps, lat, bandwidth_mbps), part))
        return out


def interpolate(log_mbps: Sequence[float], values: Sequence[float],
                bandwidth_mbps: float) -> float:
    """A map's ``values`` (one per bandwidth of its grid, ``log_mbps`` their logs) read
    at ``bandwidth_mbps``: linear in log bandwidth, the ends held beyond the grid (0:
    the lowest)."""
    x = math.log(bandwidth_mbps) if bandwidth_mbps > 0 else -math.inf
    return float(np.interp(x, log_mbps, values))


def fastest(latency_s: Sequence[float], sizes: Sequence[int]) -> int:
    """The candidate a group whose devices are all idle serves one request with (what
    ``pools.AdaptiveReplay`` plans for a queue of one): the lowest latency, a tie to
    fewer devices; its index."""
    return min(range(len(sizes)), key=lambda i: (latency_s[i], sizes[i]))


class GoodputEstimate:
    """The link's rate as a group infers it from its own transfers: the bits of the
    copies it sent over their seconds on the air, each weighted by 2^(-age / half
    life), as the link's bandwidth (over its goodput share)."""

    def __init__(self, initial_mbps: float, goodput: float, half_life_s: float = HALF_LIFE_S):
        self.goodput, self.half_life_s = goodput, half_life_s
        self.bits, self.air_s, self.at_s = initial_mbps * 1e6 * goodput, 1.0, 0.0

    def observe(self, payload_bytes: int, air_s: float, now_s: float) -> None:
        """A copy of ``payload_bytes`` that was ``air_s`` on the air, learnt at ``now_s``."""
        if air_s <= 0:
            return
        keep = 2.0 ** (-(now_s - self.at_s) / self.half_life_s)
        self.bits = self.bits * keep + payload_bytes * 8
        self.air_s = self.air_s * keep + air_s
        self.at_s = now_s

    @property
    def bandwidth_mbps(self) -> float:
        return self.bits / self.air_s / self.goodput / 1e6


class Belief:
    """What one adaptive group believes each candidate takes now, by its policy."""

    def __init__(self, policy: str, candidates: Sequence[Candidate],
                 specs: Sequence[DeviceSpec], link: LinkSpec, host: HostSpec | None = None):
        self.policy = policy
        steady = link.model_copy(update={"trace": None})
        self.nominal = [idle_run(c, specs, steady, host) for c in candidates]
        self.map = (None if policy == "nominal"
                    else PerformanceMap(candidates, specs, link, host))
        self.clock = (TraceClock(link.trace, link.bandwidth_mbps)
                      if link.trace is not None else None)
        self.estimate = GoodputEstimate(link.bandwidth_mbps, link.goodput)
        self.nominal_mbps = link.bandwidth_mbps
        self.probed_s = -math.inf  # when the last probe went out

    def runs(self, now_s: float) -> list[IdleRun]:
        """Each candidate's idle run as the policy predicts it at ``now_s``."""
        if self.map is None:
            return self.nominal
        return self.map.at(self.bandwidth_mbps(now_s))

    def bandwidth_mbps(self, now_s: float) -> float:
        """The link's rate the policy acts on at ``now_s``."""
        if self.policy == "oracle":
            return (self.clock.bandwidth_mbps(now_s) if self.clock is not None
                    else self.nominal_mbps)
        if self.policy == "estimated":
            return self.estimate.bandwidth_mbps
        return self.nominal_mbps

    def wants_probe(self, now_s: float) -> bool:
        """Whether the estimate is stale enough for a probe."""
        last_s = max(self.estimate.at_s, self.probed_s)
        return self.policy == "estimated" and now_s - last_s >= PROBE_S

