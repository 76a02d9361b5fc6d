"""The heap replay with its inner loop compiled (``serve/compiled_kernel.py``, numba):
the same figures as ``serve/heap.py``'s to the last digit, for its plainest case: an
open loop on fixed groups sharing one channel with no frame errors and no link trace
(``compiled_serves``). Its inputs are packed here: the programs of a group's places as
arrays, each device's compute steps, its variability and draws (taken from the run's
``Streams`` in the order the heap replay takes them), each message's airtime and
delays; and its outputs read back into the replay's statistics and requests."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np

from prismsim.serve.compiled_fields import SLOTS, make_kernel
from prismsim.serve.compiled_kernel import RECEIVE, SEND, serve_all
from prismsim.serve.heap import HeapReplay, heap_serves
from prismsim.serve.requests import Request, ServingResult, ServingSetup
from prismsim.sim.draws import CHUNK, speed_of
from prismsim.sim.mac_retries import MacRetries
from prismsim.sim.ops import Compute, Receive, SendMessage, device_ops, step_seconds
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec
from prismsim.sim.variability import quantile_draws
from prismsim.workload import Workload

KINDS = {Compute: 0, SendMessage: SEND, Receive: RECEIVE}  # PostReceives: 2


def compiled_serves(setup: ServingSetup, specs: Sequence[DeviceSpec], link: LinkSpec,
                    host: HostSpec | None, events: Sequence[object]) -> bool:
    """Whether the compiled replay serves this open loop (else the heap replay, or
    SimPy, as ``heap_serves`` says)."""
    return (heap_serves(setup, specs, link, host, events) and link.medium == "shared"
            and MacRetries.of(link) is None and link.trace is None)


class CompiledReplay(HeapReplay):
    """``HeapReplay.run_open`` by the compiled kernel."""

    def run_open(self, arrivals_s: Sequence[float]) -> ServingResult:
        arrivals = np.asarray(arrivals_s, dtype=float)
        k = self._fields(len(arrivals))
        k.on_air, k.busy_s, overflow = serve_all(make_kernel(k), arrivals)
        if overflow:  # more requests in flight than the kernel's slots
            return HeapReplay(self.setup, self.specs, self.medium.link).run_open(arrivals_s)
        return self._read_back(k)

    def _fields(self, n_requests: int) -> SimpleNamespace:
        """Every field of the kernel's state (its arrays are where it leaves its
        figures)."""
        wl, n_dev = self.workloads(0)[1], len(self.specs)
        k = SimpleNamespace(n=self.n, groups=self.setup.groups, h_n=0, order=0, now=0.0,
                            free=0.0, on_air=0, busy_s=0.0, turn=0, next_key=0, started=0,
                            overflow=False, f_n=0)
        k.h_t, k.h_o, k.h_d = (np.zeros(n_dev + 1), np.zeros(n_dev + 1, np.int64),
                               np.zeros(n_dev + 1, np.int64))
        k.f_kind, k.f_a, k.f_i = (np.zeros(64, np.int64) for _ in range(3))
        _programs(k, wl, self.specs, self.n)
        _messages(k, wl, self)
        self._draws(k, wl, n_requests)
        _requests(k, self.setup, n_requests, len(self.specs), wl)
        return k

    def _draws(self, k: SimpleNamespace, wl: Workload, n_requests: int) -> None:
        """Each device's variability and the draws it takes, at most one part a request
        (made at once, in the order the heap replay takes them one by one)."""
        assert self.streams is not None
        n_dev, streams = len(self.specs), self.streams
        k.varies, k.corr_s, k.sigma = (np.zeros(n_dev, np.bool_), np.zeros(n_dev),
                                       np.zeros(n_dev))
        speeds = [speed_of(s) for s in self.specs]
        width = max((len(s[0]) for s in speeds if s is not None), default=1)
        k.slow_q, k.slow_v = np.ones((n_dev, width)), np.ones((n_dev, width))
        k.innov, k.fast = np.zeros((n_dev, 1)), np.ones((n_dev, 1))
        innov, fast = [np.zeros(1)] * n_dev, [np.ones(1)] * n_dev
        for d, speed in enumerate(speeds):
            steps = int(k.n_steps[d % self.n])
            if speed is None or steps == 0:
                continue
            qs, values, k.corr_s[d], k.sigma[d] = speed
            k.varies[d] = True
            k.slow_q[d, :], k.slow_v[d, :] = _padded(qs, width), _padded(values, width)
            innov[d] = streams.take("slow", d, n_requests)
            if k.sigma[d]:
                z = streams.take("fast", d, n_requests * steps)
                fast[d] = np.exp(z * k.sigma[d] - k.sigma[d] * k.sigma[d] / 2)
        k.innov, k.fast = _stacked(innov), _stacked(fast)
        k.taken = np.zeros(n_dev, np.int64)
        k.score, k.score_at, k.scored = np.zeros(n_dev), np.zeros(n_dev), \
            np.zeros(n_dev, np.bool_)
        k.extra_s = self._extra_delays_s(n_requests * len(wl.messages))

    def _extra_delays_s(self, keys: int) -> np.ndarray:
        """Each running key's extra delay, as ``Streams.delay_s`` draws them."""
        v = self.medium.link.variability
        if v is None or not v.varies or keys == 0:
            return np.zeros(max(keys, 1))
        assert self.streams is not None
        chunks = [quantile_draws(v.delay_us, self.streams.take(
            "delay", 0, CHUNK)) * 1e-6 for _ in range(-(-keys // CHUNK))]
        return np.concatenate(chunks)

    def _read_back(self, k: SimpleNamespace) -> ServingResult:
        """The kernel's figures into the statistics, the medium and the requests."""
        for d, st in enumerate(self.stats):
            st.compute_s, st.staging_s = float(k.compute_s[d]), float(k.staging_s[d])
            st.wait_s, st.finish_s = float(k.wait_s[d]), float(k.done_s[d])
        med = self.medium
        med.tx_s, med.rx_s = k.tx_s.tolist(), k.rx_s.tolist()
        med.bytes_sent, med.bytes_received = k.sent.tolist(), k.received.tolist()
        med.bytes_on_air, med.air_s = int(k.on_air), float(k.busy_s)
        return self.result(_requests_back(k, self.n))


def _programs(k: SimpleNamespace, wl: Workload, specs: Sequence[DeviceSpec], n: int) -> None:
    """Each place's operations (kinds, messages, receives' lists), each device's
    staging and mean seconds, each place's compute steps and each device's seconds."""
    per_device = [device_ops(wl, d % n, spec, True) for d, spec in enumerate(specs)]
    width = max(len(ops) for ops in per_device)
    k.kind, k.msg = np.zeros((n, width), np.int64), np.zeros((n, width), np.int64)
    k.recv_at, k.n_ops = np.zeros((n, width + 1), np.int64), np.zeros(n, np.int64)
    received: list[int] = []
    for p in range(n):
        for i, op in enumerate(per_device[p]):
            k.kind[p, i] = KINDS.get(type(op), 2)
            k.recv_at[p, i] = len(received)
            if isinstance(op, SendMessage):
                k.msg[p, i] = op.message
            elif isinstance(op, Receive):
                received += op.messages
            k.recv_at[p, i + 1] = len(received)
        k.n_ops[p] = len(per_device[p])
    k.recv_msgs = np.array(received or [0], np.int64)
    k.stage_s, k.mean_s = np.zeros((len(specs), width)), np.zeros((len(specs), width))
    for d, ops in enumerate(per_device):
        for i, op in enumerate(ops):
            k.stage_s[d, i] = getattr(op, "stage_s", 0.0)
            k.mean_s[d, i] = op.seconds if isinstance(op, Compute) else 0.0
    _steps(k, wl, specs, n)
    k.held = np.zeros((len(specs), width))


def _steps(k: SimpleNamespace, wl: Workload, specs: Sequence[DeviceSpec], n: int) -> None:
    """Each compute step's operation (by place) and mean seconds (by device)."""
    steps = [step_seconds(wl, d % n, spec, True) for d, spec in enumerate(specs)]
    width = max(max(len(s) for s, _ in steps), 1)
    k.n_steps, k.owner = np.zeros(n, np.int64), np.zeros((n, width), np.int64)
    k.step_s = np.zeros((len(specs), width))
    for d, (seconds, owner) in enumerate(steps):
        k.step_s[d, :len(seconds)] = seconds
        if d < n:
            k.n_steps[d], k.owner[d, :len(owner)] = len(owner), owner


def _messages(k: SimpleNamespace, wl: Workload, replay: HeapReplay) -> None:
    """Each message's places, bytes, airtime of one copy and delay after the air; the
    devices' power above idle."""
    med, msgs = replay.medium, wl.messages
    k.src = np.array([m.src for m in msgs] or [0], np.int64)
    k.payload = np.array([m.payload_bytes for m in msgs] or [0], np.int64)
    k.dst_at = np.cumsum([0] + [len(m.dst) for m in msgs]).astype(np.int64)
    k.dsts = np.array([d for m in msgs for d in m.dst] or [0], np.int64)
    k.bcast = np.array([m.broadcast and med.broadcasts for m in msgs] or [False])
    k.air_s = np.array([med.airtime_s(m, med.broadcast_bits_per_s if b and len(m.dst) > 1
                                      else med.bits_per_s)
                        for m, b in zip(msgs, k.bcast, strict=False)] or [0.0])
    k.delay_s = np.array([replay.medium.link.data_delay_s(m.payload_bytes) for m in msgs] or [0.0])
    k.hops, k.n_msgs = med.hops, len(msgs)
    k.got_at = np.zeros(max((len(m.dst) for m in msgs), default=1))
    k.w_compute, k.w_tx, k.w_rx = (np.array([w[i] for w in replay.extra_w]) for i in range(3))
    n_dev = len(replay.specs)
    k.tx_s, k.rx_s = np.zeros(n_dev), np.zeros(n_dev)
    k.sent, k.received = np.zeros(n_dev, np.int64), np.zeros(n_dev, np.int64)


def _requests(k: SimpleNamespace, setup: ServingSetup, n_requests: int, n_dev: int,
              wl: Workload) -> None:
    """Empty queues, requests, parts and mail."""
    g, n = setup.groups, k.n
    k.shortest, k.limit = setup.dispatch == "shortest_queue", (
        -1 if setup.queue_limit is None else setup.queue_limit)
    output = wl.meta.get("output_device")
    k.out_p = -1 if output is None else output
    k.outstanding, k.q_head, k.q_tail = (np.zeros(g, np.int64) for _ in range(3))
    k.queue = np.zeros((g, n_requests), np.int64)
    k.group, k.left, k.base, k.slot_of = (np.zeros(n_requests, np.int64) for _ in range(4))
    k.start_s, k.finish_s, k.energy_j = (np.full(n_requests, np.nan) for _ in range(3))
    k.arr_s, k.active_j = np.zeros(n_requests), np.zeros(n_requests)
    k.dropped, k.in_slot = np.zeros(n_requests, np.bool_), np.full(SLOTS, -1, np.int64)
    k.cur = np.full(n_dev, -1, np.int64)
    k.pc, k.todo_head, k.todo_tail = (np.zeros(n_dev, np.int64) for _ in range(3))
    k.todo, k.part_k = np.zeros((n_dev, SLOTS), np.int64), np.zeros((n_dev, SLOTS), np.int64)
    k.slow = np.ones((n_dev, SLOTS))
    k.t, k.before_s, k.wait_from = np.zeros(n_dev), np.zeros(n_dev), np.full(n_dev, np.nan)
    k.staged = np.zeros(n_dev, np.bool_)
    k.compute_s, k.staging_s, k.wait_s, k.done_s = (np.zeros(n_dev) for _ in range(4))
    k.arrival = np.full((SLOTS, max(len(wl.messages), 1), n), np.nan)
    k.waiter = np.full((SLOTS, max(len(wl.messages), 1), n), -1, np.int64)
    k.unknown, k.last_s = np.zeros(n_dev, np.int64), np.zeros(n_dev)


def _requests_back(k: SimpleNamespace, n: int) -> list[Request]:
    """The requests as the heap replay leaves them."""
    out = []
    for i in range(len(k.arr_s)):
        r = Request(i, float(k.arr_s[i]), int(k.group[i]), dropped=bool(k.dropped[i]))
        if not r.dropped and not np.isnan(k.start_s[i]):
            r.start_s, r.batch, r.devices = float(k.start_s[i]), 1, n
            if not np.isnan(k.finish_s[i]):
                r.finish_s = float(k.finish_s[i])
            r.energy_j = float(k.energy_j[i])
        out.append(r)
    return out


def _padded(values: Sequence[float], width: int) -> np.ndarray:
    """``values`` with the last repeated up to ``width`` (interp reads the first ones)."""
    return np.array([*values, *[values[-1]] * (width - len(values))], dtype=float)


def _stacked(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of unequal length as one array (padded with ones)."""
    out = np.ones((len(rows), max(len(r) for r in rows)))
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out
