"""Adaptive pools: P boards that serve each request either on one board alone or split
across all P, chosen with the queue in view (the follow-up seed's local/distributed
choice, under load).

The performance map is each candidate's one inference on idle boards, simulated on the
pool's own boards and link: its latency and when each board is done with its part. The
pool keeps its waiting requests; whenever a request arrives or a board finishes a part,
it compares, per candidate, the sum of the predicted finishes of the first
``VIEW_PER_BOARD`` x P waiting requests if all of them were served that way: one after
another on all boards from when the last board is free (distributed), or each on the
board free first (local). The head request is served by the best plan if the plan can
start it now (distributed: every board idle; local: a board idle), else it waits for
the next board to finish. One request alone goes distributed when that is faster; a
backlog goes local when P boards serve more requests per second that way. Ties go to
fewer boards (less energy). The request then runs, every message of it, in the same
replay as fixed groups (``serve/engine.py``): the choice is a prediction, what it costs
is simulated. A distributed request starts with every board idle, so, unlike a fixed
group, consecutive requests of the pool never overlap.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from prismsim.serve.engine import (
    Request,
    ServingResult,
    ServingSetup,
    _Job,
    _Serving,
    device_list,
)
from prismsim.sim import simulate
from prismsim.sim.ops import device_ops, shift_keys
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec
from prismsim.workload import Workload

VIEW_PER_BOARD = 8  # the plans look at the first 8 x P waiting requests


@dataclass(frozen=True)
class Candidate:
    """One way to serve a request: ``workload`` (batch 1) on 1 board, or on all P."""

    label: str
    workload: Workload


@dataclass(frozen=True)
class AdaptiveSetup:
    """``pools`` pools of ``boards`` boards, each request served by one candidate."""

    candidates: tuple[Candidate, ...]
    boards: int
    pools: int = 1
    dispatch: str = "round_robin"  # which pool a request joins
    queue_limit: int | None = None  # requests waiting (not yet started) per pool


@dataclass(frozen=True)
class _Entry:
    """A candidate's line of the performance map."""

    candidate: Candidate
    latency_s: float  # request start to its output, on idle boards
    part_s: tuple[float, ...]  # request start to each board's end of its part


@dataclass
class _Part(_Job):
    starter: int = 0  # the board whose start is the request's start


def check_adaptive(setup: AdaptiveSetup) -> None:
    sizes = {c.workload.n_devices for c in setup.candidates}
    if not sizes <= {1, setup.boards} or len(setup.candidates) < 2:
        raise ValueError(f"adaptive needs 2 or more candidates, each on 1 board or on "
                         f"all {setup.boards}; got sizes {sorted(sizes)}")
    if setup.boards not in sizes:
        raise ValueError(f"adaptive needs a candidate on all {setup.boards} boards")


def local_sum_s(free_s: Sequence[float], service_s: float, n: int) -> float:
    """Sum of the finishes of n requests, each on the board free first."""
    heap, total = list(free_s), 0.0
    heapq.heapify(heap)
    for _ in range(n):
        done_s = heapq.heappop(heap) + service_s
        total += done_s
        heapq.heappush(heap, done_s)
    return total


def distributed_sum_s(free_s: Sequence[float], latency_s: float, n: int) -> float:
    """Sum of the finishes of n requests, one after another on all boards."""
    return n * max(free_s) + latency_s * n * (n + 1) / 2


class _Adaptive(_Serving):
    def __init__(self, setup: AdaptiveSetup, specs: Sequence[DeviceSpec], link: LinkSpec,
                 host: HostSpec | None):
        check_adaptive(setup)
        wide = next(c.workload for c in setup.candidates
                    if c.workload.n_devices == setup.boards)
        base = ServingSetup({1: wide}, setup.pools, setup.dispatch, setup.queue_limit,
                            shortcut=False)
        super().__init__(base, specs, link, host)
        self.adaptive = setup
        self.maps = [self._map(pool, link) for pool in range(setup.pools)]
        self.running_until = [0.0] * len(specs)  # predicted end of the running part
        self.busy = [False] * len(specs)  # a part given, not finished
        self.pending: list[deque[Request]] = [deque() for _ in range(setup.pools)]

    def _map(self, pool: int, link: LinkSpec) -> list[_Entry]:
        first = pool * self.n
        out = []
        for c in self.adaptive.candidates:
            specs = list(self.specs[first:first + c.workload.n_devices])
            r = simulate(c.workload, specs, link)
            out.append(_Entry(c, r.latency_s, tuple(d.finish_s for d in r.devices)))
        return out

    def _boards(self, pool: int) -> range:
        return range(pool * self.n, (pool + 1) * self.n)

    def _free_s(self, d: int) -> float:
        """When board d is predicted to be done with its part (now, if idle)."""
        return max(self.env.now, self.running_until[d]) if self.busy[d] else self.env.now

    def _best(self, pool: int) -> _Entry:
        """The candidate whose plan for the waiting requests finishes them soonest."""
        free = [self._free_s(d) for d in self._boards(pool)]
        n = min(len(self.pending[pool]), VIEW_PER_BOARD * self.n)

        def key(e: _Entry) -> tuple[float, int]:
            size = e.candidate.workload.n_devices
            total = (local_sum_s(free, e.latency_s, n) if size == 1
                     else distributed_sum_s(free, e.latency_s, n))
            return total, size
        return min(self.maps[pool], key=key)

    def _schedule(self, pool: int) -> None:
        """Start waiting requests while the best plan can start its head now."""
        queue = self.pending[pool]
        while queue:
            e = self._best(pool)
            idle = [d for d in self._boards(pool) if not self.busy[d]]
            if e.candidate.workload.n_devices == 1 and idle:
                boards = (idle[0],)
            elif len(idle) == self.n:
                boards = tuple(idle)
            else:
                return
            self._give(queue.popleft(), e, boards)

    def admit(self, r: Request) -> None:
        pool = r.group = self.dispatch()
        limit = self.setup.queue_limit
        if limit is not None and len(self.pending[pool]) >= limit:
            r.dropped = True
            return
        self.outstanding[pool] += 1
        self.pending[pool].append(r)
        self._schedule(pool)

    def _give(self, r: Request, e: _Entry, boards: tuple[int, ...]) -> None:
        """The request's parts to its boards (each idle): they start at once."""
        wl, pool = e.candidate.workload, r.group
        r.boards, r.choice = len(boards), e.candidate.label
        output = wl.meta.get("output_device")
        job = _Part([r], len(boards), None if output is None else boards[output], pool,
                    starter=boards[0])
        self.shortcut.active[pool] += 1
        base = self.next_key
        if len(boards) > 1:
            self._number(wl, pool)
            self._keys(job, len(wl.messages))
        for p, d in enumerate(boards):
            self.busy[d], self.running_until[d] = True, self.env.now + e.part_s[p]
            self.inbox[d].put((job, shift_keys(device_ops(wl, p, self.specs[d], True), base)))

    def board(self, d: int) -> Generator[Any, Any, None]:
        while True:
            job, ops = yield self.inbox[d].get()
            self._started(job, d)
            self.blocked_s[d] += self.env.now - self.stats[d].finish_s  # idle, waiting
            yield from self._part(d, ops, job)
            self.busy[d] = False
            self._schedule(job.group)

    def _started(self, job: _Part, d: int) -> None:
        if d == job.starter:
            for r in job.batch:
                r.start_s, r.batch = self.env.now, 1

    def start_devices(self) -> None:
        for d in range(len(self.specs)):
            self.env.process(self.board(d))


def adaptive_replay(setup: AdaptiveSetup, device: DeviceSpec | Sequence[DeviceSpec],
                    link: LinkSpec, host: HostSpec | None = None) -> _Adaptive:
    """The replay that serves a stream on adaptive pools (``open_loop`` or
    ``closed_loop``); ``device``: one spec for all boards, or one per board."""
    return _Adaptive(setup, device_list(device, setup.pools, setup.boards), link, host)


def serve_adaptive(setup: AdaptiveSetup, arrivals_s: Sequence[float],
                   device: DeviceSpec | Sequence[DeviceSpec], link: LinkSpec,
                   host: HostSpec | None = None) -> ServingResult:
    """Serve requests arriving at ``arrivals_s`` on adaptive pools."""
    replay = adaptive_replay(setup, device, link, host)
    return replay.run_stream(lambda out: replay.open_loop(arrivals_s, out))
