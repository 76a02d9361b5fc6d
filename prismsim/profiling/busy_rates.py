"""How fast one torch thread runs a model's forward while k such processes compute at
once on this host, measured so that it can be trusted: every process starts once, then
all run an interleaved schedule of windows (k = 1, 2, ..., K, then again, ``rounds``
times) so that a host whose speed drifts moves every k alike; the median window per k
counts and the spread of the windows is kept. The load other processes put on the host
meanwhile is recorded (load average, and the CPU time stolen from this virtual machine).

Started per process as ``python -m prismsim.profiling.busy_rates JOB`` (JSON: the model,
the batch, the process's index and the windows).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch

from prismsim.executors.gloo import drive
from prismsim.executors.timed import TimedContext
from prismsim.models.load import load_model, random_inputs
from prismsim.profiling.hoststat import CpuTimes, stolen_share_since
from prismsim.strategies import single
from prismsim.strategies.contexts import make_contexts

STARTUP_S = 8.0  # for every process to import torch and build the model
GAP_S = 0.3  # between windows: the processes of one window have all stopped
MIN_FORWARDS = 2  # timed in a window even if they overrun it (a loaded machine)


@dataclass(frozen=True)
class Window:
    start_s: float  # time.time() at which it opens
    end_s: float
    busy: int  # processes computing in it (those with index < busy)


def schedule(max_busy: int, rounds: int, window_s: float, start_s: float) -> list[Window]:
    """k = 1..max_busy, ``rounds`` times over, one window each."""
    out, at = [], start_s
    for _ in range(rounds):
        for k in range(1, max_busy + 1):
            out.append(Window(at, at + window_s, k))
            at += window_s + GAP_S
    return out


def _forward(model: str, batch: int) -> Any:
    stack = load_model(model, seed=0)
    inputs = random_inputs(stack, batch=batch, seed=0)
    base = make_contexts(stack, inputs, 1)[0]

    def forward() -> float:
        ctx = TimedContext(base.device, base.sizes, base.batch, base.hidden)
        ctx.t0 = time.perf_counter()
        drive(0, single.program(ctx, stack, inputs, single.Options()), 1)
        return time.perf_counter() - ctx.t0
    return forward


def worker(job: dict[str, Any]) -> list[list[float]]:
    """One process's forward times in each window it takes part in ([] in the others)."""
    torch.set_num_threads(1)
    forward = _forward(job["model"], job["batch"])
    out = []
    with torch.no_grad():
        forward(), forward()  # warm up
        for w in (Window(**w) for w in job["windows"]):
            time.sleep(max(0.0, w.start_s - time.time()))
            times: list[float] = []
            while job["index"] < w.busy and (time.time() < w.end_s
                                              or len(times) < MIN_FORWARDS):
                times.append(forward())
            out.append(times)
    return out


def run_schedule(model: str, batch: int, max_busy: int, rounds: int, window_s: float
                 ) -> tuple[list[Window], list[list[list[float]]], dict[str, float]]:
    """Start ``max_busy`` processes once and run the schedule: the windows, each
    process's times per window, and the host's load meanwhile."""
    windows = schedule(max_busy, rounds, window_s, time.time() + STARTUP_S)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cpu0, load0 = CpuTimes.now(), os.getloadavg()[0]
    procs = [subprocess.Popen(
        [sys.executable, "-m", "prismsim.profiling.busy_rates", json.dumps(
            {"model": model, "batch": batch, "index": i,
             "windows": [w.__dict__ for w in windows]})],
        stdout=subprocess.PIPE, text=True, env=env) for i in range(max_busy)]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"profile worker failed (exit {proc.returncode})")
        results.append(json.loads(out))
    stolen = stolen_share_since(cpu0)
    host_load = {"load_average_before": load0, "load_average_after": os.getloadavg()[0],
                 "cpu_stolen_share": stolen}
    return windows, results, host_load


def busy_rates(flops: int, windows: list[Window], results: list[list[list[float]]]
               ) -> tuple[dict[int, float], dict[int, float]]:
    """GFLOP/s per process for each k (median window) and the spread of its windows
    (slowest over fastest, minus 1)."""
    per_k: dict[int, list[float]] = {}
    for i, w in enumerate(windows):
        times = [t for proc in results for t in proc[i]]
        per_k.setdefault(w.busy, []).append(flops / statistics.median(times) / 1e9)
    rates = {k: statistics.median(v) for k, v in per_k.items()}
    spread = {k: max(v) / min(v) - 1 for k, v in per_k.items()}
    return rates, spread


if __name__ == "__main__":
    print(json.dumps(worker(json.loads(sys.argv[1]))), flush=True)
