"""What one GLOO message costs, measured by two processes (on loopback, or in two
namespaces of a running testbed): one-way time and CPU per size from a ping-pong, the
time a late receive takes (GLOO's rendezvous), a two-way exchange, and a bulk stream
both ways during which the whole host's CPU is read: what it spends beyond the two
processes (an emulated network's kernel work: veth, shaping, forwarding, the delay
line) per byte at the link's rate.

Run as ``python -m prismsim.profiling.message_costs DEVICE REPS INIT_METHOD INTERFACE
STREAM_BYTES`` (DEVICE 0 or 1); :func:`measure_message_costs` starts both ends
(:func:`loopback_message_costs` on this host's loopback, :func:`testbed_message_costs`
between two devices of a running testbed).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Generator
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from prismsim.executors.gloo import drive
from prismsim.profiling.busy_exchange import mean_pairs, testbed_busy_send_us
from prismsim.profiling.hoststat import CpuTimes, busy_since
from prismsim.strategies.program import Expect, Message, Recv, Send, Tag

PINGPONG_SIZES_BYTES = (256, 4096, 16384, 65536, 262144)  # spans the small models' messages
PINGPONG_PORT = 29517  # loopback port of the GLOO ping-pong
RENDEZVOUS_WAIT_S = 0.03  # the receiver posts this long after the sender started
STREAM_MESSAGE_BYTES = 262144  # the bulk stream's messages
STREAM_S = 0.4  # the bulk stream lasts about this long at the link's rate
STREAM_WINDOW = 8  # its messages in flight each way
DELAY_BYTES = 256  # the message the link's delay distribution is measured with
DELAY_REPS = 300  # its round trips (the first 3 dropped)
DELAY_LEVELS = (0.0, 0.5, 0.9, 0.99, 1.0)  # the quantile levels of the distribution kept
RUNTIME_BYTES = 256  # the message the runtime's own cost is measured with
RUNTIME_ECHOES = 200  # round trips it is measured over
STREAM_FIELDS = ("network_cpu_s_per_byte", "stream_cpu_s_per_byte", "stream_bytes_per_s",
                 "stream_busy_share", "runtime_cpu_s")  # MessageCosts' single figures


@dataclass(frozen=True)
class MessageCosts:
    """What one GLOO message costs, by payload size in bytes."""

    wall_s: dict[int, float]  # one-way time
    cpu_s: dict[int, float]  # CPU time at one end (its send or its receive)
    # a receive posted while the sender has long been waiting: from posting to the data
    # (GLOO's notification one way, then the data the other), as the receiver times it
    rendezvous_s: dict[int, float] = field(default_factory=dict)
    # both ends send one message of the size to the other at once (after a barrier), as
    # a two-device exchange does: until both have arrived, as device 1 times it
    exchange_s: dict[int, float] = field(default_factory=dict)
    # the host's CPU beyond the two processes per byte of a bulk stream (None: not measured)
    network_cpu_s_per_byte: float | None = None
    # the two processes' CPU over the same stream, per byte at one end (a send or a receive)
    stream_cpu_s_per_byte: float | None = None
    # the stream's payload rate each way, and the share of the host's cores busy meanwhile
    stream_bytes_per_s: float | None = None
    stream_busy_share: float | None = None
    # CPU per end of a RUNTIME_BYTES message sent and taken through the real runs' runtime
    # (driver loop, GLOO transport) instead of plain send/recv
    runtime_cpu_s: float | None = None
    # the one-way delay of a DELAY_BYTES message beyond the link's least, microseconds,
    # by its quantiles ([q, us] pairs, DELAY_LEVELS; a LinkVariability's delay_us);
    # empty: not measured
    delay_us: list[tuple[float, float]] = field(default_factory=list)
    # how much later a small exchange ends right after every device computed for a
    # while than after none, [busy ms, extra us] pairs (busy_exchange.py: all the
    # group's devices, not only these two); empty: not measured
    busy_send_us: list[tuple[float, float]] = field(default_factory=list)

    def as_json(self) -> str:
        return json.dumps(asdict(self))

    def least(self, other: MessageCosts) -> MessageCosts:
        """Each figure the smaller of two measurements of the same link: a ping-pong the
        host disturbed (another machine's load, a process still starting) only ever
        reads slower, so the smaller is the link's."""
        def low(a: float | None, b: float | None) -> float | None:
            return b if a is None else a if b is None else min(a, b)

        sizes = [{k: min(v, theirs.get(k, v)) for k, v in mine.items()}
                 for mine, theirs in ((self.wall_s, other.wall_s), (self.cpu_s, other.cpu_s),
                                      (self.rendezvous_s, other.rendezvous_s),
                                      (self.exchange_s, other.exchange_s))]
        # the faster stream's figures, together (its rate and how busy it kept the host)
        streams = [c for c in (self, other) if c.stream_bytes_per_s is not None]
        fast = max(streams, key=lambda c: c.stream_bytes_per_s or 0.0) if streams else self
        return MessageCosts(*sizes, network_cpu_s_per_byte=low(
            self.network_cpu_s_per_byte, other.network_cpu_s_per_byte),
            stream_cpu_s_per_byte=low(self.stream_cpu_s_per_byte, other.stream_cpu_s_per_byte),
            stream_bytes_per_s=fast.stream_bytes_per_s,
            stream_busy_share=fast.stream_busy_share,
            runtime_cpu_s=low(self.runtime_cpu_s, other.runtime_cpu_s),
            delay_us=min((c.delay_us for c in (self, other) if c.delay_us),
                         key=_upper_decile, default=[]),
            busy_send_us=mean_pairs(self.busy_send_us, other.busy_send_us))

    @classmethod
    def from_json(cls, text: str) -> MessageCosts:
        raw = json.loads(text)
        sizes = ({int(k): v for k, v in raw.get(part, {}).items()}
                 for part in ("wall_s", "cpu_s", "rendezvous_s", "exchange_s"))
        delay_us, busy_us = ([(float(a), float(b)) for a, b in raw.get(key, [])]
                             for key in ("delay_us", "busy_send_us"))
        return cls(*sizes, **{k: raw.get(k) for k in STREAM_FIELDS}, delay_us=delay_us,
                   busy_send_us=busy_us)


def _upper_decile(delay_us: list[tuple[float, float]]) -> float:
    """A delay distribution's 0.9 quantile (a disturbed ping-pong's is the larger)."""
    return dict(delay_us).get(0.9, delay_us[-1][1])


def delay_quantiles_us(round_trips_s: list[float]) -> list[tuple[float, float]]:
    """The one-way delay beyond the least, from a ping-pong's round trips: each round
    trip's excess over the fastest, halved (the two ways alike), microseconds, at
    DELAY_LEVELS (linear between order statistics)."""
    excess_us = (np.asarray(round_trips_s) - min(round_trips_s)) / 2 * 1e6
    return [(q, round(float(np.quantile(excess_us, q)), 2)) for q in DELAY_LEVELS]


def _worker(device: int, reps: int, init_method: str, interface: str, stream_bytes: int
            ) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = interface
    dist.init_process_group("gloo", init_method=init_method, rank=device, world_size=2,
                            timeout=timedelta(seconds=60))
    wall, cpu, rendezvous, exchange = {}, {}, {}, {}
    for size in PINGPONG_SIZES_BYTES:
        buf = torch.zeros(size // 4)
        wall[size], cpu[size] = _eager(device, buf, reps)
        rendezvous[size] = _rendezvous(device, buf, reps)
        exchange[size] = _exchange(device, buf, reps)
    stream = _stream(device, stream_bytes) if stream_bytes else {}
    runtime = {"runtime_cpu_s": _runtime(device, reps)}
    round_trips = _round_trips(device, torch.zeros(DELAY_BYTES // 4), DELAY_REPS)
    dist.destroy_process_group()
    if device == 0:
        print(json.dumps({"wall": wall, "cpu": cpu, **stream, **runtime,
                          "delay_us": delay_quantiles_us(round_trips[3:])}), flush=True)
    else:
        print(json.dumps({"rendezvous": rendezvous, "exchange": exchange, **stream}),
              flush=True)


def _eager(device: int, buf: torch.Tensor, reps: int) -> tuple[float, float]:
    """Median one-way wall and CPU time (per end) over a ping-pong's round trips."""
    rtts, cpus = [], []
    for _ in range(reps):
        cpu0 = time.process_time()
        rtts += _round_trips(device, buf, 1)
        cpus.append(time.process_time() - cpu0)
    return statistics.median(rtts[3:]) / 2, statistics.median(cpus[3:]) / 2


def _round_trips(device: int, buf: torch.Tensor, reps: int) -> list[float]:
    """Seconds of each of ``reps`` round trips of ``buf`` (device 0 sends first)."""
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        if device == 0:
            dist.send(buf, 1)
            dist.recv(buf, 1)
        else:
            dist.recv(buf, 0)
            dist.send(buf, 0)
        out.append(time.perf_counter() - start)
    return out


def _rendezvous(device: int, buf: torch.Tensor, reps: int) -> float:
    """Median time from a late receive's posting to its data (timed by device 1)."""
    waits = []
    for _ in range(reps):
        dist.barrier()
        if device == 0:
            dist.send(buf, 1)
        else:
            time.sleep(RENDEZVOUS_WAIT_S)
            start = time.perf_counter()
            dist.recv(buf, 0)
            waits.append(time.perf_counter() - start)
    return statistics.median(waits[3:]) if waits else 0.0


def _exchange(device: int, buf: torch.Tensor, reps: int) -> float:
    """Median time of a two-way exchange: each end sends ``buf`` and receives the other's."""
    other, into, times = 1 - device, torch.empty_like(buf), []
    for _ in range(reps):
        dist.barrier()
        start = time.perf_counter()
        for work in (dist.irecv(into, other), dist.isend(buf, other)):
            work.wait()
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:])


def _echo(device: int, reps: int) -> Generator[Send | Recv, Any, None]:
    """A program of the per-device interface that only bounces a small message."""
    other, shape = 1 - device, (RUNTIME_BYTES // 4,)
    for i in range(reps):
        tag = Tag("echo", i)
        if device == 1:
            yield Recv((Expect(other, tag, shape),))
        yield Send((Message(device, (other,), tag, torch.zeros(shape)),))
        if device == 0:
            yield Recv((Expect(other, tag, shape),))


def _runtime(device: int, reps: int) -> float:
    """CPU per message end of the same small ping-pong run as a program through the
    runtime the real runs use (``gloo.drive``: the driver loop, the GLOO transport):
    RUNTIME_ECHOES round trips after a warm-up of ``reps``."""
    drive(device, _echo(device, reps), 2)
    dist.barrier()
    cpu0 = time.process_time()
    drive(device, _echo(device, RUNTIME_ECHOES), 2)
    return (time.process_time() - cpu0) / (2 * RUNTIME_ECHOES)


def _stream(device: int, total_bytes: int) -> dict[str, Any]:
    """Both ends send ``total_bytes`` to each other at once, in messages of
    STREAM_MESSAGE_BYTES with STREAM_WINDOW of them in flight each way (a bulk stream,
    not a message at a time); this end's CPU time over it, and (device 0) the whole
    host's and the stream's wall time."""
    count = max(2, total_bytes // STREAM_MESSAGE_BYTES)
    out_buf = torch.zeros(STREAM_MESSAGE_BYTES // 4)
    in_bufs = [torch.empty(STREAM_MESSAGE_BYTES // 4) for _ in range(STREAM_WINDOW)]
    other, in_flight = 1 - device, deque()
    dist.barrier()
    host0, cpu0, start = CpuTimes.now(), time.process_time(), time.perf_counter()
    for i in range(count):
        if len(in_flight) == STREAM_WINDOW:
            for work in in_flight.popleft():
                work.wait()
        in_flight.append((dist.irecv(in_bufs[i % STREAM_WINDOW], other),
                          dist.isend(out_buf, other)))
    for pair in in_flight:
        for work in pair:
            work.wait()
    cpu = time.process_time() - cpu0
    dist.barrier()
    wall, busy = time.perf_counter() - start, busy_since(host0)
    return {"stream_bytes": 2 * count * STREAM_MESSAGE_BYTES, "stream_cpu_s": cpu,
            **({"stream_busy_s": busy, "stream_wall_s": wall} if device == 0 else {})}


def measure_message_costs(prefixes: tuple[list[str], list[str]], init_method: str,
                          interfaces: tuple[str, str], reps: int = 20, stream_bytes: int = 0
                          ) -> MessageCosts:
    """Median one-way time of a GLOO message by size in bytes and the CPU time one end
    spends on it (every thread of the process: GLOO's, and the kernel's network path
    charged to it), from a ping-pong where the receiver always waits first (the eager
    path); the time a receive posted late takes (``rendezvous_s``); with
    ``stream_bytes``, the host's CPU beyond the two processes per byte of a bulk stream.
    Two processes, on loopback or each behind a command prefix such as ``ip netns exec``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "prismsim.profiling.message_costs"]
    procs = [subprocess.Popen([*prefixes[d], *cmd, str(d), str(reps), init_method,
                               interfaces[d], str(stream_bytes)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
             for d in (0, 1)]
    outs = [p.communicate(timeout=600) for p in procs]
    if any(p.returncode != 0 for p in procs):
        errors = " | ".join(err.strip()[-500:] for _, err in outs)
        raise RuntimeError(f"the GLOO ping-pong failed: {errors}")
    costs, late = json.loads(outs[0][0]), json.loads(outs[1][0])
    return MessageCosts(*({int(k): v for k, v in part.items()} for part in (
        costs["wall"], costs["cpu"], late["rendezvous"], late["exchange"])),
        runtime_cpu_s=costs.get("runtime_cpu_s"), **_stream_costs(costs, late),
        delay_us=[(q, us) for q, us in costs["delay_us"]])


def _stream_costs(first: dict[str, Any], second: dict[str, Any]) -> dict[str, float]:
    """Per byte sent over the stream: the host's busy CPU beyond both processes', and
    the processes' own at one end (each byte is sent at one and received at the other);
    ``first`` and ``second``: what devices 0 and 1 reported."""
    if "stream_busy_s" not in first:
        return {}
    processes_s = first["stream_cpu_s"] + second["stream_cpu_s"]
    beyond_s = first["stream_busy_s"] - processes_s
    out = {"network_cpu_s_per_byte": max(beyond_s, 0.0) / first["stream_bytes"],
           "stream_cpu_s_per_byte": processes_s / (2 * first["stream_bytes"])}
    if first.get("stream_wall_s") and second.get("rendezvous"):
        # the stream's bytes over its time less the first message's two latencies
        wall_s = first["stream_wall_s"] - min(second["rendezvous"].values())
        out.update(stream_bytes_per_s=first["stream_bytes"] / 2 / wall_s,  # each way
                   stream_busy_share=first["stream_busy_s"] / (wall_s * (os.cpu_count() or 1)))
    return out


def loopback_message_costs(reps: int = 20) -> MessageCosts:
    """What a GLOO message costs between two processes of this host over loopback (no
    bulk stream)."""
    return measure_message_costs(([], []), f"tcp://127.0.0.1:{PINGPONG_PORT}", ("lo", "lo"),
                                 reps)


def testbed_message_costs(tb: Any, reps: int = 20) -> MessageCosts:
    """The same between devices 0 and 1 of a running testbed, with a bulk stream of
    about STREAM_S at its rate; and over all its devices, how much later an exchange
    ends after they all computed (``busy_exchange``)."""
    stream_bytes = max(4 * STREAM_MESSAGE_BYTES, int(tb.rate_bits_per_s * STREAM_S / 8))
    costs = measure_message_costs((tb.exec_prefix(0), tb.exec_prefix(1)),
                                  f"tcp://{tb.address(0)}:{PINGPONG_PORT}",
                                  (tb.interface(0, "d"), tb.interface(1, "d")), reps,
                                  stream_bytes)
    return replace(costs, busy_send_us=testbed_busy_send_us(tb))


def fit_message_cost(one_way_s: dict[int, float]) -> tuple[float, float]:
    """Least-squares fixed cost (s) and per-byte cost (s/byte) of a message."""
    sizes = np.array(sorted(one_way_s), dtype=float)
    times = np.array([one_way_s[int(s)] for s in sizes])
    per_byte, fixed = np.polyfit(sizes, times, 1)
    return float(max(fixed, 0.0)), float(max(per_byte, 0.0))


if __name__ == "__main__":
    _worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]))
