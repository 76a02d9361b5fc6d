"""Device processes sharing the cores of one host: processor sharing in SimPy.

A job is CPU work measured in seconds of one process running alone. While k jobs are
runnable on a host of C cores, each progresses at ``min(1, C / k) x corun(k)`` of its
alone speed: the cores are shared equally, and ``corun(k)`` (measured: the per-process
rate with k processes computing at once over what the core share alone predicts) is
what memory bandwidth and caches take on top. A process blocked on a receive has no job,
so it frees its share; GLOO's per-message work is a job too (sender: in the background,
receiver: before the receive returns). Rates change only when a job starts or ends, so
the host keeps one pending event: the next completion at the current rates.
"""

from __future__ import annotations

from collections.abc import Sequence

import simpy

FINISHED_S = 1e-12  # remaining work below this is done (float rounding)


class _Job:
    __slots__ = ("done", "remaining_s")

    def __init__(self, remaining_s: float, done: simpy.Event):
        self.remaining_s, self.done = remaining_s, done


class SharedHost:
    """The cores of one host, shared by the jobs runnable on it."""

    def __init__(self, env: simpy.Environment, cores: int, corun: Sequence[float] = ()):
        self.env, self.cores, self.corun = env, cores, tuple(corun)
        self.jobs: list[_Job] = []
        self.since = 0.0  # time the jobs' remaining work was last brought up to date
        self.version = 0  # completion events of older rates are stale

    def speed(self, k: int) -> float:
        """Each job's speed with k runnable, over its speed alone."""
        factor = self.corun[min(k, len(self.corun)) - 1] if self.corun else 1.0
        return min(1.0, self.cores / k) * factor

    def run(self, seconds: float) -> simpy.Event:
        """Start a job of ``seconds`` of work alone; the event fires when it is done."""
        done = self.env.event()
        if seconds <= FINISHED_S:
            return done.succeed()
        self._progress()
        self.jobs.append(_Job(seconds, done))
        self._next()
        return done

    def _progress(self) -> None:
        """Bring every job's remaining work up to now at the rate they ran since."""
        now = self.env.now
        if self.jobs and now > self.since:
            done_s = (now - self.since) * self.speed(len(self.jobs))
            for job in self.jobs:
                job.remaining_s -= done_s
        self.since = now

    def _next(self) -> None:
        """Schedule the next completion at the current rates (older ones go stale)."""
        self.version += 1
        if self.jobs:
            first = min(job.remaining_s for job in self.jobs)
            wait = self.env.timeout(max(0.0, first) / self.speed(len(self.jobs)))
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
