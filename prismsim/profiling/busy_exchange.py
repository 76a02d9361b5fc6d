"""How much later a GLOO message arrives when every core of the host was busy before it
was sent: both ends run a generic busy loop (a small matrix product, one torch thread)
for a stretch, then exchange a small message, against the same exchange with no stretch
before it. Run by the two processes of ``message_costs`` (on loopback, or between two
devices of a running testbed).

On the 2-vCPU host of ``docs/validation.md`` an exchange after both processes computed
for 1-20 ms took 1-2 ms longer on average than one after none: in a quarter to a half
of them, the message stalled 4-6 ms while GLOO's loop thread of one end spun (the
pair's lock taken by its own main thread, whose vCPU was not running). An exchange after
one end alone computed (the other waiting) does not stall, nor do plain TCP sockets.
The simulator's shared host adds the extra to a message whose sender computed while
the cores were all busy (``HostSpec.busy_send_us_by_busy_ms``).
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.distributed as dist

BUSY_MS = (1.0, 4.0, 16.0)  # the busy stretches before an exchange
BUSY_BYTES = 4096  # the message exchanged (small: its bytes take no time)
BUSY_REPS = 50  # exchanges after each stretch (the first 3 dropped)
PROBE_SIDE = 128  # the busy loop's matrix product: a 128 x 128 square, ~0.05 ms


def busy_loop(seconds: float, probe: torch.Tensor) -> None:
    """Compute for about ``seconds`` (one product past it at most)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        probe @ probe  # [128, 128]


def busy_exchange_waits(device: int, reps: int = BUSY_REPS) -> dict[float, float]:
    """Busy milliseconds -> the mean time, seconds, of a two-way exchange of a
    BUSY_BYTES message right after both ends computed that long (0.0: right after the
    previous exchange)."""
    other, probe = 1 - device, torch.randn(PROBE_SIDE, PROBE_SIDE)
    out_buf, in_buf = torch.zeros(BUSY_BYTES // 4), torch.empty(BUSY_BYTES // 4)
    waits: dict[float, float] = {}
    for busy_ms in (0.0, *BUSY_MS):
        dist.barrier()
        times = []
        for _ in range(reps):
            busy_loop(busy_ms * 1e-3, probe)
            start = time.perf_counter()
            for work in (dist.isend(out_buf, other), dist.irecv(in_buf, other)):
                work.wait()
            times.append(time.perf_counter() - start)
        waits[busy_ms] = statistics.fmean(times[3:])
    return waits


def busy_send_us(waits: dict[float, float]) -> list[tuple[float, float]]:
    """[busy ms, extra us] pairs: how much longer an exchange took after each busy
    stretch than after none (never below 0)."""
    idle_s = waits[0.0]
    return [(busy_ms, round(max(0.0, waits[busy_ms] - idle_s) * 1e6, 1))
            for busy_ms in sorted(waits) if busy_ms > 0]


def mean_pairs(a: list[tuple[float, float]], b: list[tuple[float, float]]
               ) -> list[tuple[float, float]]:
    """Two measurements of the same [busy ms, extra us] pairs averaged (each a mean
    over stalls that come or not: the smaller of two would read low); one alone if the
    other is empty."""
    if not a or not b:
        return a or b
    theirs = dict(b)
    return [(ms, round((us + theirs.get(ms, us)) / 2, 1)) for ms, us in a]
