"""A device context that times each compute step (wall clock against a start time): the
GLOO worker's, and the profiler's when it times a program's steps one by one."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prismsim.strategies.program import DeviceContext, Tag


@dataclass
class TimedContext(DeviceContext):
    """Records each compute step's (label, layer, start, end) against ``t0``."""

    t0: float = 0.0
    steps: list[tuple[str, int | None, float, float]] = field(default_factory=list)

    def compute(self, tag: Tag, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        out = fn(*args)
        self.steps.append((str(tag), tag.layer, start - self.t0, time.perf_counter() - self.t0))
        return out
