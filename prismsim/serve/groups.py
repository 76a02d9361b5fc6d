"""The serving replay: requests on groups of devices, every message of every request
replayed by the replay of one inference (``sim/replay.py``), extended through its hooks.

A group serves its queue first come first served. Its master (device 0 of the group)
takes the next request (up to ``max_batch`` of them, waiting at most ``max_wait_s`` for
more after the first) as soon as its own part of the previous one is done, and every
other device of the group starts its part once it is done with its previous one:
consecutive requests overlap exactly where the per-device programs leave a device idle.
A request is done when the group's output device (the master, for traced programs) has
run its last task of it.

Each request's messages are numbered apart (a running key per message), so the replay's
rendezvous, posting and delivery bookkeeping work across requests unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import simpy

from prismsim.serve.requests import Request, ServingResult, ServingSetup
from prismsim.serve.resplit import Resplitter
from prismsim.serve.shortcut import IdleShortcut
from prismsim.sim.device_events import DeviceEvent
from prismsim.sim.draws import Streams
from prismsim.sim.ops import Op, compute_steps, device_ops, shift_keys, varied_ops
from prismsim.sim.replay import DeviceGoneError, Replay
from prismsim.sim.results import SimResult
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec
from prismsim.workload import MASTER, Message, Workload


@dataclass
class Job:
    """One batch in service on a group."""

    batch: list[Request]
    left: int  # devices still running their part of it
    output: int | None  # the device whose finish is the requests' finish; None: the last
    group: int
    keys: range = range(0)  # its messages' running keys
    active_j: float = 0.0  # energy above idle of its devices' compute, sends and receives
    workload: Workload | None = None  # what it runs (a fixed group's)


class ServingReplay(Replay):
    """Requests on ``setup.groups`` groups of P devices sharing one medium. Of the
    replay's hooks it gives ``message`` (the message of a running key), ``transmit``
    (a message's airtime charged to its request) and ``start_devices`` (each group's
    master and the other devices, waiting for work); a stream (``serve/streams.py``)
    admits the requests."""

    def __init__(self, setup: ServingSetup, specs: Sequence[DeviceSpec], link: LinkSpec,
                 host: HostSpec | None, events: Sequence[DeviceEvent] = ()):
        self.setup, self.n = setup, setup.workloads[1].n_devices
        streams = None if setup.seed is None else Streams(specs, link, setup.seed)
        super().__init__(setup.workloads[1], specs, link, False, host, streams, events)
        self.streams = streams
        self.msgs: dict[int, Message] = {}  # running key -> the message
        # (workload id, the devices it runs on) -> its messages between them
        self.templates: dict[tuple[int, tuple[int, ...]], list[Message]] = {}
        self.next_key = 0
        self.queues = [simpy.Store(self.env) for _ in range(setup.groups)]
        self.inbox = [simpy.Store(self.env) for _ in specs]  # jobs for devices but masters
        self.outstanding = [0] * setup.groups  # admitted and not done, per group
        self.idle_since = [0.0] * len(specs)
        self.turn = 0
        self.waiters: dict[int, simpy.Event] = {}  # closed loop: request -> its client
        # a request alone on idle devices runs as one inference at time 0 does only in a
        # world that stands still: no draws, no link trace
        self.shortcut = IdleShortcut(specs, self.n, link, setup.groups, setup.shortcut and
                                     host is None and streams is None and link.trace is None
                                     and not events and setup.resplit is None)
        self.resplit = None if setup.resplit is None else Resplitter(
            setup.resplit, specs, self.n, setup.groups, setup.workloads)
        self.key_job: dict[int, Job] = {}  # running key -> the job its message is of
        self.extra_w = [(s.compute_w - s.idle_w, s.tx_w - s.idle_w, s.rx_w - s.idle_w)
                        for s in specs]  # each device's power above idle per state

    # the replay's hooks

    def message(self, key: int) -> Message:
        return self.msgs[key]

    def transmit(self, key: int, msg: Message, at_s: float) -> None:
        """As the replay's, and the energy above idle that the sender and receivers of
        the whole message spend on the air meanwhile is its request's."""
        whole = self.msgs[key]
        before_j = self._air_j(whole)
        super().transmit(key, msg, at_s)
        self.key_job[key].active_j += self._air_j(whole) - before_j

    def start_devices(self) -> None:
        for g in range(self.setup.groups):
            self.env.process(self.master(g))
            for p in range(1, self.n):
                self.env.process(self.worker(g * self.n + p))

    # the devices

    def master(self, group: int) -> Generator[Any, Any, None]:
        """The group's master: takes each batch, runs its own part of it."""
        g0 = group * self.n
        while True:
            batch = yield from self._batch(group)
            for r in batch:
                r.start_s, r.batch = self.env.now, len(batch)
            timeline = self.shortcut.applies(
                self.workloads(group)[len(batch)], group, len(batch), self.env.now,
                self.idle_since, len(self.queues[group].items))
            if timeline is not None:
                yield from self._as_one_inference(group, batch, timeline)
                continue
            ops, job = self._start(group, batch)
            self.wake(g0)
            try:
                yield from self._walk_part(g0, ops, job)
            except DeviceGoneError:  # the master left for good: its group serves no more
                return
            self._finished(job, g0)

    def worker(self, d: int) -> Generator[Any, Any, None]:
        """Device d (not a master): runs each part handed to it."""
        while True:
            job, ops = yield self.inbox[d].get()
            try:
                yield from self.serve_part(d, ops, job)
            except DeviceGoneError:  # it left for good
                return

    def serve_part(self, d: int, ops: list[Op], job: Job) -> Generator[Any, Any, None]:
        """Device d, handed its part of ``job``, runs it (a first receive was posted
        when it became idle: the sender knows a latency later, at once for the first
        request) and is done with it."""
        self.post_ahead(d, ops, self.idle_since[d])
        yield from self._walk_part(d, ops, job)
        self.idle_since[d] = self.env.now + self.medium.latency_s
        self._finished(job, d)

    # requests in and out

    def dispatch(self) -> int:
        """The group the next request joins: the fewest outstanding, or in turn."""
        groups = self.setup.groups
        if self.setup.dispatch == "shortest_queue":
            return min(range(groups), key=lambda g: (self.outstanding[g], g))
        group, self.turn = self.turn, (self.turn + 1) % groups
        return group

    def admit(self, r: Request) -> None:
        """The dispatcher: the request joins a group's queue, or is dropped."""
        if self.take_in(r):
            self.queues[r.group].put(r)

    def take_in(self, r: Request) -> bool:
        """Picks the request's group; False (it is dropped) if that group's queue is
        full, else it counts as outstanding there."""
        r.group = self.dispatch()
        limit = self.setup.queue_limit
        if limit is not None and self.queued(r.group) >= limit:
            r.dropped = True
            return False
        self.outstanding[r.group] += 1
        return True

    def queued(self, group: int) -> int:
        """Requests waiting in the group's queue, not yet taken."""
        return len(self.queues[group].items)

    def answered(self, r: Request) -> simpy.Event:
        """What fires once request r is done (a closed loop's client waits on it)."""
        event = self.waiters[r.index] = self.env.event()
        return event

    def run_stream(self, source: Callable[[list[Request]], Generator[Any, Any, None]]
                   ) -> ServingResult:
        """Serve the requests ``source`` makes (a process appending each to its list)."""
        self.start_devices()
        requests: list[Request] = []
        self.env.process(source(requests))
        self.env.run()
        return self.result(requests)

    def result(self, requests: list[Request]) -> ServingResult:
        """What the stream gave, once every device is done."""
        end = max((s.finish_s for s in self.stats), default=0.0)
        self.close_stats(end)
        med = self.medium
        shared = med.link.medium == "shared"
        return ServingResult(requests, self.stats, end, med.bytes_on_air,
                             med.air_s if shared else None, events=bool(self.clocks),
                             resplits=None if self.resplit is None
                             else len(self.resplit.switches))

    # jobs

    def number(self, job: Job, wl: Workload, devices: tuple[int, ...] | None = None
               ) -> int:
        """The job's messages (those of ``wl``, its device p on ``devices[p]``: by
        default its group's p-th) under the next running keys; the first of them back."""
        base, msgs = self.next_key, self.msgs
        for m in self.template(wl, devices or self.group_devices(job.group)):
            msgs[base + m.id] = m
        job.keys = range(base, base + len(wl.messages))
        self.next_key += len(wl.messages)
        for k in job.keys:
            self.key_job[k] = job
        return base

    def group_devices(self, group: int) -> tuple[int, ...]:
        """The group's devices, in order."""
        return tuple(range(group * self.n, (group + 1) * self.n))

    def template(self, wl: Workload, devices: tuple[int, ...]) -> list[Message]:
        """The messages of ``wl`` (by message id) with its device p on ``devices[p]``."""
        key = (id(wl), devices)
        if key not in self.templates:
            self.templates[key] = [replace(m, src=devices[m.src],
                                           dst=tuple(devices[d] for d in m.dst))
                                   for m in wl.messages]
        return self.templates[key]

    def program(self, wl: Workload, p: int, d: int, base: int) -> list[Op]:
        """Device p's operations of ``wl`` on device d, its message keys from ``base``;
        with variability drawn, their compute times in this part's world."""
        factors = None if self.streams is None else self.streams.part_factors(
            d, compute_steps(wl, p), self.env.now)
        ops = (device_ops(wl, p, self.specs[d], True) if factors is None
               else varied_ops(wl, p, self.specs[d], True, factors))
        return shift_keys(ops, base)

    def _start(self, group: int, batch: list[Request]) -> tuple[list[Op], Job]:
        """Hand one batch to the group's devices; the master's operations back."""
        wl, g0 = self.workloads(group)[len(batch)], group * self.n
        job = self._job(wl, group, batch)
        base = self.number(job, wl)
        for p in range(1, self.n):
            self.inbox[g0 + p].put((job, self.program(wl, p, g0 + p, base)))
        return self.program(wl, MASTER, g0, base), job

    def _job(self, wl: Workload, group: int, batch: list[Request]) -> Job:
        output = wl.meta.get("output_device")
        self.shortcut.started(group)
        for r in batch:
            r.devices = self.n
        return Job(batch, self.n, None if output is None else group * self.n + output,
                   group, workload=wl)

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

    def workloads(self, group: int) -> dict[int, Workload]:
        """The group's workloads by batch size (a re-split group's current ones)."""
        return self.setup.workloads if self.resplit is None else self.resplit.workloads(group)

    def _walk_part(self, d: int, ops: list[Op], job: Job) -> Generator[Any, Any, None]:
        """Device d runs its part of ``job``; its compute energy is the job's (and its
        compute time what a re-splitting group measures)."""
        before_s = self.stats[d].compute_s
        yield from self.walk(d, ops)
        compute_s = self.stats[d].compute_s - before_s
        job.active_j += self.extra_w[d][0] * compute_s
        if self.resplit is not None and job.workload is not None:
            self.resplit.observe(job.group, d - job.group * self.n, d, job.workload,
                                 compute_s, self.env.now)

    def _air_j(self, msg: Message) -> float:
        """Energy above idle the sender and the receivers of ``msg`` spent on the air."""
        med, w = self.medium, self.extra_w
        rx_s, receiving_j = med.rx_s, 0.0
        for d in msg.dst:  # (a loop, not sum(): the same sum, in the innermost loop)
            receiving_j += w[d][2] * rx_s[d]
        return w[msg.src][1] * med.tx_s[msg.src] + receiving_j

    def _as_one_inference(self, group: int, batch: list[Request], r: SimResult
                          ) -> Generator[Any, Any, None]:
        """The batch runs the one-inference timeline ``r`` from now (serve/shortcut.py):
        each device's totals grow by its part, each finishes when it would."""
        g0, now, med = group * self.n, self.env.now, self.medium
        job = self._job(self.workloads(group)[len(batch)], group, batch)
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

    def _release(self, job: Job) -> None:
        """Forget the finished job's messages: every copy has arrived and been taken."""
        for k in job.keys:
            del self.key_job[k]
            for d in self.msgs.pop(k).dst:
                self.arrival.pop((k, d), None)
                self.posted.pop((k, d), None)
            self.handed.pop(k, None)
            self.late_s.pop(k, None)

    def _finished(self, job: Job, d: int, now_s: float | None = None) -> None:
        """Device d ran its last task of ``job`` (now, or at ``now_s``: a replay keeping
        its own time): the requests are done if it holds the output (or, for a workload
        naming no output device, once every device is)."""
        now = self.env.now if now_s is None else now_s
        self.stats[d].finish_s = now
        job.left -= 1
        if job.left == 0:
            self.shortcut.finished(job.group)
            self._release(job)
            if self.resplit is not None:
                self.resplit.check(job.group, now)
            for r in job.batch:
                r.energy_j = job.active_j / len(job.batch)
        if d == job.output or (job.output is None and job.left == 0):
            for r in job.batch:
                r.finish_s = now
                self.outstanding[r.group] -= 1
                waiter = self.waiters.pop(r.index, None)
                if waiter is not None:
                    waiter.succeed()
