"""Adaptive pools: groups of P devices that serve each request either on one device
alone or split across all P, chosen with the queue in view (the follow-up seed's
local/distributed choice, under load). While a group knows some of its devices gone,
it serves on one device of those left, or split across all k left by a candidate
planned for k devices (re-planned), if it has one.

Each group first simulates each candidate's one inference on its own idle devices and
link (its idle runs): the latency and when each device is done with its part. The group
keeps its waiting requests; whenever a request arrives or a device finishes a part, it
compares, per candidate, the sum of the predicted finishes of the first
``VIEW_PER_DEVICE`` x P waiting requests if all of them were served that way: one after
another on all devices from when the last device is free (distributed), or each on the
device free first (local). The head request is served by the best plan if the plan can
start it now (distributed: every device idle; local: a device idle), else it waits for
the next device to finish. One request alone goes distributed when that is faster; a
backlog goes local when P devices serve more requests per second that way. Ties go to
fewer devices (less energy). The request then runs, every message of it, in the same
replay as fixed groups (``serve/groups.py``): the choice is a prediction, what it costs
is simulated. A distributed request starts with every device idle, so, unlike a fixed
group, consecutive requests of an adaptive group never overlap.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import simpy

from prismsim.serve.groups import Job, ServingReplay
from prismsim.serve.policies import POLICIES, PROBE_BYTES, Belief, Candidate, IdleRun
from prismsim.serve.requests import Request, ServingResult, ServingSetup, device_list
from prismsim.serve.streams import open_loop
from prismsim.sim.device_events import DeviceEvent
from prismsim.sim.replay import DeviceGoneError
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec
from prismsim.workload import Message

VIEW_PER_DEVICE = 8  # the plans look at the first 8 x P waiting requests


@dataclass(frozen=True)
class AdaptiveSetup:
    """``groups`` adaptive groups of ``devices`` devices, each request served by one
    candidate."""

    candidates: tuple[Candidate, ...]
    devices: int
    groups: int = 1
    dispatch: str = "round_robin"  # which group a request joins
    queue_limit: int | None = None  # requests waiting (not yet started) per group
    seed: int | None = None  # variability drawn, seeded (ServingSetup.seed); None: none
    # what a group believes each candidate takes (serve/policies.py): at the link's
    # nominal rate, at the rate it estimates from its transfers, or at the trace's
    policy: str = "nominal"
    # how long after a device leaves (or returns) its group knows, e.g. by missed
    # heartbeats: it then starts the requests the device held again, each on one device
    # still there, and serves on those alone until the device is known back
    detect_s: float = 1.0
    # where a request served on one device runs: "any" idle device of its group, or
    # "first": the group's first device still there (where the input is, as on the
    # testbed: validate --dynamic)
    local: str = "any"


@dataclass
class _Part(Job):
    starter: int = 0  # the device whose start is the request's start
    devices: tuple[int, ...] = ()  # the devices it was given to
    aborted: bool = False  # given up: a device of it left; its request starts again


def check_adaptive(setup: AdaptiveSetup) -> None:
    sizes = {c.workload.n_devices for c in setup.candidates}
    if not sizes <= set(range(1, setup.devices + 1)) or len(setup.candidates) < 2:
        raise ValueError(f"adaptive needs 2 or more candidates, each on 1 to "
                         f"{setup.devices} devices; got sizes {sorted(sizes)}")
    if setup.devices not in sizes:
        raise ValueError(f"adaptive needs a candidate on all {setup.devices} devices")
    if setup.local not in ("any", "first"):
        raise ValueError(f"adaptive local must be any or first, got {setup.local!r}")
    if setup.policy not in POLICIES:
        raise ValueError(f"adaptive policy must be one of {', '.join(POLICIES)}, got "
                         f"{setup.policy!r}")


def local_sum_s(free_s: Sequence[float], service_s: float, n: int) -> float:
    """Sum of the finishes of n requests, each on the device free first."""
    heap, total = list(free_s), 0.0
    heapq.heapify(heap)
    for _ in range(n):
        done_s = heapq.heappop(heap) + service_s
        total += done_s
        heapq.heappush(heap, done_s)
    return total


def distributed_sum_s(free_s: Sequence[float], latency_s: float, n: int) -> float:
    """Sum of the finishes of n requests, one after another on all devices."""
    return n * max(free_s) + latency_s * n * (n + 1) / 2


class AdaptiveReplay(ServingReplay):
    """Adaptive groups: the serving replay whose groups choose a candidate per request;
    every device runs the parts handed to it (``worker``), a request starts when its
    first device starts its part."""

    def __init__(self, setup: AdaptiveSetup, specs: Sequence[DeviceSpec], link: LinkSpec,
                 host: HostSpec | None, events: Sequence[DeviceEvent] = (),
                 believed: Sequence[DeviceSpec] | None = None):
        check_adaptive(setup)
        wide = next(c.workload for c in setup.candidates
                    if c.workload.n_devices == setup.devices)
        base = ServingSetup({1: wide}, setup.groups, setup.dispatch, setup.queue_limit,
                            shortcut=False, seed=setup.seed)
        super().__init__(base, specs, link, host, events)
        self.adaptive = setup
        believed = list(believed) if believed is not None else self.specs
        # beliefs are made before the stream: at the host's speed then, not its steps
        steady = host.model_copy(update={"speed_steps": ()}) if host else None
        self.beliefs = [Belief(setup.policy, setup.candidates,
                               believed[g * self.n:(g + 1) * self.n], link, steady)
                        for g in range(setup.groups)]
        self.running_until = [0.0] * len(specs)  # predicted end of the running part
        self.busy = [False] * len(specs)  # a part given, not finished
        self.pending: list[deque[Request]] = [deque() for _ in range(setup.groups)]
        self.down = [False] * len(specs)  # known to have left (and not known back)
        self.current: list[_Part | None] = [None] * len(specs)  # the part it runs
        self.procs: dict[int, simpy.Process] = {}
        self.leaves = [e for e in events if e.kind == "leave"]
        self.interruptible = bool(self.leaves)  # a request's parts may be given up

    def _devices(self, group: int) -> range:
        return range(group * self.n, (group + 1) * self.n)

    def _free_s(self, d: int) -> float:
        """When device d is predicted to be done with its part (now, if idle)."""
        return max(self.env.now, self.running_until[d]) if self.busy[d] else self.env.now

    def _best(self, group: int) -> IdleRun | None:
        """The candidate whose plan for the waiting requests finishes them soonest (with
        a device known gone, of those on one device, on the devices left; None: none)."""
        up = [d for d in self._devices(group) if not self.down[d]]
        free = [self._free_s(d) for d in up]
        local_free = free[:1] if self.adaptive.local == "first" else free
        n = min(len(self.pending[group]), VIEW_PER_DEVICE * self.n)
        runs = [e for e in self.beliefs[group].runs(self.env.now)
                if e.candidate.workload.n_devices in (1, len(up))]  # all up: 1 or P
        if not runs or not up:
            return None

        def key(e: IdleRun) -> tuple[float, int]:
            size = e.candidate.workload.n_devices
            total = (local_sum_s(local_free, e.latency_s, n) if size == 1
                     else distributed_sum_s(free, e.latency_s, n))
            return total, size
        return min(runs, key=key)

    def _schedule(self, group: int) -> None:
        """Start waiting requests while the best plan can start its head now."""
        queue = self.pending[group]
        if queue and self.beliefs[group].wants_probe(self.env.now) and \
                not any(self.down[d] for d in self._devices(group)):
            self._probe(group)
        while queue:
            e = self._best(group)
            up = [d for d in self._devices(group) if not self.down[d]]
            idle = [d for d in up if not self.busy[d]]
            local = [d for d in idle if self.adaptive.local == "any" or d == up[0]]
            if e is None:
                return
            if e.candidate.workload.n_devices == 1 and local:
                devices = (local[0],)
            elif len(idle) == len(up) == e.candidate.workload.n_devices:
                devices = tuple(idle)  # all of them, or all those left (re-planned)
            else:
                return
            self._give(queue.popleft(), e, devices)

    def transmit(self, key: int, msg: Message, at_s: float) -> None:
        """As the serving replay's; a group estimating the link's rate learns each
        copy's bits and time on the air when its data arrives."""
        before_s = self.medium.tx_s[msg.src]
        super().transmit(key, msg, at_s)
        belief = self.beliefs[msg.src // self.n]
        arrivals = [self.arrival[(key, d)] for d in msg.dst if (key, d) in self.arrival]
        if belief.policy == "estimated" and arrivals:
            self._learn(belief, msg.payload_bytes, self.medium.tx_s[msg.src] - before_s,
                        max(arrivals))

    def _learn(self, belief: Belief, payload_bytes: int, air_s: float, at_s: float
               ) -> None:
        """The estimate takes in a copy's bits and airtime at ``at_s`` (later)."""
        learn = self.env.timeout(max(0.0, at_s - self.env.now))
        learn.callbacks.append(
            lambda _: belief.estimate.observe(payload_bytes, air_s, self.env.now))

    def _probe(self, group: int) -> None:
        """A probe from the group's master to its next device: it takes the channel
        like any message, and the estimate learns from it when it arrives."""
        g0, belief = group * self.n, self.beliefs[group]
        msg = Message(-1, g0, (g0 + 1,), False, "probe", (PROBE_BYTES,), PROBE_BYTES)
        before_s = self.medium.tx_s[g0]
        arrivals = [at for _, at in self.medium.send(msg, self.env.now)]
        belief.probed_s = self.env.now
        self._learn(belief, PROBE_BYTES, self.medium.tx_s[g0] - before_s, max(arrivals))

    def admit(self, r: Request) -> None:
        if self.take_in(r):
            self.pending[r.group].append(r)
            self._schedule(r.group)

    def queued(self, group: int) -> int:
        return len(self.pending[group])

    def _give(self, r: Request, e: IdleRun, devices: tuple[int, ...]) -> None:
        """The request's parts to its devices (each idle): they start at once."""
        wl = e.candidate.workload
        r.devices, r.choice = len(devices), e.candidate.label
        output = wl.meta.get("output_device")
        job = _Part([r], len(devices), None if output is None else devices[output], r.group,
                    starter=devices[0], devices=devices)
        self.shortcut.started(r.group)
        base = self.number(job, wl, devices)
        for p, d in enumerate(devices):
            self.busy[d], self.running_until[d] = True, self.env.now + e.part_s[p]
            self.inbox[d].put((job, self.program(wl, p, d, base)))

    def worker(self, d: int) -> Generator[Any, Any, None]:
        while True:
            job, ops = yield self.inbox[d].get()
            self._started(job, d)
            self.wake(d)
            self.current[d] = job
            try:
                yield from self.serve_part(d, ops, job)
            except DeviceGoneError:  # it left for good (its part stays current: given up
                return  # once its group knows)
            except simpy.Interrupt:  # the part was given up
                pass
            self.current[d], self.busy[d] = None, False
            self._schedule(job.group)

    def watch(self, leave: DeviceEvent) -> Generator[Any, Any, None]:
        """The group learns ``detect_s`` after a device leaves that it did (unless it is
        back by then): it gives up the part the device runs and starts that request
        again; it learns of its return ``detect_s`` after it."""
        d, detect_s, clock = leave.device, self.adaptive.detect_s, self.clocks[leave.device]
        yield self.env.timeout(leave.start_s + detect_s)
        if clock.present_s(self.env.now) == self.env.now or self.down[d]:
            return
        self.down[d] = True
        if (job := self.current[d]) is not None:
            self._abort(job)
        back_s = clock.present_s(self.env.now)
        if back_s == math.inf:
            return
        yield self.env.timeout(back_s + detect_s - self.env.now)
        self.down[d] = False
        self._schedule(d // self.n)

    def _abort(self, job: _Part) -> None:
        """Give ``job`` up: its devices stop their parts; its request waits at the head
        of the queue to start again."""
        job.aborted = True
        for d in job.devices:
            if self.current[d] is job and self.procs[d].is_alive:
                self.procs[d].interrupt("a device of its request left")
            elif self.current[d] is job:  # gone for good
                self.current[d] = None
        for k in job.keys:
            self.key_job.pop(k, None)
        for r in reversed(job.batch):
            r.restarts += 1
            r.start_s = None
            self.pending[job.group].appendleft(r)

    def _started(self, job: _Part, d: int) -> None:
        if d == job.starter:
            for r in job.batch:
                r.start_s, r.batch = self.env.now, 1

    def start_devices(self) -> None:
        for d in range(len(self.specs)):
            self.procs[d] = self.env.process(self.worker(d))
        for leave in self.leaves:
            self.env.process(self.watch(leave))


def adaptive_replay(setup: AdaptiveSetup, device: DeviceSpec | Sequence[DeviceSpec],
                    link: LinkSpec, host: HostSpec | None = None,
                    events: Sequence[DeviceEvent] = (),
                    believed: DeviceSpec | Sequence[DeviceSpec] | None = None
                    ) -> AdaptiveReplay:
    """The replay that serves a stream on adaptive groups (``open_loop`` or
    ``closed_loop``); ``device``: one spec for all devices, or one per device;
    ``believed``: the devices the groups' beliefs are made from, where not those (a
    performance map made earlier, when the devices ran at another speed)."""
    def specs(d: DeviceSpec | Sequence[DeviceSpec]) -> list[DeviceSpec]:
        return device_list(d, setup.groups, setup.devices)
    return AdaptiveReplay(setup, specs(device), link, host, events,
                          None if believed is None else specs(believed))


def serve_adaptive(setup: AdaptiveSetup, arrivals_s: Sequence[float],
                   device: DeviceSpec | Sequence[DeviceSpec], link: LinkSpec,
                   host: HostSpec | None = None, events: Sequence[DeviceEvent] = (),
                   believed: DeviceSpec | Sequence[DeviceSpec] | None = None
                   ) -> ServingResult:
    """Serve requests arriving at ``arrivals_s`` on adaptive groups (``believed``: as
    ``adaptive_replay``'s)."""
    replay = adaptive_replay(setup, device, link, host, events, believed)
    return replay.run_stream(lambda out: open_loop(replay, arrivals_s, out))
