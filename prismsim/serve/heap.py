"""The serving replay without SimPy, for the runs that spend most time in it: an open loop
of requests on fixed groups in a sampled world (``ServingSetup.seed``), one request a
batch, no shared host, no device events, no re-split, no rendezvous link.

The model is the SimPy replay's (``serve/groups.py`` on ``sim/replay.py``), operation by
operation and with the same arithmetic; only the bookkeeping of time differs. A device
runs its operations inline as far as it can without knowing what others do after the
present moment: compute steps and staging copies advance its own clock, a receive whose
messages all have known arrival times takes the later of them. It goes onto one heap
(time, then order of scheduling) only where the order between devices matters: a send
(the medium books transmissions in the order they are handed over), a receive still
waiting for a message not yet sent, and the end of its part of a request. Most compute
steps thus cost no event at all, and no generator is resumed.

Times and totals equal the SimPy replay's to the last digit wherever no two devices act
at exactly the same moment (``tests/test_serve_heap.py``); at such a tie each engine
takes them in the order it met them, which may differ. So it runs only where something
varies (a device's speed, the link's delay, frame errors): there exact ties do not
happen, and a world that stands still keeps the SimPy replay's figures exactly.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Sequence

from prismsim.serve.groups import Job, ServingReplay
from prismsim.serve.requests import Request, ServingResult, ServingSetup
from prismsim.sim.mac_retries import MacRetries
from prismsim.sim.ops import (
    Compute,
    Op,
    Receive,
    SendMessage,
    compute_steps,
    device_ops,
    held_s,
)
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec
from prismsim.workload import MASTER, Message, Workload


def heap_serves(setup: ServingSetup, specs: Sequence[DeviceSpec], link: LinkSpec,
                host: HostSpec | None, events: Sequence[object]) -> bool:
    """Whether the heap replay serves this open loop (else SimPy does)."""
    varies = any(s.variability is not None and s.variability.varies for s in specs) or (
        link.variability is not None and link.variability.varies) or (
        link.medium == "shared" and MacRetries.of(link) is not None)
    return (setup.seed is not None and varies and host is None and not events
            and setup.resplit is None and setup.max_batch == 1 and not link.rendezvous)


class _Waiting:
    """A receive waiting for messages not yet sent (the device may not even have got to
    it yet): once all are known, the device resumes at the last arrival."""

    __slots__ = ("device", "engine", "last_s", "unknown")

    def __init__(self, engine: HeapReplay, unknown: int, last_s: float, device: int):
        self.engine, self.unknown, self.last_s, self.device = engine, unknown, last_s, device

    def known(self, arrival_s: float) -> None:
        self.last_s = max(self.last_s, arrival_s)
        self.unknown -= 1
        if self.unknown == 0:
            self.engine.resume(self.device, self.last_s)


class _Mail:
    """One request's messages: their templates (by message id), its first running key,
    each copy's arrival and the receives waiting for one, by (message id, device)."""

    __slots__ = ("arrival", "base", "msgs", "waiting")

    def __init__(self, msgs: list[Message], base: int):
        self.msgs, self.base = msgs, base
        self.arrival: dict[tuple[int, int], float] = {}
        self.waiting: dict[tuple[int, int], _Waiting] = {}


class _Part:
    """A device's part of one request in progress."""

    __slots__ = ("before_s", "held", "job", "mail", "ops", "pc", "staged", "t",
                 "wait_from")

    def __init__(self, job: Job, ops: list[Op], held: list[float] | None, mail: _Mail,
                 now: float):
        self.job, self.ops, self.held, self.mail = job, ops, held, mail
        self.pc, self.t, self.before_s = 0, now, 0.0  # next operation, its clock
        self.wait_from: float | None = None  # waiting on a receive since (resumes there)
        self.staged = False  # the send at ``pc`` has had its staging copy


class HeapReplay(ServingReplay):
    """``ServingReplay`` for an open loop, its time kept on one heap (``run_open``)."""

    def __init__(self, setup: ServingSetup, specs: Sequence[DeviceSpec], link: LinkSpec):
        super().__init__(setup, specs, link, None)
        self.now = 0.0
        self._heap: list[tuple[float, int, int]] = []  # (time, order, device)
        self._order = itertools.count()
        self._parts: list[_Part | None] = [None] * len(specs)
        self._todo: list[deque[_Part]] = [deque() for _ in specs]  # parts handed, not begun
        self._waiting_requests: list[deque[Request]] = [deque() for _ in
                                                        range(setup.groups)]
        self._steps: dict[tuple[int, int], int] = {}  # (workload id, device) -> steps

    def schedule(self, at_s: float, device: int) -> None:
        """Device ``device`` goes on at ``at_s``."""
        heapq.heappush(self._heap, (at_s, next(self._order), device))

    def run_open(self, arrivals_s: Sequence[float]) -> ServingResult:
        """Serve requests arriving at ``arrivals_s`` (increasing seconds)."""
        requests: list[Request] = []
        heap, at = self._heap, 0.0
        for i, due in enumerate(arrivals_s):
            while heap and heap[0][0] < due:
                self._pop()
            if due > at:  # as the SimPy loop's clock gets there
                at = at + (due - at)
            self.now = at
            requests.append(Request(i, at))
            self._admit(requests[-1])
        while heap:
            self._pop()
        return self.result(requests)

    def _pop(self) -> None:
        self.now, _, d = heapq.heappop(self._heap)
        self._advance(d)

    # requests and parts

    def _admit(self, r: Request) -> None:
        if not self.take_in(r):
            return
        self._waiting_requests[r.group].append(r)
        if self._parts[r.group * self.n] is None:  # the master is free: it takes it
            self._start_job(r.group)

    def queued(self, group: int) -> int:
        return len(self._waiting_requests[group])

    def _start_job(self, group: int) -> None:
        """The master takes the group's next request now; every device gets its part."""
        r, now = self._waiting_requests[group].popleft(), self.now
        r.start_s, r.batch = now, 1
        wl, g0 = self.workloads(group)[1], group * self.n
        job = self._job(wl, group, [r])
        # its messages' keys numbered as the SimPy replay numbers them
        mail = _Mail(self.template(wl, self.group_devices(group)), self.next_key)
        self.next_key += len(wl.messages)
        for p in [*range(1, self.n), MASTER]:  # drawn in the SimPy replay's order
            d = g0 + p
            self._todo[d].append(_Part(job, device_ops(wl, p, self.specs[d], True),
                                       self._held(wl, p, d), mail, now))
        for d in range(g0, g0 + self.n):  # the master first, as there
            if self._parts[d] is None:
                self._begin(d)

    def _held(self, wl: Workload, p: int, d: int) -> list[float] | None:
        """Each operation's drawn compute seconds for device d's part (None: mean)."""
        key = (id(wl), p)
        steps = self._steps.get(key)
        if steps is None:
            steps = self._steps[key] = compute_steps(wl, p)
        assert self.streams is not None
        factors = self.streams.part_factors(d, steps, self.now)
        return None if factors is None else held_s(wl, p, self.specs[d], True, factors)

    def _begin(self, d: int) -> None:
        """Device d, free, begins its next part now."""
        part = self._todo[d].popleft()
        part.t, part.before_s = self.now, self.stats[d].compute_s
        self._parts[d] = part
        self._advance(d)

    def _end(self, d: int, part: _Part) -> None:
        """Device d ran its last operation of its part, now."""
        job, stats = part.job, self.stats[d]
        job.active_j += self.extra_w[d][0] * (stats.compute_s - part.before_s)
        self._parts[d] = None
        master = d == job.group * self.n
        if not master:
            self.idle_since[d] = self.now + self.medium.latency_s
        self._finished(job, d, self.now)
        if self._todo[d]:
            self._begin(d)
        elif master and self._waiting_requests[job.group]:
            self._start_job(job.group)

    # one device's operations

    def _advance(self, d: int) -> None:
        """Device d goes on from where it stopped, as far as it can without the future."""
        part = self._parts[d]
        assert part is not None
        ops, n_ops, now = part.ops, len(part.ops), self.now
        while part.pc < n_ops:
            op = ops[part.pc]
            kind = type(op)
            if kind is Compute:
                seconds = op.seconds if part.held is None else part.held[part.pc]
                self.stats[d].compute_s += seconds
                part.t = part.t + seconds
            elif kind is Receive:
                if not self._receive(d, part, op):
                    return
            elif kind is SendMessage:
                if not part.staged and op.stage_s:
                    self.stats[d].staging_s += op.stage_s
                    part.t = part.t + op.stage_s
                part.staged = True
                if part.t > now:  # the medium books in the order of handing over
                    self.schedule(part.t, d)
                    return
                self._send_now(part, op.message, now)
                part.staged = False
            part.pc += 1
        if part.t > now:
            self.schedule(part.t, d)
        else:
            self._end(d, part)

    def _send_now(self, part: _Part, m: int, now: float) -> None:
        """Message ``m`` of ``part``'s request handed to the medium now: the SimPy
        replay's ``transmit`` (its copies delivered, its airtime's energy charged to its
        request) in one function, as no shared host or device clock can come between."""
        mail = part.mail
        msg, key = mail.msgs[m], mail.base + m
        before_j = self._air_j(msg)
        assert self.streams is not None
        extra_s = self.streams.delay_s(key)
        arrival, waiting = mail.arrival, mail.waiting
        for dst, at in self.medium.send(msg, now, key):
            at = at + extra_s
            arrival[(m, dst)] = at
            wake = waiting.pop((m, dst), None)
            if wake is not None:  # the receiver already waits
                wake.known(at)
        part.job.active_j += self._air_j(msg) - before_j

    def _receive(self, d: int, part: _Part, op: Receive) -> bool:
        """A receive at the device's clock: True once its messages are in (and staged),
        False if the device waits for a message not yet sent (``resume`` goes on)."""
        stats, start = self.stats[d], part.t
        if part.wait_from is not None:  # resumed: every message is in by ``part.t``
            start, part.wait_from = part.wait_from, None
        else:
            last, unknown, arrival = start, [], part.mail.arrival
            for m in op.messages:
                at = arrival.get((m, d))
                if at is None:
                    unknown.append((m, d))
                elif at > last:
                    last = at
            if unknown:
                part.wait_from = start
                waiting = _Waiting(self, len(unknown), last, d)
                for key in unknown:
                    part.mail.waiting[key] = waiting
                return False
            if last > start:
                part.t = start + (last - start)
        stats.wait_s += part.t - start
        self.blocked_s[d] += part.t - start
        if op.stage_s:
            stats.staging_s += op.stage_s
            part.t = part.t + op.stage_s
        return True

    def resume(self, d: int, last_s: float) -> None:
        """Every message device d's receive waits for is known now, the last arriving
        at ``last_s``: it goes on when the SimPy replay's would. If they were all known
        before the device got to the receive, that is the later of its clock and
        ``last_s``; else a timeout made now to ``last_s`` (``sim/wake.py``)."""
        part, now = self._parts[d], self.now
        assert part is not None and part.wait_from is not None
        start = part.wait_from
        if now < start:
            part.t = start + (last_s - start) if last_s > start else start
        else:
            part.t = now + max(0.0, last_s - now)
        if part.t > now:  # all it does from here lies ahead of now: at once
            self._advance(d)
        else:
            self.schedule(part.t, d)
