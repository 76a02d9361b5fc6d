"""This machine's CPU time as the kernel counts it (``/proc/stat``): what was busy, and
what the hypervisor stole for other virtual machines, between two readings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

USER, NICE, SYSTEM, IDLE, IOWAIT, IRQ, SOFTIRQ, STEAL = range(8)  # /proc/stat columns
BUSY = (USER, NICE, SYSTEM, IRQ, SOFTIRQ)  # not idle, not stolen


@dataclass(frozen=True)
class CpuTimes:
    """Every core's CPU seconds since boot, by column (zeros where there is no /proc)."""

    seconds: tuple[float, ...]

    @classmethod
    def now(cls) -> CpuTimes:
        try:
            line = Path("/proc/stat").read_text().split("\n")[0]
            ticks = [int(x) for x in line.split()[1:9]]
        except (OSError, ValueError):
            ticks = []
        hz = os.sysconf("SC_CLK_TCK")
        return cls(tuple(t / hz for t in ticks + [0] * (8 - len(ticks))))

    def busy_s(self) -> float:
        return sum(self.seconds[i] for i in BUSY)

    def total_s(self) -> float:
        return sum(self.seconds)


def busy_since(before: CpuTimes) -> float:
    """CPU seconds the host was busy since ``before`` (every core, not stolen time)."""
    return CpuTimes.now().busy_s() - before.busy_s()


def stolen_share_since(before: CpuTimes) -> float:
    """The share of all CPU time since ``before`` that other virtual machines took."""
    after = CpuTimes.now()
    total = after.total_s() - before.total_s()
    return (after.seconds[STEAL] - before.seconds[STEAL]) / total if total > 0 else 0.0
