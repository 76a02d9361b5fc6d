"""How much later a GLOO message arrives when every device process of the host was
computing before it was sent: the P processes of a group (on loopback, or the P devices
of a running testbed) each run a generic busy loop (a small matrix product, one torch
thread) for a stretch, then send a small message to the next in a ring and receive one
from the previous; against the same exchange with no stretch before it.

On the 2-vCPU host of ``docs/validation.md`` an exchange after both of 2 processes
computed for 1-16 ms took 0.4-2.7 ms longer on average than one after none (no delay):
in a quarter to a half of them, the message stalled 4-6 ms while GLOO's loop thread of
one end spun (the pair's lock taken by its own main thread, whose vCPU was not
running). With 3 processes on the 2 cores, 0.8-4.6 ms. An exchange after one end alone computed
(the other waiting) does not stall, nor do plain TCP sockets. The simulator's shared
host delays a message whose sender computed while the cores were all busy by the
extra (``HostSpec.busy_send_us_by_busy_ms``).

Run as ``python -m prismsim.profiling.busy_exchange DEVICE DEVICES INIT_METHOD
INTERFACE``; :func:`testbed_busy_send_us` starts every device's end.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

BUSY_MS = (1.0, 4.0, 16.0)  # the busy stretches before an exchange
BUSY_BYTES = 4096  # the message exchanged (small: its bytes take no time)
BUSY_REPS = 50  # exchanges after each stretch (the first 3 dropped)
PROBE_SIDE = 128  # the busy loop's matrix product: a 128 x 128 square, ~0.05 ms
BUSY_PORT = 29518  # where the group meets, in the master's namespace or on loopback


def busy_loop(seconds: float, probe: torch.Tensor) -> None:
    """Compute for about ``seconds`` (one product past it at most)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        probe @ probe  # [128, 128]


def busy_exchange_waits(device: int, devices: int, reps: int = BUSY_REPS
                        ) -> dict[float, float]:
    """Busy milliseconds -> the mean time, seconds, of a ring exchange of a BUSY_BYTES
    message right after every device computed that long (0.0: right after the previous
    exchange), as ``device`` timed it."""
    probe = torch.randn(PROBE_SIDE, PROBE_SIDE)
    out_buf, in_buf = torch.zeros(BUSY_BYTES // 4), torch.empty(BUSY_BYTES // 4)
    after, before = (device + 1) % devices, (device - 1) % devices
    waits: dict[float, float] = {}
    for busy_ms in (0.0, *BUSY_MS):
        dist.barrier()
        times = []
        for _ in range(reps):
            busy_loop(busy_ms * 1e-3, probe)
            start = time.perf_counter()
            for work in (dist.isend(out_buf, after), dist.irecv(in_buf, before)):
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


def _worker(device: int, devices: int, init_method: str, interface: str) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = interface
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init_method, rank=device,
                            world_size=devices, timeout=timedelta(seconds=60))
    waits = busy_exchange_waits(device, devices)
    dist.destroy_process_group()
    print(json.dumps(busy_send_us(waits)), flush=True)


def measure_busy_send_us(prefixes: list[list[str]], init_method: str,
                         interfaces: list[str]) -> list[tuple[float, float]]:
    """[busy ms, extra us] pairs over ``len(prefixes)`` processes (each behind its
    command prefix, such as ``ip netns exec``): each busy stretch's extra, averaged over
    the devices."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "prismsim.profiling.busy_exchange"]
    n = len(prefixes)
    procs = [subprocess.Popen([*prefixes[d], *cmd, str(d), str(n), init_method,
                               interfaces[d]], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
             for d in range(n)]
    outs = [p.communicate(timeout=300) for p in procs]
    if any(p.returncode != 0 for p in procs):
        errors = " | ".join(err.strip()[-500:] for _, err in outs)
        raise RuntimeError(f"the GLOO busy exchange failed: {errors}")
    each = [json.loads(out) for out, _ in outs]
    return [(ms, round(statistics.fmean(dict(d)[ms] for d in each), 1)) for ms, _ in each[0]]


def testbed_busy_send_us(tb: Any) -> list[tuple[float, float]]:
    """The extras over every device of a running testbed."""
    devices = range(tb.n_devices)
    return measure_busy_send_us([tb.exec_prefix(d) for d in devices],
                                f"tcp://{tb.address(0)}:{BUSY_PORT}",
                                [tb.interface(d, "d") for d in devices])


def loopback_busy_send_us(devices: int = 2) -> list[tuple[float, float]]:
    """The extras over ``devices`` processes of this host on loopback."""
    return measure_busy_send_us([[] for _ in range(devices)],
                                f"tcp://127.0.0.1:{BUSY_PORT}", ["lo"] * devices)


if __name__ == "__main__":
    _worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
