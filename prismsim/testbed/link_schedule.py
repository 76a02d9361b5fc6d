"""A link trace replayed by the testbed: the shapers' rate changed on schedule while the
workers serve, and the master's choice of candidate by the step it starts a request in.

The schedule starts when the master writes its start (its clock after the barrier that
begins the arrivals, on the host's monotonic clock every process shares) to a file; each
step is then set at its time from that start, every link at once (``Testbed.set_rate``).
The steps come unrolled (``sim.link_trace.trace_steps``). The delay stays as the testbed
was built: a trace's latency and loss columns are the simulator's alone (the delay line
restarts to change its delay).
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prismsim.testbed.network import Testbed

MIN_STEP_S = 0.5  # steps shorter than this cannot be set in time (a tc change takes ms)
POLL_S = 0.005  # how often the schedule looks for the master's start


@dataclass(frozen=True)
class AdaptiveChoice:
    """The master's policy under a replayed trace: each request, when it starts, on the
    candidate the step of the trace it starts in names (``validation/dynamic.py`` names
    them: the simulator's ``oracle``, its performance map read at each step's rate)."""

    steps: list[tuple[float, float, int]]  # (from s after the start, Mbit/s, candidate)

    def __call__(self, at_s: float) -> tuple[int, float]:
        """(the candidate to start a request with ``at_s`` after the start, the rate)."""
        i = max(0, bisect.bisect_right([s[0] for s in self.steps], at_s) - 1)
        return self.steps[i][2], self.steps[i][1]

    def rate_changes(self) -> list[tuple[float, float]]:
        """(s after the start, Mbit/s) of each step, for the shapers."""
        return [(at_s, mbps) for at_s, mbps, _ in self.steps]

    def as_job(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_job(cls, job: dict[str, Any]) -> AdaptiveChoice:
        return cls([(float(t), float(m), int(i)) for t, m, i in job["steps"]])


class RateSchedule:
    """A thread that sets ``changes`` ((s after the start, Mbit/s), as
    ``AdaptiveChoice.rate_changes`` gives them) on ``tb`` once the master has written
    its start to ``started``; use as a context manager around the run. A failure is
    kept in ``error`` for the runner to report."""

    def __init__(self, tb: Testbed, changes: list[tuple[float, float]], started: Path):
        self.tb, self.changes, self.started = tb, changes, started
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RateSchedule:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            t0 = self._start()
            for at_s, mbps in self.changes:
                if t0 is None or self._stop.wait(max(0.0, t0 + at_s - time.perf_counter())):
                    return
                if mbps * 1e6 != self.tb.rate_bits_per_s:
                    self.tb.set_rate(mbps * 1e6)
        except Exception as err:  # reported by the runner after the run
            self.error = err

    def _start(self) -> float | None:
        """The master's start (None: the run ended first)."""
        while not self._stop.is_set():
            text = self.started.read_text() if self.started.exists() else ""
            if text.endswith("\n"):
                return float(text)
            time.sleep(POLL_S)
        return None
