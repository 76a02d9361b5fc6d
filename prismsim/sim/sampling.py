"""The latency distribution of one inference: n inferences replayed, each in its own
sampled world (``sim/draws.py``), seeded. Without variability on any device or the link,
every sample is the replay of mean times (``simulate``), to the last digit. With device
events, an inference lost (a device left for good before its part was done) has latency
inf: a quantile that falls among the lost ones is inf."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prismsim.sim.device_events import DeviceEvent
from prismsim.sim.draws import draws
from prismsim.sim.replay import Replay
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec
from prismsim.workload import Workload

QUANTILES = (0.5, 0.95, 0.99)  # the tail a summary gives


@dataclass(frozen=True)
class Samples:
    """n sampled inferences: each one's latency and energy."""

    latency_s: np.ndarray  # [n], when the output was there
    energy_j: np.ndarray  # [n]
    varies: bool  # whether any device or the link had variability to draw from

    @property
    def lost(self) -> int:
        """How many inferences never ended (latency inf)."""
        return int(np.isinf(self.latency_s).sum())

    def quantile_s(self, q: float) -> float:
        """The latency below which a share ``q`` of the inferences ended (linear
        between order statistics, numpy's default; inf where a lost one takes part)."""
        lost = np.isinf(self.latency_s)
        if not lost.any():
            return float(np.quantile(self.latency_s, q))
        stand_in = np.where(lost, np.finfo(float).max, self.latency_s)
        value = float(np.quantile(stand_in, q))
        return value if not lost.all() and value <= self.latency_s[~lost].max() else math.inf

    def summary(self) -> dict[str, float]:
        """Mean, spread and tail of the latency; mean energy."""
        lat = self.latency_s
        spread = 0.0 if len(lat) < 2 else math.inf if self.lost else float(lat.std(ddof=1))
        out = {"samples": len(lat), "latency_mean_s": float(lat.mean()),
               "latency_std_s": spread}
        out |= {f"latency_p{round(q * 100)}_s": self.quantile_s(q) for q in QUANTILES}
        return out | {"energy_mean_j": float(self.energy_j.mean())}


def _specs(wl: Workload, devices: DeviceSpec | Sequence[DeviceSpec]) -> list[DeviceSpec]:
    specs = [devices] * wl.n_devices if isinstance(devices, DeviceSpec) else list(devices)
    if len(specs) != wl.n_devices:
        raise ValueError(f"the workload has {wl.n_devices} devices, got {len(specs)} specs")
    return specs


def sample_inferences(wl: Workload, devices: DeviceSpec | Sequence[DeviceSpec],
                      link: LinkSpec, n: int, seed: int = 0,
                      host: HostSpec | None = None, events: Sequence[DeviceEvent] = ()
                      ) -> Samples:
    """``n`` inferences of ``wl``, inference i in the i-th world of ``seed``'s draws;
    ``events``: devices that slow down or leave, in every world."""
    if n < 1:
        raise ValueError(f"samples must be 1 or more, got {n}")
    specs = _specs(wl, devices)
    worlds = draws(wl, specs, link, n, seed)
    latency, energy = np.empty(n), np.empty(n)
    for i, world in enumerate(worlds):
        r = Replay(wl, specs, link, False, host, world, events).run()
        latency[i], energy[i] = r.latency_s, r.energy_j
    return Samples(latency, energy, worlds[0].varies)
