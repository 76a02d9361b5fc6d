"""The replay of one workload's programs on modelled devices and a network medium (SimPy).

Each device is one process walking its tasks in program order: compute holds it for
max(FLOPs / (peak x efficiency), memory bytes / bandwidth); a send stages the tensor
(GLOO on a GPU device copies it to host memory, blocking the program; on a shared
host the send's own CPU work holds the program too) and hands it to the medium, which
transmits it while the device goes on; a receive waits until every
listed message has arrived, then stages each one back to the device. On a rendezvous
link a message leaves only once its receive is posted: by a ``post`` task (the program
posted it early, and goes on at once) or else by the receive itself; a device other
than the master that starts by receiving is idle before the request comes, its first
receive posted, so that message leaves as soon as it is sent.

Device events (``sim/device_events.py``) put a device's compute steps and staging copies
on its clock: slowed down over an interval, or held while it is away; a message that
arrives at a device away is delivered when it returns. A device that never returns
leaves the inference lost: ``run()`` says why instead of giving a latency.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import Any

import simpy

from prismsim.sim.device_events import DeviceClock, DeviceEvent, device_clocks
from prismsim.sim.draws import Draw, Streams
from prismsim.sim.host import SharedHost
from prismsim.sim.host_work import HostWork
from prismsim.sim.media import MEDIA
from prismsim.sim.ops import Compute, Op, PostReceives, Receive, SendMessage, device_ops
from prismsim.sim.quota import QuotaClock
from prismsim.sim.results import DeviceStats, SimResult, Span, energy_j
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec
from prismsim.sim.wake import Wake
from prismsim.workload import MASTER, Message, Workload


class DeviceGoneError(Exception):
    """A device left, before a step it could not finish, and never returns."""


class Replay(HostWork):
    """The replay of one workload's per-device programs on devices and a medium:
    ``run()`` replays one inference.

    Subclasses (the serving replay, ``serve/groups.py``) extend it through these hooks:

    - ``message(key)``: the message a running key names (here the workload's message of
      that id; a serving run numbers each request's messages apart);
    - ``transmit(key, msg, at_s)``: one message, or one rendezvous copy of it, handed to
      the medium at ``at_s`` (with a sampled world's ``draw``, its data arrives its extra
      delay later; so it does after its sender's busy stretch on a shared host);
    - ``start_devices()``: start the devices' processes (here each runs its program once);

    and use these helpers: ``walk(device, ops)`` (a device runs operations in program
    order), ``post_ahead(device, ops, ready_s)`` (a device idle before its program posts
    its first receive), ``wake(device)`` (a device idle since its last task takes new
    work) and ``close_stats(end_s)`` (each device's transmissions, bytes and energy).
    """

    def __init__(self, wl: Workload, specs: Sequence[DeviceSpec], link: LinkSpec, record: bool,
                 host: HostSpec | None = None, draw: Draw | Streams | None = None,
                 events: Sequence[DeviceEvent] = ()):
        # a sampled world, or draws made as a serving run goes (sim/draws.py); None: every
        # step and message at its mean time
        self.draw = draw
        # device -> its clock, for the devices that slow down or leave; {}: none does
        self.clocks = device_clocks(events, len(specs)) if events else {}
        if self.clocks and host:
            raise ValueError("device events on a shared host are not modelled: give the "
                             "events or the host, not both")
        self.ended = [False] * len(specs)  # which devices got to the end of their program
        # whether a device waiting for messages may be interrupted (serving/pools.py)
        self.interruptible = False
        self.env = simpy.Environment()
        self.host_spec = host
        self.host = SharedHost(self.env, host.cores, host.corun, host.speed_steps) \
            if host else None
        # the device processes under a CPU quota (sim/quota.py)
        self.quotas = {p: QuotaClock(share, host.quota_period_s)
                       for p, share in host.cpu_share.items()} if host else {}
        self.wl, self.specs, self.record = wl, specs, record
        self.stats = [DeviceStats() for _ in specs]
        self.spans: list[Span] = []
        self.arrival: dict[tuple[int, int], float] = {}  # (message, device) -> time
        self.waiting: dict[tuple[int, int], Wake] = {}  # (message, device) -> its receive
        self.rendezvous = link.rendezvous
        self.handed: dict[int, float] = {}  # rendezvous: message -> when its sender sent it
        self.posted: dict[tuple[int, int], float] = {}  # (message, device) -> ready at sender
        self.medium = MEDIA[link.medium](link, len(specs), self._span if record else None,
                                         draw)
        self.blocked_s = [0.0] * len(specs)  # host: how long each waited since it computed
        # host: how long each computed with every core busy since it last waited (its
        # next message arrives that much later: HostSpec.busy_send_s) ...
        self.busy_s = [0.0] * len(specs)
        self.late_s: dict[int, float] = {}  # ... message -> that extra delay
        self.transfers: dict[int, tuple[simpy.Event, float]] = {}  # dst -> (CPU done, end)
        if self.host and host and host.transfer_cpu_s(1 << 20):
            self.medium.on_air = self._transfer_cpu

    # hooks

    def message(self, key: int) -> Message:
        """The message a running key names."""
        return self.wl.messages[key]

    def transmit(self, key: int, msg: Message, at_s: float) -> None:
        """``msg`` (key ``key``), or one rendezvous copy of it, handed to the medium at
        ``at_s``: each copy arrives when the medium delivers it."""
        extra_s = (self.draw.delay_s(key) if self.draw else 0.0) + self.late_s.get(key, 0.0)
        for dst, at in self.medium.send(msg, at_s, key):
            self._arrive(key, dst, at + extra_s)

    def start_devices(self) -> None:
        """Every device runs its program once; one other than the master that starts by
        receiving has its receive posted from the start."""
        for p, spec in enumerate(self.specs):
            ops = (self.draw.ops(self.wl, p, spec, not self.record)
                   if isinstance(self.draw, Draw)
                   else device_ops(self.wl, p, spec, not self.record))
            if p != MASTER:
                self.post_ahead(p, ops, 0.0)
            self.env.process(self._device(p, ops))

    # helpers

    def walk(self, p: int, ops: list[Op]) -> Generator[Any, Any, None]:
        """Device p runs ``ops`` in program order."""
        env, stats, record, stages = self.env, self.stats[p], self.record, self.specs[p].stages
        plain = not (record or self.host or p in self.clocks)  # inline: one event a hold
        for op in ops:
            kind = type(op)
            if kind is Compute:
                if plain:
                    stats.compute_s += op.seconds
                    yield env.timeout(op.seconds)
                else:
                    yield from self._compute(p, op)
            elif kind is Receive:
                start, event = env.now, self._arrived(p, op.messages)
                if event is not None:
                    yield event
                if (cpu := self._message_cpu(op.messages)) is not None:
                    yield cpu
                stats.wait_s += env.now - start
                self.blocked_s[p] += env.now - start
                if record:
                    self._span(p, "wait", op.label, start, env.now)
                if op.stage_s:  # the messages copied from host memory to the device
                    if plain:
                        stats.staging_s += op.stage_s
                        yield env.timeout(op.stage_s)
                    else:
                        yield from self._hold(p, f"{op.label} to device", op.stage_s)
            elif kind is SendMessage:
                yield from self._send_op(p, op, stages, plain)
            elif self.rendezvous:  # PostReceives; else free: messages leave when sent anyway
                self._post(p, op.messages)

    def _send_op(self, p: int, op: SendMessage, stages: bool, plain: bool
                 ) -> Generator[Any, Any, None]:
        """A send: copied to host memory first (a GPU device), its own work done by the
        program (a shared host), then handed over."""
        msg = self.message(op.message)
        if stages:
            if plain:
                self.stats[p].staging_s += op.stage_s
                yield self.env.timeout(op.stage_s)
            else:
                yield from self._hold(p, f"{op.label} to host", op.stage_s)
        if (cpu := self._send_cpu(msg)) is not None:
            yield cpu
        self._send(msg, op.message)

    def post_ahead(self, p: int, ops: list[Op], ready_s: float) -> None:
        """Rendezvous: device p, idle before ``ops`` start, has posted their first receive
        if they start with one; its senders know of it at ``ready_s``."""
        if self.rendezvous and ops and isinstance(ops[0], Receive | PostReceives):
            self._post(p, ops[0].messages, ready_s)

    def wake(self, p: int) -> None:
        """Device p, idle since its last task, takes new work now: on a shared host its
        next compute step wakes it from that wait."""
        self.blocked_s[p] += self.env.now - self.stats[p].finish_s

    def close_stats(self, end_s: float) -> None:
        """Each device's transmit and receive times and bytes into its statistics, and its
        energy over a run that ends at ``end_s``."""
        med = self.medium
        for p, (st, spec) in enumerate(zip(self.stats, self.specs, strict=True)):
            st.tx_s, st.rx_s = med.tx_s[p], med.rx_s[p]
            st.bytes_sent, st.bytes_received = med.bytes_sent[p], med.bytes_received[p]
            st.energy_j = energy_j(spec, end_s, st.compute_s, st.tx_s, st.rx_s)

    def run(self) -> SimResult:
        """Replay one inference: every device's program, once."""
        self.start_devices()
        self.env.run()
        if not all(self.ended) and (lost := self._lost()) is not None:
            return self._lost_result(lost)
        if self.waiting:
            raise RuntimeError(f"messages never sent: {sorted(self.waiting)}")
        makespan = max(s.finish_s for s in self.stats)
        output = self.wl.meta.get("output_device")  # traced programs: the master
        latency = makespan if output is None else self.stats[output].finish_s
        self.close_stats(makespan)
        med = self.medium
        spans = sorted(self.spans, key=lambda span: span.start_s)
        return SimResult(latency, self.stats, med.bytes_on_air, spans, makespan, med.air_s)

    # the replay itself

    def _device(self, p: int, ops: list[Op]) -> Generator[Any, Any, None]:
        try:
            if p in self.clocks:  # a device away at the start begins when it comes
                yield from self._present(self.clocks[p])
            yield from self.walk(p, ops)
        except DeviceGoneError:
            return
        self.stats[p].finish_s = self.env.now
        self.ended[p] = True

    def _lost(self) -> str | None:
        """Why the replay ended with work left: the devices that left for good (those
        whose own program is unfinished first); None if none did."""
        gone = {p: c.gone_s for p, c in self.clocks.items() if c.gone_s is not None}
        stuck = [p for p in gone if not self.ended[p]] or list(gone)
        return "; ".join(f"device {p} left at {gone[p] * 1e3:g} ms and never returned"
                         for p in stuck) or None

    def _lost_result(self, lost: str) -> SimResult:
        """An inference that never ended: latency inf; statistics up to the last event."""
        end_s, med = float(self.env.now), self.medium
        self.close_stats(end_s)
        spans = sorted(self.spans, key=lambda span: span.start_s)
        return SimResult(math.inf, self.stats, med.bytes_on_air, spans, end_s, med.air_s,
                         lost=lost)

    def _on_clock(self, p: int, work_s: float, stat: str) -> Generator[Any, Any, None]:
        """``work_s`` of device p's work on its clock (slowed down, held while away); the
        time it worked is added to its statistic ``stat``, also when it leaves for good
        before the work is done (then the replay of it ends)."""
        clock, start = self.clocks[p], self.env.now
        end = clock.finish_s(start, work_s)
        gone = end == math.inf
        if gone:
            end = max(start, clock.gone_s or start)
        if end > start:
            yield self.env.timeout(end - start)
        stats = self.stats[p]
        setattr(stats, stat, getattr(stats, stat) + end - start - clock.away_s(start, end))
        if gone:
            raise DeviceGoneError

    def _present(self, clock: DeviceClock) -> Generator[Any, Any, None]:
        """Until the device is present (at once if it is)."""
        at = clock.present_s(self.env.now)
        if at == math.inf:
            raise DeviceGoneError
        if at > self.env.now:
            yield self.env.timeout(at - self.env.now)

    def _span(self, device: int, lane: str, label: str, start: float, end: float,
              layer: int | None = None) -> None:
        if end > start:
            self.spans.append(Span(device, lane, label, start, end, layer))

    def _hold(self, p: int, label: str, seconds: float) -> Generator[Any, Any, None]:
        """A staging copy of ``seconds`` (on the device's clock if it has one), its span
        recorded if a timeline is kept (once it is done)."""
        start = self.env.now
        if p in self.clocks:
            yield from self._on_clock(p, seconds, "staging_s")
        else:
            yield self.env.timeout(seconds)
            self.stats[p].staging_s += seconds
        if self.record:
            self._span(p, "staging", label, start, self.env.now)

    def _compute(self, p: int, op: Compute) -> Generator[Any, Any, None]:
        """A compute step on the shared host (its time depends on who else runs, and,
        first after a wait, on how long the process waited), or recorded."""
        start = self.env.now
        if p in self.clocks:  # (events and a shared host are not given together)
            yield from self._on_clock(p, op.seconds, "compute_s")
        else:
            if self.host and self.host_spec:
                yield from self._host_compute(p, op.seconds)
            else:
                yield self.env.timeout(op.seconds)
            self.stats[p].compute_s += self.env.now - start
        if self.record:
            self._span(p, "compute", op.label, start, self.env.now, op.layer)

    def _host_compute(self, p: int, seconds: float) -> Generator[Any, Any, None]:
        """A compute step on the shared host: first after a wait, it pays the wake-up
        and starts a new busy stretch; the time every core was busy meanwhile adds to
        the stretch."""
        assert self.host and self.host_spec
        woke = self.host_spec.wake_s(self.blocked_s[p])
        if self.blocked_s[p] > 0:
            self.busy_s[p] = 0.0
        self.blocked_s[p], saturated_s = 0.0, self.host.saturated_s
        if p in self.quotas:
            yield from self.quotas[p].run(self.env, self.host, seconds + woke)
        else:
            yield self.host.run(seconds + woke, process=True)
        self.busy_s[p] += self.host.saturated_s - saturated_s

    def _arrived(self, p: int, ids: tuple[int, ...]) -> simpy.Event | None:
        """What device p waits on until every message of ``ids`` has arrived (None: all
        are already there): one event, however many messages."""
        if self.rendezvous:
            self._post(p, ids)
        arrival, now = self.arrival, self.env.now
        last, unknown = now, []
        for m in ids:
            at = arrival.get((m, p))
            if at is None:
                unknown.append((m, p))  # not handed to the network yet
            elif at > last:
                last = at
        if unknown:
            wake = Wake(self.env, len(unknown), last, self.interruptible)
            for key in unknown:
                self.waiting[key] = wake
            return wake
        return self.env.timeout(last - now) if last > now else None

    def _deliver(self, msg_id: int, device: int, at: float) -> None:
        if self.clocks and device in self.clocks:  # a device away takes it on its return
            at = self.clocks[device].present_s(at)
            if at == math.inf:
                return  # never: the device never returns
        key = (msg_id, device)
        self.arrival[key] = at
        wake = self.waiting.pop(key, None)
        if wake is not None:  # the receiver already waits
            wake.known(at)

    def _send(self, msg: Message, key: int) -> None:
        """``key``: the message's number in this replay (its id, but in a serving run).
        On a shared host, after a stretch with every core busy its data arrives later."""
        if self.host and self.host_spec and (
                late_s := self.host_spec.busy_send_s(self.busy_s[msg.src])):
            self.late_s[key] = late_s
        if self.rendezvous:
            self.handed[key] = self.env.now
            for dst in msg.dst:
                if (key, dst) in self.posted:
                    self._book(msg, key, dst, max(self.env.now, self.posted[(key, dst)]))
            return
        self.transmit(key, msg, self.env.now)

    def _book(self, msg: Message, key: int, dst: int, at: float) -> None:
        """Rendezvous: one copy to ``dst``, handed to the medium at ``at``."""
        self.transmit(key, replace(msg, dst=(dst,), broadcast=False), at)

    def _post(self, p: int, ids: tuple[int, ...], ready_s: float | None = None) -> None:
        """Rendezvous: device p posts its receives; each sender learns it at ``ready_s``,
        or (None) when p's notice sent now reaches it (behind the data p has already
        handed over towards it). Receives posted before (by a ``post`` task, or ahead)
        keep their earlier time."""
        for m in ids:
            if (m, p) in self.posted:
                continue
            msg = self.message(m)
            ready = self.medium.notice_s(p, msg.src, self.env.now) if ready_s is None \
                else ready_s
            self.posted[(m, p)] = ready
            if m in self.handed:  # sent before
                self._book(msg, m, p, max(ready, self.handed[m]))
