"""The SimPy simulator: replays Workloads on modelled devices and network media.
Imports no torch, no models, no strategies."""

from prismsim.sim.engine import simulate
from prismsim.sim.results import DeviceStats, SimResult, Span
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec

__all__ = ["DeviceSpec", "DeviceStats", "HostSpec", "LinkSpec", "SimResult", "Span", "simulate"]
