"""Device processes sharing the cores of one host: processor sharing in SimPy.

A job is CPU work measured in seconds of one process running alone. While k jobs are
runnable on a host of C cores, each progresses at ``min(1, C / k) x corun(k)`` of its
alone speed: the cores are shared equally, and ``corun(k)`` (measured: the per-process
rate with k processes computing at once over what the core share alone predicts) is
what memory bandwidth and caches take on top. A process blocked on a receive has no job,
so it frees its share; GLOO's per-message work is a job too (sender: its fixed and
per-byte part before its program goes on, as a send's writing into the socket runs in
the sending thread; receiver: the fixed part before the receive returns, the per-byte
part while the data is on the air).

A job may be capped: the host's own work for a transmission (an emulated network's
kernel path: veth, shaping, forwarding) can go no faster than the packets come, so it
asks at most ``cap`` cores; a device process under a CPU quota asks at most its share of
a core. The cores are then shared by water-filling: capped jobs get their cap where it
is below the equal share, the rest share what is left equally; the co-run factor
applies to the processes' jobs alone (the network's own work is not a process). Rates
change only when a job starts or ends, so the host keeps one pending event: the next
completion at the current rates.

The host's speed may change over time (``speed_steps``: another tenant, a clock that
drops): from each step on, every job runs that factor slower. The host also keeps how
long its cores have all been taken by processes
(``saturated_s``): a message sent after such a stretch arrives later (``sim/replay.py``).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import simpy

FINISHED_S = 1e-12  # remaining work below this is done (float rounding)


class _Job:
    __slots__ = ("cap", "done", "process", "remaining_s", "speed")

    def __init__(self, remaining_s: float, done: simpy.Event, cap: float | None,
                 process: bool):
        self.remaining_s, self.done, self.cap, self.speed = remaining_s, done, cap, 0.0
        self.process = process


def water_fill(caps: Sequence[float | None], cores: float) -> list[float]:
    """Cores each job gets: an equal share, no job more than its cap (None: one core);
    what a capped job leaves goes to the others."""
    wants = [1.0 if c is None else min(c, cores) for c in caps]
    order = sorted(range(len(wants)), key=wants.__getitem__)
    out, left = [0.0] * len(wants), float(cores)
    for i, j in enumerate(order):
        out[j] = min(wants[j], left / (len(order) - i))
        left -= out[j]
    return out


class SharedHost:
    """The cores of one host, shared by the jobs runnable on it."""

    def __init__(self, env: simpy.Environment, cores: int, corun: Sequence[float] = (),
                 speed_steps: Sequence[tuple[float, float]] = ()):
        self.env, self.cores, self.corun = env, cores, tuple(corun)
        self.slow = 1.0  # every job's time factor of the moment (speed_steps)
        if speed_steps:
            env.process(self._speed_changes(speed_steps))
        self.jobs: list[_Job] = []
        self.since = 0.0  # time the jobs' remaining work was last brought up to date
        self.version = 0  # completion events of older rates are stale
        self._saturated_s = 0.0  # time so far with at least ``cores`` processes' jobs

    def speed(self, k: int) -> float:
        """Each process's speed with k processes' jobs runnable, over its speed alone."""
        factor = self.corun[min(k, len(self.corun)) - 1] if self.corun else 1.0
        return min(1.0, self.cores / k) * factor

    def run(self, seconds: float, cap: float | None = None, process: bool | None = None
            ) -> simpy.Event:
        """Start a job of ``seconds`` of work alone (at most ``cap`` cores at a time);
        the event fires when it is done. ``process``: a device process's work (the
        co-run factor applies); None: it is unless it has a cap (the network's work)."""
        done = self.env.event()
        if seconds <= FINISHED_S:
            return done.succeed()
        self._progress()
        self.jobs.append(_Job(seconds, done, cap, cap is None if process is None else process))
        self._next()
        return done

    @property
    def saturated_s(self) -> float:
        """Seconds, up to now, during which at least ``cores`` processes had a job (every
        core taken by a device process)."""
        self._progress()
        return self._saturated_s

    def _speed_changes(self, steps: Sequence[tuple[float, float]]
                       ) -> Generator[Any, Any, None]:
        """From each step's time on, every job runs its factor slower."""
        for at_s, factor in steps:
            if at_s > self.env.now:
                yield self.env.timeout(at_s - self.env.now)
            self._progress()
            self.slow = factor
            self._next()

    def _progress(self) -> None:
        """Bring every job's remaining work up to now at the rate it ran since."""
        now = self.env.now
        if now > self.since:
            for job in self.jobs:
                job.remaining_s -= (now - self.since) * job.speed
            if sum(job.process for job in self.jobs) >= self.cores:
                self._saturated_s += now - self.since
        self.since = now

    def _rates(self) -> None:
        """Each job's speed at the current set of jobs."""
        processes = sum(job.process for job in self.jobs)
        factor = self.speed(processes) / min(1.0, self.cores / processes) if processes else 1.0
        shares = water_fill([job.cap for job in self.jobs], self.cores)
        for job, share in zip(self.jobs, shares, strict=True):
            job.speed = share * (factor if job.process else 1.0) / self.slow

    def _next(self) -> None:
        """Schedule the next completion at the current rates (older ones go stale)."""
        self.version += 1
        if self.jobs:
            self._rates()
            wait_s = min(max(0.0, job.remaining_s) / job.speed for job in self.jobs)
            wait = self.env.timeout(wait_s)
            wait.callbacks.append(lambda _, version=self.version: self._complete(version))

    def _complete(self, version: int) -> None:
        if version != self.version:
            return
        self._progress()
        finished = [job for job in self.jobs if job.remaining_s <= FINISHED_S]
        self.jobs = [job for job in self.jobs if job.remaining_s > FINISHED_S]
        for job in finished:
            job.done.succeed()
        self._next()
