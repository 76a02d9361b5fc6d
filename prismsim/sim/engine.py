"""Replay a Workload on modelled devices and a network medium (SimPy).

Each device is one process walking its tasks in program order: compute holds it for
max(FLOPs / (peak x efficiency), memory bytes / bandwidth); a send stages the tensor
(GLOO on a GPU device copies it to host memory, blocking the program) and hands it to
the medium, which transmits it while the device goes on; a receive waits until every
listed message has arrived, then stages each one back to the device. On a rendezvous
link a message leaves only once its receive is posted: by a ``post`` task (the program
posted it early, and goes on at once) or else by the receive itself.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import simpy

from prismsim.sim.media import MEDIA
from prismsim.sim.specs import DeviceSpec, LinkSpec
from prismsim.workload import Message, Task, Workload


@dataclass
class DeviceStats:
    compute_s: float = 0.0
    staging_s: float = 0.0
    wait_s: float = 0.0  # blocked in a receive
    finish_s: float = 0.0
    tx_s: float = 0.0
    rx_s: float = 0.0
    bytes_sent: int = 0
    bytes_received: int = 0
    energy_j: float = 0.0

    @property
    def comm_s(self) -> float:
        """Time the program is held by communication: staging and waiting to receive."""
        return self.staging_s + self.wait_s


@dataclass
class SimResult:
    latency_s: float
    devices: list[DeviceStats]
    bytes_on_air: int
    spans: list[tuple[int, str, str, float, float]] = field(default_factory=list)

    @property
    def energy_j(self) -> float:
        return sum(d.energy_j for d in self.devices)

    def idle_s(self, device: int) -> float:
        d = self.devices[device]
        return self.latency_s - d.compute_s - d.comm_s


def compute_s(task: Task, spec: DeviceSpec) -> float:
    """Roofline: the larger of compute time and memory time (if a bandwidth is given)."""
    t = task.flops / spec.flops_per_s
    mem = spec.mem_bytes_per_s
    return max(t, task.bytes / mem) if mem else t


def _compiled(tasks: Sequence[Task], spec: DeviceSpec, merge: bool) -> list[tuple]:
    """Tasks as (kind, payload, label) with compute times precomputed; consecutive compute
    steps merged into one hold when no timeline is recorded (same result, fewer events)."""
    ops: list[tuple] = []
    for t in tasks:
        if t.kind == "compute":
            if merge and ops and ops[-1][0] == "compute":
                ops[-1] = ("compute", ops[-1][1] + compute_s(t, spec), ops[-1][2])
            else:
                ops.append(("compute", compute_s(t, spec), t.label))
        else:
            ops.append((t.kind, t.messages, t.label))
    return ops


class _Replay:
    def __init__(self, wl: Workload, specs: Sequence[DeviceSpec], link: LinkSpec, record: bool):
        self.env = simpy.Environment()
        self.wl, self.specs, self.record = wl, specs, record
        self.stats = [DeviceStats() for _ in specs]
        self.spans: list[tuple[int, str, str, float, float]] = []
        self.arrival: dict[tuple[int, int], float] = {}  # (message, device) -> time
        self.waiting: dict[tuple[int, int], simpy.Event] = {}
        self.rendezvous = link.rendezvous
        self.handed: dict[int, float] = {}  # rendezvous: message -> when its sender sent it
        self.posted: dict[tuple[int, int], float] = {}  # (message, device) -> ready at sender
        self.medium = MEDIA[link.medium](link, len(specs), self._span if record else None)

    def _span(self, device: int, lane: str, label: str, start: float, end: float) -> None:
        if end > start:
            self.spans.append((device, lane, label, start, end))

    def _deliver(self, msg_id: int, device: int, at: float) -> None:
        key = (msg_id, device)
        self.arrival[key] = at
        event = self.waiting.pop(key, None)
        if event is not None:  # the receiver already waits: wake it on arrival
            self.env.timeout(at - self.env.now).callbacks.append(lambda _: event.succeed())

    def _hold(self, p: int, lane: str, label: str, seconds: float) -> Generator[Any, Any, None]:
        start = self.env.now
        yield self.env.timeout(seconds)
        if self.record:
            self._span(p, lane, label, start, self.env.now)

    def _stage_out(self, p: int, msg: Message, label: str) -> Generator[Any, Any, None]:
        stage = self.specs[p].staging_s(msg.bytes)
        self.stats[p].staging_s += stage
        yield from self._hold(p, "staging", f"{label} to host", stage)

    def _send(self, msg: Message) -> None:
        if self.rendezvous:
            self.handed[msg.id] = self.env.now
            for dst in msg.dst:
                if (msg.id, dst) in self.posted:
                    self._book(msg, dst, max(self.env.now, self.posted[(msg.id, dst)]))
            return
        for dst, at in self.medium.send(msg, self.env.now):
            self._deliver(msg.id, dst, at)

    def _book(self, msg: Message, dst: int, at: float) -> None:
        """Rendezvous: one copy to ``dst``, handed to the medium at ``at``."""
        copy = replace(msg, dst=(dst,), broadcast=False)
        for d, arrival in self.medium.send(copy, at):
            self._deliver(msg.id, d, arrival)

    def _post(self, p: int, ids: tuple[int, ...]) -> None:
        """Rendezvous: device p posts its receives; each sender learns it a latency later.
        Receives posted before (by a ``post`` task) keep their earlier time."""
        ready = self.env.now + self.medium.latency_s
        for m in ids:
            if (m, p) in self.posted:
                continue
            self.posted[(m, p)] = ready
            if m in self.handed:
                self._book(self.wl.messages[m], p, max(ready, self.handed[m]))

    def _recv(self, p: int, ids: tuple[int, ...], label: str) -> Generator[Any, Any, None]:
        start, keys = self.env.now, [(m, p) for m in ids]
        pending = [self.waiting.setdefault(k, self.env.event())
                   for k in keys if k not in self.arrival]
        if pending:  # not handed to the network yet
            yield self.env.all_of(pending)
        last = max(self.arrival[k] for k in keys)
        if last > self.env.now:
            yield self.env.timeout(last - self.env.now)
        self.stats[p].wait_s += self.env.now - start
        if self.record:
            self._span(p, "wait", label, start, self.env.now)
        if not self.specs[p].staging_gbps:
            return
        stage = sum(self.specs[p].staging_s(self.wl.messages[m].bytes) for m in ids)
        if stage:
            self.stats[p].staging_s += stage
            yield from self._hold(p, "staging", f"{label} to device", stage)

    def device(self, p: int, ops: list[tuple]) -> Generator[Any, Any, None]:
        timeout, stats, staging = self.env.timeout, self.stats[p], self.specs[p].staging_gbps
        for kind, what, label in ops:
            if kind == "compute":
                stats.compute_s += what
                if self.record:
                    yield from self._hold(p, "compute", label, what)
                else:
                    yield timeout(what)
            elif kind == "send":
                msg = self.wl.messages[what[0]]
                if staging:
                    yield from self._stage_out(p, msg, label)
                self._send(msg)
            elif kind == "post":
                if self.rendezvous:  # else free: messages leave when sent anyway
                    self._post(p, what)
            elif self.rendezvous:
                self._post(p, what)
                yield from self._recv(p, what, label)
            elif staging or self.record or any((m, p) not in self.arrival for m in what):
                yield from self._recv(p, what, label)
            else:  # every message already on its way: just wait for the last
                last = max(self.arrival[(m, p)] for m in what)
                if last > self.env.now:
                    stats.wait_s += last - self.env.now
                    yield timeout(last - self.env.now)
        self.stats[p].finish_s = self.env.now

    def run(self) -> SimResult:
        for p, (tasks, spec) in enumerate(zip(self.wl.tasks, self.specs, strict=True)):
            key = (p, spec, not self.record)
            if key not in self.wl.compiled:  # reused across points with this device spec
                self.wl.compiled[key] = _compiled(tasks, spec, merge=not self.record)
            self.env.process(self.device(p, self.wl.compiled[key]))
        self.env.run()
        if self.waiting:
            raise RuntimeError(f"messages never sent: {sorted(self.waiting)}")
        latency = max(s.finish_s for s in self.stats)
        med = self.medium
        for p, (st, spec) in enumerate(zip(self.stats, self.specs, strict=True)):
            st.tx_s, st.rx_s = med.tx_s[p], med.rx_s[p]
            st.bytes_sent, st.bytes_received = med.bytes_sent[p], med.bytes_received[p]
            st.energy_j = energy_j(spec, latency, st.compute_s, st.tx_s, st.rx_s)
        return SimResult(latency, self.stats, med.bytes_on_air, sorted(self.spans, key=_start))


def _start(span: tuple) -> float:
    return span[3]


def energy_j(spec: DeviceSpec, latency_s: float, compute_s: float, tx_s: float,
             rx_s: float) -> float:
    """Idle power for the whole inference plus each active state's extra power for the
    time spent in it; with states that do not overlap this is sum(power x time per state)."""
    return (spec.idle_w * latency_s + (spec.compute_w - spec.idle_w) * compute_s
            + (spec.tx_w - spec.idle_w) * tx_s + (spec.rx_w - spec.idle_w) * rx_s)


def simulate(wl: Workload, devices: DeviceSpec | Sequence[DeviceSpec], link: LinkSpec,
             record: bool = False) -> SimResult:
    """Simulate one inference. ``devices``: one spec for all, or one per device.
    ``record`` keeps a per-device timeline (spans) for plots and trace export."""
    specs = [devices] * wl.n_devices if isinstance(devices, DeviceSpec) else list(devices)
    if len(specs) != wl.n_devices:
        raise ValueError(f"the workload has {wl.n_devices} devices, got {len(specs)} specs")
    return _Replay(wl, specs, link, record).run()
