"""A device process under a CPU quota on a shared host, as Linux's CFS bandwidth control
runs one: in each period of ``period_s`` (periods start at multiples of it) the process
may use ``share x period_s`` of CPU; it runs as any other process until that is used,
then waits for the next period. A step shorter than its quota runs at full speed; a
long one at ``share`` of it on average. With ``period_s`` 0 the quota is a smooth cap:
the process never runs faster than ``share`` of a core.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import simpy

from prismsim.sim.host import FINISHED_S, SharedHost


class QuotaClock:
    """The quota of one process: the period it last ran in and the CPU it used there."""

    def __init__(self, share: float, period_s: float):
        self.share, self.period_s = share, period_s
        self.period, self.used_s = -1, 0.0

    def run(self, env: simpy.Environment, host: SharedHost, work_s: float
            ) -> Generator[Any, Any, None]:
        """``work_s`` of the process's work on ``host`` under the quota."""
        if self.period_s <= 0:
            yield host.run(work_s, cap=self.share, process=True)
            return
        budget_s = self.share * self.period_s
        while work_s > FINISHED_S:
            self._to_period(env.now)
            left_s = budget_s - self.used_s
            if left_s <= FINISHED_S:  # throttled: until the next period starts
                yield env.timeout((self.period + 1) * self.period_s - env.now)
                continue
            chunk_s = min(work_s, left_s)
            yield host.run(chunk_s, process=True)
            work_s -= chunk_s
            self.used_s += chunk_s

    def _to_period(self, now_s: float) -> None:
        period = math.floor(now_s / self.period_s + 1e-9)
        if period != self.period:
            self.period, self.used_s = period, 0.0
