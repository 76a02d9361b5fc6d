"""What a simulation gives: per-device statistics, the timeline, energy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from prismsim.sim.specs import DeviceSpec

LANES = ("compute", "staging", "wait", "tx")  # what a device is doing during a span


class Span(NamedTuple):
    """One interval of a device's timeline (a tuple, so it travels as JSON lists)."""

    device: int
    lane: str  # one of LANES
    label: str  # the task's tag as text
    start_s: float
    end_s: float
    layer: int | None = None  # the block the task belongs to


@dataclass
class DeviceStats:
    compute_s: float = 0.0
    staging_s: float = 0.0
    wait_s: float = 0.0  # blocked in a receive
    finish_s: float = 0.0
    tx_s: float = 0.0
    rx_s: float = 0.0
    bytes_sent: int = 0
    bytes_received: int = 0
    energy_j: float = 0.0

    @property
    def comm_s(self) -> float:
        """Time the program is held by communication: staging and waiting to receive."""
        return self.staging_s + self.wait_s


@dataclass
class SimResult:
    # when the device holding the output has it (the workload's ``output_device``; a
    # workload that names none: when every device is done)
    latency_s: float
    devices: list[DeviceStats]
    bytes_on_air: int
    spans: list[Span] = field(default_factory=list)
    # when every device is done (devices may go on after the output is ready: work of
    # the last block no one needs); energy counts up to it
    makespan_s: float | None = None
    air_s: float = 0.0  # every transmission's time on the medium, summed (all hops)
    # why the inference never ended (a device left and never returned: latency inf), in
    # one line; None: it ended
    lost: str | None = None

    def __post_init__(self) -> None:
        if self.makespan_s is None:
            self.makespan_s = self.latency_s

    @property
    def energy_j(self) -> float:
        return sum(d.energy_j for d in self.devices)

    def idle_s(self, device: int) -> float:
        d = self.devices[device]
        assert self.makespan_s is not None
        return self.makespan_s - d.compute_s - d.comm_s


def energy_j(spec: DeviceSpec, latency_s: float, compute_s: float, tx_s: float,
             rx_s: float) -> float:
    """Idle power for the whole inference plus each active state's extra power for the
    time spent in it; with states that do not overlap this is sum(power x time per state)."""
    return (spec.idle_w * latency_s + (spec.compute_w - spec.idle_w) * compute_s
            + (spec.tx_w - spec.idle_w) * tx_s + (spec.rx_w - spec.idle_w) * rx_s)
