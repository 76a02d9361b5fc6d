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
from dataclasses import replace
from typing import Any

import simpy

from prismsim.sim.media import MEDIA
from prismsim.sim.program import Compute, Op, PostReceives, Receive, SendMessage, device_ops
from prismsim.sim.results import DeviceStats, SimResult, Span, energy_j
from prismsim.sim.specs import DeviceSpec, LinkSpec
from prismsim.workload import Message, Workload


class _Replay:
    def __init__(self, wl: Workload, specs: Sequence[DeviceSpec], link: LinkSpec, record: bool):
        self.env = simpy.Environment()
        self.wl, self.specs, self.record = wl, specs, record
        self.stats = [DeviceStats() for _ in specs]
        self.spans: list[Span] = []
        self.arrival: dict[tuple[int, int], float] = {}  # (message, device) -> time
        self.waiting: dict[tuple[int, int], simpy.Event] = {}
        self.rendezvous = link.rendezvous
        self.handed: dict[int, float] = {}  # rendezvous: message -> when its sender sent it
        self.posted: dict[tuple[int, int], float] = {}  # (message, device) -> ready at sender
        self.medium = MEDIA[link.medium](link, len(specs), self._span if record else None)

    def _span(self, device: int, lane: str, label: str, start: float, end: float,
              layer: int | None = None) -> None:
        if end > start:
            self.spans.append(Span(device, lane, label, start, end, layer))

    def _deliver(self, msg_id: int, device: int, at: float) -> None:
        key = (msg_id, device)
        self.arrival[key] = at
        event = self.waiting.pop(key, None)
        if event is not None:  # the receiver already waits: wake it on arrival
            self.env.timeout(at - self.env.now).callbacks.append(lambda _: event.succeed())

    def _hold(self, p: int, lane: str, label: str, seconds: float, layer: int | None = None
              ) -> Generator[Any, Any, None]:
        start = self.env.now
        yield self.env.timeout(seconds)
        if self.record:
            self._span(p, lane, label, start, self.env.now, layer)

    def _stage_out(self, p: int, msg: Message, label: str) -> Generator[Any, Any, None]:
        stage = self.specs[p].staging_s(msg.payload_bytes)
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
        if not self.specs[p].stages:
            return
        stage = sum(self.specs[p].staging_s(self.wl.messages[m].payload_bytes) for m in ids)
        if stage:
            self.stats[p].staging_s += stage
            yield from self._hold(p, "staging", f"{label} to device", stage)

    def device(self, p: int, ops: list[Op]) -> Generator[Any, Any, None]:
        stats, timeout, record = self.stats[p], self.env.timeout, self.record
        for op in ops:
            if isinstance(op, Compute):  # the common case, inline: one event per hold
                stats.compute_s += op.seconds
                if record:
                    yield from self._hold(p, "compute", op.label, op.seconds, op.layer)
                else:
                    yield timeout(op.seconds)
            elif isinstance(op, SendMessage):
                msg = self.wl.messages[op.message]
                if self.specs[p].stages:
                    yield from self._stage_out(p, msg, op.label)
                self._send(msg)
            elif isinstance(op, PostReceives):
                if self.rendezvous:  # else free: messages leave when sent anyway
                    self._post(p, op.messages)
            else:
                yield from self._receive(p, op)
        stats.finish_s = self.env.now

    def _receive(self, p: int, op: Receive) -> Generator[Any, Any, None]:
        ids = op.messages
        if self.rendezvous:
            self._post(p, ids)
        if self.rendezvous or self.specs[p].stages or self.record or any(
                (m, p) not in self.arrival for m in ids):
            yield from self._recv(p, ids, op.label)
            return
        last = max(self.arrival[(m, p)] for m in ids)  # all on their way: wait for the last
        if last > self.env.now:
            self.stats[p].wait_s += last - self.env.now
            yield self.env.timeout(last - self.env.now)

    def run(self) -> SimResult:
        for p, spec in enumerate(self.specs):
            self.env.process(self.device(p, device_ops(self.wl, p, spec, not self.record)))
        self.env.run()
        if self.waiting:
            raise RuntimeError(f"messages never sent: {sorted(self.waiting)}")
        latency = max(s.finish_s for s in self.stats)
        med = self.medium
        for p, (st, spec) in enumerate(zip(self.stats, self.specs, strict=True)):
            st.tx_s, st.rx_s = med.tx_s[p], med.rx_s[p]
            st.bytes_sent, st.bytes_received = med.bytes_sent[p], med.bytes_received[p]
            st.energy_j = energy_j(spec, latency, st.compute_s, st.tx_s, st.rx_s)
        spans = sorted(self.spans, key=lambda span: span.start_s)
        return SimResult(latency, self.stats, med.bytes_on_air, spans)


def simulate(wl: Workload, devices: DeviceSpec | Sequence[DeviceSpec], link: LinkSpec,
             record: bool = False) -> SimResult:
    """Simulate one inference. ``devices``: one spec for all, or one per device.
    ``record`` keeps a per-device timeline (spans) for plots and trace export."""
    specs = [devices] * wl.n_devices if isinstance(devices, DeviceSpec) else list(devices)
    if len(specs) != wl.n_devices:
        raise ValueError(f"the workload has {wl.n_devices} devices, got {len(specs)} specs")
    return _Replay(wl, specs, link, record).run()
