"""Run strategies for real: one worker process per device inside the testbed's namespaces,
GLOO between them, and collect their timings."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Collection
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prismsim.testbed.cpu_quota import CpuQuota
from prismsim.testbed.link_schedule import AdaptiveChoice, RateSchedule
from prismsim.testbed.network import PREFIX, Testbed

GLOO_PORT = 29500  # inside the master's own namespace, so never taken by anything else
RUN_TIMEOUT_S = 900  # a set of interleaved runs that takes longer than this has hung


class RunError(RuntimeError):
    """A worker failed or hung; carries the end of its error output."""


@dataclass(frozen=True)
class RealConfig:
    """One strategy to run: ``devices`` defaults to the process group's size."""

    strategy: str
    options: dict[str, Any] = field(default_factory=dict)
    devices: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"strategy": self.strategy, "options": self.options}
        if self.devices is not None:
            out["devices"] = self.devices
        return out


def _job(tb: Testbed, device: int, model: str, configs: list[RealConfig], batch: int,
         warmup: int, runs: int, out: Path) -> dict[str, Any]:
    """What one device's worker is to run (its JSON job file, ``worker.py``)."""
    return {"device": device, "devices": tb.n_devices, "model": model, "batch": batch,
            "configs": [c.as_dict() for c in configs], "warmup": warmup, "runs": runs,
            "init_method": f"tcp://{tb.address(0)}:{GLOO_PORT}",
            "interface": tb.interface(device, "d"), "out": str(out), "threads": 1}


def run_configs(tb: Testbed, model: str, configs: list[RealConfig], *, batch: int = 1,
                warmup: int = 2, runs: int = 5, arrivals_s: list[float] | None = None,
                decode: tuple[int, int] | None = None,
                cpu_share: dict[int, float] | None = None,
                adaptive: AdaptiveChoice | None = None) -> list[dict[str, Any]]:
    """Run ``configs`` interleaved (``warmup`` + ``runs`` rounds) on every device of
    ``tb``; returns one record per device, config and timed round. ``arrivals_s``: load
    mode instead (``warmup`` requests back to back, then requests arriving at those
    seconds, served in turn, by the first config or, with ``adaptive``, by the one the
    master chooses, the shapers following its link trace meanwhile): one record per
    request, from the master. ``decode`` (prompt tokens, tokens generated): each round
    a prompt's prefill and greedy generation instead of one forward. ``cpu_share``:
    device -> the share of one core its process may use (a CPU quota from its start,
    ``cpu_quota.py``)."""
    with tempfile.TemporaryDirectory(prefix="prismsim-real-") as tmp, ExitStack() as stack:
        procs, started = [], Path(tmp, "started")
        extra = {"tokens": (decode or (None, None))[0], "generate": (decode or (None, None))[1],
                 "arrivals_s": arrivals_s}
        if adaptive is not None:
            extra |= {"adaptive": adaptive.as_job(), "started": str(started)}
        for device in range(tb.n_devices):
            job_path, out = Path(tmp, f"job{device}.json"), Path(tmp, f"out{device}.jsonl")
            job = _job(tb, device, model, configs, batch, warmup, runs, out)
            job_path.write_text(json.dumps({**job, **extra}))
            procs.append(subprocess.Popen(
                [*tb.exec_prefix(device), sys.executable, "-m", "prismsim.testbed.worker",
                 str(job_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            if device in (cpu_share or {}):
                quota = CpuQuota(f"{PREFIX}{tb.run_id}-q{device}", cpu_share[device])
                stack.enter_context(quota).add(procs[-1].pid)
        schedule = _schedule(tb, adaptive, arrivals_s, started)
        with schedule or ExitStack():
            _wait_all(procs)
        if schedule is not None and schedule.error is not None:
            raise RunError(f"the link trace could not be replayed: {schedule.error}")
        return [json.loads(line) for device in range(tb.n_devices)
                for line in Path(tmp, f"out{device}.jsonl").read_text().splitlines()]


def _schedule(tb: Testbed, adaptive: AdaptiveChoice | None, arrivals_s: list[float] | None,
              started: Path) -> RateSchedule | None:
    """The shapers' schedule of ``adaptive``'s trace (None: no trace)."""
    if adaptive is None or not arrivals_s:
        return None
    return RateSchedule(tb, adaptive.rate_changes(), started)


def failure_line(device: int, returncode: int, stderr: str) -> str:
    """One line for a worker that ended badly: the signal that killed it, or the last
    line it wrote to its error output (the exception)."""
    if returncode < 0:
        return (f"device {device} was killed ({signal.Signals(-returncode).name}) during the "
                f"run; the other devices stopped with it")
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return f"device {device} failed: {lines[-1] if lines else f'exit status {returncode}'}"


def _first_failure(procs: list[subprocess.Popen], errors: list[str],
                   stopped: Collection[int] = ()) -> str | None:
    """Why the run failed (None: it did not): a worker killed by a signal first, then
    one whose error is its own (not a peer's connection closing under it); workers the
    runner ``stopped`` itself after another failed are not the reason."""
    failed = [(proc.returncode >= 0, "Connection closed by peer" in err, d)
              for d, (proc, err) in enumerate(zip(procs, errors, strict=True))
              if proc.returncode != 0 and d not in stopped]
    if not failed:
        return None
    device = min(failed)[2]
    return failure_line(device, procs[device].returncode, errors[device])


POLL_S = 0.1  # how often the runner looks at its workers
GRACE_S = 5.0  # after one worker failed, how long the others have to end on their own


def _drain(proc: subprocess.Popen, errors: list[str], device: int) -> threading.Thread:
    """A thread reading the worker's output to its end (so it never blocks on a full
    pipe); its error output lands in ``errors[device]``."""
    def read() -> None:
        errors[device] = proc.communicate()[1] or ""

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _stop_after_failure(procs: list[subprocess.Popen]) -> set[int]:
    """Wait until every worker has ended, or one has failed and the others had
    GRACE_S to follow: those still running then are killed; their devices returned.
    RunError when the run takes over RUN_TIMEOUT_S."""
    deadline, failed_at = time.monotonic() + RUN_TIMEOUT_S, None
    while any(proc.poll() is None for proc in procs):
        now = time.monotonic()
        if now > deadline:
            raise RunError(f"the devices did not finish in {RUN_TIMEOUT_S} s")
        if failed_at is None and any(proc.poll() not in (None, 0) for proc in procs):
            failed_at = now
        if failed_at is not None and now - failed_at > GRACE_S:
            stopped = {d for d, proc in enumerate(procs) if proc.poll() is None}
            for d in stopped:
                procs[d].kill()
            return stopped
        time.sleep(POLL_S)
    return set()


def _wait_all(procs: list[subprocess.Popen]) -> None:
    errors = [""] * len(procs)
    readers = [_drain(proc, errors, d) for d, proc in enumerate(procs)]
    try:
        stopped = _stop_after_failure(procs)
        for reader in readers:
            reader.join()
        if (why := _first_failure(procs, errors, stopped)) is not None:
            raise RunError(why)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
