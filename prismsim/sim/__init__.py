"""The SimPy simulator: replays Workloads on modelled devices and network media.
Imports no torch, no models, no strategies."""

from prismsim.sim.engine import simulate
from prismsim.sim.results import DeviceStats, SimResult, Span
from prismsim.sim.specs import DeviceSpec, LinkSpec

__all__ = ["DeviceSpec", "DeviceStats", "LinkSpec", "SimResult", "Span", "simulate"]
