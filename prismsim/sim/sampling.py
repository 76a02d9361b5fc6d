"""The latency distribution of one inference: n inferences replayed, each in its own
sampled world (``sim/draws.py``), seeded. Without variability on any device or the link,
every sample is the replay of mean times (``simulate``), to the last digit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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

    def quantile_s(self, q: float) -> float:
        """The latency below which a share ``q`` of the inferences ended (linear
        between order statistics, numpy's default)."""
        return float(np.quantile(self.latency_s, q))

    def summary(self) -> dict[str, float]:
        """Mean, spread and tail of the latency; mean energy."""
        out = {"samples": len(self.latency_s), "latency_mean_s": float(self.latency_s.mean()),
               "latency_std_s": float(self.latency_s.std(ddof=1)) if len(self.latency_s) > 1
               else 0.0}
        out |= {f"latency_p{round(q * 100)}_s": self.quantile_s(q) for q in QUANTILES}
        return out | {"energy_mean_j": float(self.energy_j.mean())}


def _specs(wl: Workload, devices: DeviceSpec | Sequence[DeviceSpec]) -> list[DeviceSpec]:
    specs = [devices] * wl.n_devices if isinstance(devices, DeviceSpec) else list(devices)
    if len(specs) != wl.n_devices:
        raise ValueError(f"the workload has {wl.n_devices} devices, got {len(specs)} specs")
    return specs


def sample_inferences(wl: Workload, devices: DeviceSpec | Sequence[DeviceSpec],
                      link: LinkSpec, n: int, seed: int = 0,
                      host: HostSpec | None = None) -> Samples:
    """``n`` inferences of ``wl``, inference i in the i-th world of ``seed``'s draws."""
    if n < 1:
        raise ValueError(f"samples must be 1 or more, got {n}")
    specs = _specs(wl, devices)
    worlds = draws(wl, specs, link, n, seed)
    latency, energy = np.empty(n), np.empty(n)
    for i, world in enumerate(worlds):
        r = Replay(wl, specs, link, False, host, world).run()
        latency[i], energy[i] = r.latency_s, r.energy_j
    varies = any(f is not None for f in worlds[0].factors) or \
        worlds[0].extra_delay_s is not None
    return Samples(latency, energy, varies)
