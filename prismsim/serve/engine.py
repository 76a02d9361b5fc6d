"""Serve a stream of requests on groups of simulated devices: every message of every
request replayed by the same SimPy engine as one inference (``sim/engine.py``).

G groups of P devices share one network medium (a WiFi channel is shared by every group
on it; switched ports are not). A dispatcher sends each arriving request to a group
(round robin, or the group with the fewest outstanding requests); a group serves its
queue first come first served. Its master (device 0 of the group) takes the next request
(up to ``max_batch`` of them, waiting at most ``max_wait_s`` for more after the first)
as soon as its own part of the previous one is done, and every other device of the group
starts its part once it is done with its previous one: consecutive requests overlap
exactly where the per-device programs leave a device idle. A request is done when the
group's output device (the master, for traced programs) has run its last task of it.

Each request's messages are numbered apart (a running key per message), so the engine's
rendezvous, posting and delivery bookkeeping work across requests unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import simpy

from prismsim.serve.shortcut import IdleShortcut
from prismsim.sim.engine import _Replay
from prismsim.sim.ops import Op, PostReceives, Receive, device_ops, shift_keys
from prismsim.sim.results import DeviceStats, SimResult, energy_j
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec
from prismsim.workload import MASTER, Message, Workload

DISPATCH = ("round_robin", "shortest_queue")  # how a request picks its group


@dataclass
class Request:
    index: int  # in arrival order
    arrival_s: float
    group: int = -1
    start_s: float | None = None  # the master took it (None: dropped, or never served)
    finish_s: float | None = None  # its output is ready
    batch: int = 0  # requests served together with it (itself included)
    dropped: bool = False  # refused: the group's queue was full
    boards: int = 0  # devices that ran it
    choice: str = ""  # adaptive pools: the candidate that served it
    energy_j: float = math.nan  # its share of its batch's active energy (above idle)


@dataclass
class ServingResult:
    requests: list[Request]
    devices: list[DeviceStats]  # G x P of them, group by group
    end_s: float  # when the last device finished its last task
    bytes_on_air: int
    channel_busy_s: float | None = None  # one shared channel: its time carrying frames


@dataclass(frozen=True)
class ServingSetup:
    """How the groups serve: ``workloads[b]`` is one request batch of b inputs."""

    workloads: dict[int, Workload]
    groups: int = 1
    dispatch: str = "round_robin"
    queue_limit: int | None = None  # requests waiting (not yet taken) per group; None: any
    max_batch: int = 1
    max_wait_s: float = 0.0  # dynamic batching: longest the master waits for a fuller batch
    # a request alone on idle devices takes the one-inference timeline (serve/shortcut.py:
    # exactly the same times); False: every request replayed task by task
    shortcut: bool = True


@dataclass
class _Job:
    """One batch in service on a group."""

    batch: list[Request]
    left: int  # devices still running their part of it
    output: int | None  # the device whose finish is the requests' finish; None: the last
    group: int
    keys: range = range(0)  # its messages' running keys
    active_j: float = 0.0  # energy above idle of its devices' compute, sends and receives


class _Serving(_Replay):
    def __init__(self, setup: ServingSetup, specs: Sequence[DeviceSpec], link: LinkSpec,
                 host: HostSpec | None):
        self.setup, self.n = setup, setup.workloads[1].n_devices
        super().__init__(setup.workloads[1], specs, link, False, host)
        self.msgs: dict[int, Message] = {}  # running key -> the message
        self.templates: dict[tuple[int, int], list[Message]] = {}  # (workload, group)
        self.next_key = 0
        self.queues = [simpy.Store(self.env) for _ in range(setup.groups)]
        self.inbox = [simpy.Store(self.env) for _ in specs]  # jobs for devices but masters
        self.outstanding = [0] * setup.groups  # admitted and not done, per group
        self.idle_since = [0.0] * len(specs)
        self.turn = 0
        self.waiters: dict[int, simpy.Event] = {}  # closed loop: request -> its client
        self.shortcut = IdleShortcut(specs, self.n, link, setup.groups,
                                     setup.shortcut and host is None)
        self.key_job: dict[int, _Job] = {}  # running key -> the job its message is of
        self.extra_w = [(s.compute_w - s.idle_w, s.tx_w - s.idle_w, s.rx_w - s.idle_w)
                        for s in specs]  # each device's power above idle per state

    def _message(self, key: int) -> Message:
        return self.msgs[key]

    def _job_ops(self, wl: Workload, group: int, p: int) -> list[Op]:
        """Device p's operations for one request, with the request's message keys."""
        return shift_keys(device_ops(wl, p, self.specs[group * self.n + p], True),
                          self.next_key)

    def _number(self, wl: Workload, group: int) -> None:
        """The request's messages under fresh keys, between this group's devices."""
        key = (id(wl), group)
        if key not in self.templates:
            shift = group * self.n
            self.templates[key] = [replace(m, src=m.src + shift,
                                           dst=tuple(d + shift for d in m.dst))
                                   for m in wl.messages]
        base, msgs = self.next_key, self.msgs
        for m in self.templates[key]:
            msgs[base + m.id] = m

    def _start(self, group: int, batch: list[Request]) -> tuple[list[Op], _Job]:
        """Hand one batch to the group's devices; the master's operations back."""
        wl = self.setup.workloads[len(batch)]
        jobs = [self._job_ops(wl, group, p) for p in range(self.n)]
        self._number(wl, group)
        job = self._job(group, batch)
        self._keys(job, len(wl.messages))
        for p in range(1, self.n):
            self.inbox[group * self.n + p].put((job, jobs[p]))
        return jobs[MASTER], job

    def _job(self, group: int, batch: list[Request]) -> _Job:
        output = self.setup.workloads[len(batch)].meta.get("output_device")
        self.shortcut.active[group] += 1
        for r in batch:
            r.boards = self.n
        return _Job(batch, self.n, None if output is None else group * self.n + output,
                    group)

    def _keys(self, job: _Job, n_messages: int) -> None:
        """The next ``n_messages`` running keys are the job's."""
        job.keys = range(self.next_key, self.next_key + n_messages)
        self.next_key += n_messages
        for k in job.keys:
            self.key_job[k] = job

    def _run_part(self, d: int, ops: list[Op], job: _Job) -> Generator[Any, Any, None]:
        """Device d runs its part of ``job``; its compute energy is the job's."""
        before_s = self.stats[d].compute_s
        yield from self.walk(d, ops)
        job.active_j += self.extra_w[d][0] * (self.stats[d].compute_s - before_s)

    def _air_j(self, msg: Message) -> float:
        """Energy above idle the sender and the receivers of ``msg`` spent on the air."""
        med, w = self.medium, self.extra_w
        return (w[msg.src][1] * med.tx_s[msg.src]
                + sum(w[d][2] * med.rx_s[d] for d in msg.dst))

    def _send(self, msg: Message, key: int) -> None:
        if self.rendezvous:  # the copies are booked by _book
            super()._send(msg, key)
            return
        before_j = self._air_j(msg)
        super()._send(msg, key)
        self.key_job[key].active_j += self._air_j(msg) - before_j

    def _book(self, msg: Message, key: int, dst: int, at: float) -> None:
        before_j = self._air_j(msg)
        super()._book(msg, key, dst, at)
        self.key_job[key].active_j += self._air_j(msg) - before_j

    def _batch(self, group: int) -> Generator[Any, Any, list[Request]]:
        """The next batch of the group's queue (waits for its first request)."""
        queue, setup = self.queues[group], self.setup
        batch = [(yield queue.get())]
        deadline = self.env.now + setup.max_wait_s
        while len(batch) < setup.max_batch:
            if queue.items:
                batch.append((yield queue.get()))
                continue
            left = deadline - self.env.now
            if left <= 0:
                break
            get = queue.get()
            yield get | self.env.timeout(left)
            if not get.triggered:
                get.cancel()
                break
            batch.append(get.value)
        return batch

    def master(self, group: int) -> Generator[Any, Any, None]:
        g0 = group * self.n
        while True:
            batch = yield from self._batch(group)
            for r in batch:
                r.start_s, r.batch = self.env.now, len(batch)
            timeline = self.shortcut.applies(
                self.setup.workloads[len(batch)], group, len(batch), self.env.now,
                self.idle_since, len(self.queues[group].items))
            if timeline is not None:
                yield from self._as_one_inference(group, batch, timeline)
                continue
            ops, job = self._start(group, batch)
            self.blocked_s[g0] += self.env.now - self.stats[g0].finish_s  # idle, waiting
            yield from self._run_part(g0, ops, job)
            self._finished(job, g0)

    def _as_one_inference(self, group: int, batch: list[Request], r: SimResult
                          ) -> Generator[Any, Any, None]:
        """The batch runs the one-inference timeline ``r`` from now (serve/shortcut.py):
        each device's totals grow by its part, each finishes when it would."""
        g0, now, med = group * self.n, self.env.now, self.medium
        job = self._job(group, batch)
        for p, dev in enumerate(r.devices):
            d, st = g0 + p, self.stats[g0 + p]
            w = self.extra_w[d]
            job.active_j += w[0] * dev.compute_s + w[1] * dev.tx_s + w[2] * dev.rx_s
            st.compute_s += dev.compute_s
            st.staging_s += dev.staging_s
            st.wait_s += dev.wait_s
            med.tx_s[d] += dev.tx_s
            med.rx_s[d] += dev.rx_s
            med.bytes_sent[d] += dev.bytes_sent
            med.bytes_received[d] += dev.bytes_received
            if p != MASTER:
                self.idle_since[d] = now + dev.finish_s + med.latency_s
                done = self.env.timeout(dev.finish_s)
                done.callbacks.append(lambda _, d=d: self._finished(job, d))
        med.bytes_on_air += r.bytes_on_air
        med.air_s += r.air_s
        yield self.env.timeout(r.devices[MASTER].finish_s)
        self._finished(job, g0)

    def worker(self, d: int) -> Generator[Any, Any, None]:
        while True:
            job, ops = yield self.inbox[d].get()
            yield from self._part(d, ops, job)

    def _part(self, d: int, ops: list[Op], job: _Job) -> Generator[Any, Any, None]:
        """Device d, handed its part of ``job``, runs it (a first receive was posted
        when it became idle) and is done with it."""
        first = next((op for op in ops if isinstance(op, Receive | PostReceives)), None)
        if self.rendezvous and first is ops[0] and first is not None:
            self._posted_early(d, first.messages)
        yield from self._run_part(d, ops, job)
        self.idle_since[d] = self.env.now + self.medium.latency_s
        self._finished(job, d)

    def _posted_early(self, d: int, ids: tuple[int, ...]) -> None:
        """Rendezvous: device d posted its first receive of a request when it was done
        with its previous one (the sender knows a latency later; at once for the first)."""
        ready = self.idle_since[d]
        for m in ids:
            self.posted[(m, d)] = ready
            if m in self.handed:  # sent while d was still busy
                self._book(self._message(m), m, d, max(ready, self.handed[m]))

    def _finished(self, job: _Job, d: int) -> None:
        """Device d ran its last task of ``job``: the requests are done if it holds the
        output (or, for a workload naming no output device, once every device is)."""
        self.stats[d].finish_s = self.env.now
        job.left -= 1
        if job.left == 0:
            self.shortcut.active[job.group] -= 1
            for k in job.keys:
                del self.key_job[k]
            for r in job.batch:
                r.energy_j = job.active_j / len(job.batch)
        if d == job.output or (job.output is None and job.left == 0):
            for r in job.batch:
                r.finish_s = self.env.now
                self.outstanding[r.group] -= 1
                waiter = self.waiters.pop(r.index, None)
                if waiter is not None:
                    waiter.succeed()

    def dispatch(self) -> int:
        """The group the next request joins: the fewest outstanding, or in turn."""
        groups = self.setup.groups
        if self.setup.dispatch == "shortest_queue":
            return min(range(groups), key=lambda g: (self.outstanding[g], g))
        group, self.turn = self.turn, (self.turn + 1) % groups
        return group

    def admit(self, r: Request) -> None:
        """The dispatcher: the request joins a group's queue, or is dropped."""
        r.group = self.dispatch()
        limit = self.setup.queue_limit
        if limit is not None and len(self.queues[r.group].items) >= limit:
            r.dropped = True
            return
        self.outstanding[r.group] += 1
        self.queues[r.group].put(r)

    def open_loop(self, arrivals_s: Sequence[float], out: list[Request]
                  ) -> Generator[Any, Any, None]:
        for i, at in enumerate(arrivals_s):
            if at > self.env.now:
                yield self.env.timeout(at - self.env.now)
            out.append(Request(i, self.env.now))
            self.shortcut.next_arrival_s = (arrivals_s[i + 1] if i + 1 < len(arrivals_s)
                                            else math.inf)
            self.admit(out[-1])

    def closed_loop(self, clients: int, think: Callable[[], float], n_requests: int,
                    out: list[Request]) -> Generator[Any, Any, None]:
        """``clients`` users, each sending its next request ``think()`` seconds after
        its previous one was answered (or refused), until ``n_requests`` were sent."""
        self.shortcut.usable = False  # the next arrival is not known in advance
        for _ in range(clients):
            self.env.process(self._client(think, n_requests, out))
        yield self.env.timeout(0)

    def _client(self, think: Callable[[], float], n_requests: int, out: list[Request]
                ) -> Generator[Any, Any, None]:
        while True:
            yield self.env.timeout(think())
            if len(out) >= n_requests:
                return
            r = Request(len(out), self.env.now)
            out.append(r)
            self.admit(r)
            if not r.dropped:
                self.waiters[r.index] = self.env.event()
                yield self.waiters[r.index]

    def start_devices(self) -> None:
        for g in range(self.setup.groups):
            self.env.process(self.master(g))
            for p in range(1, self.n):
                self.env.process(self.worker(g * self.n + p))

    def run_stream(self, source: Callable[[list[Request]], Generator[Any, Any, None]]
                   ) -> ServingResult:
        self.start_devices()
        requests: list[Request] = []
        self.env.process(source(requests))
        self.env.run()
        end = max((s.finish_s for s in self.stats), default=0.0)
        med = self.medium
        for p, (st, spec) in enumerate(zip(self.stats, self.specs, strict=True)):
            st.tx_s, st.rx_s = med.tx_s[p], med.rx_s[p]
            st.bytes_sent, st.bytes_received = med.bytes_sent[p], med.bytes_received[p]
            st.energy_j = energy_j(spec, end, st.compute_s, st.tx_s, st.rx_s)
        shared = self.medium.link.medium == "shared"
        return ServingResult(requests, self.stats, end, med.bytes_on_air,
                             med.air_s if shared else None)


def check_setup(setup: ServingSetup) -> None:
    if setup.dispatch not in DISPATCH:
        raise ValueError(f"dispatch must be one of {', '.join(DISPATCH)}, "
                         f"got {setup.dispatch!r}")
    missing = [b for b in range(1, setup.max_batch + 1) if b not in setup.workloads]
    if missing:
        raise ValueError(f"no workload for batch sizes {missing}")


def _specs(setup: ServingSetup, device: DeviceSpec | Sequence[DeviceSpec]
           ) -> list[DeviceSpec]:
    check_setup(setup)
    return device_list(device, setup.groups, setup.workloads[1].n_devices)


def device_list(device: DeviceSpec | Sequence[DeviceSpec], groups: int, per_group: int
                ) -> list[DeviceSpec]:
    """One spec per device: ``device`` for all, or the given one per device."""
    n = groups * per_group
    specs = [device] * n if isinstance(device, DeviceSpec) else list(device)
    if len(specs) != n:
        raise ValueError(f"{groups} groups of {per_group} devices need {n} specs, "
                         f"got {len(specs)}")
    return specs


def serving_replay(setup: ServingSetup, device: DeviceSpec | Sequence[DeviceSpec],
                   link: LinkSpec, host: HostSpec | None = None) -> _Serving:
    """The replay that serves a stream (``open_loop`` or ``closed_loop``). ``device``:
    one spec for every device, or one per device of every group (G x P, group by group)."""
    return _Serving(setup, _specs(setup, device), link, host)


def serve(setup: ServingSetup, arrivals_s: Sequence[float],
          device: DeviceSpec | Sequence[DeviceSpec], link: LinkSpec,
          host: HostSpec | None = None) -> ServingResult:
    """Serve requests arriving at ``arrivals_s`` (increasing seconds)."""
    replay = serving_replay(setup, device, link, host)
    return replay.run_stream(lambda out: replay.open_loop(arrivals_s, out))


def serve_closed(setup: ServingSetup, clients: int, think: Callable[[], float],
                 n_requests: int, device: DeviceSpec | Sequence[DeviceSpec],
                 link: LinkSpec, host: HostSpec | None = None) -> ServingResult:
    """Serve ``clients`` users in a closed loop (``think()`` draws a think time)."""
    replay = serving_replay(setup, device, link, host)
    return replay.run_stream(lambda out: replay.closed_loop(clients, think, n_requests, out))
