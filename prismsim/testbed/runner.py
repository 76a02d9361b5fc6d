"""Run strategies for real: one worker process per device inside the testbed's namespaces,
GLOO between them, and collect their timings."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prismsim.testbed.network import Testbed

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
                decode: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """Run ``configs`` interleaved (``warmup`` + ``runs`` rounds) on every device of
    ``tb``; returns one record per device, config and timed round. ``arrivals_s``: load
    mode instead (one config, ``warmup`` requests back to back, then requests arriving
    at those seconds, served in turn): one record per request, from the master.
    ``decode`` (prompt tokens, tokens generated): each round a prompt's prefill and
    greedy generation instead of one forward."""
    with tempfile.TemporaryDirectory(prefix="prismsim-real-") as tmp:
        procs = []
        for device in range(tb.n_devices):
            job_path, out = Path(tmp, f"job{device}.json"), Path(tmp, f"out{device}.jsonl")
            job = _job(tb, device, model, configs, batch, warmup, runs, out)
            tokens, generate = decode or (None, None)
            job_path.write_text(json.dumps({**job, "arrivals_s": arrivals_s,
                                            "tokens": tokens, "generate": generate}))
            procs.append(subprocess.Popen(
                [*tb.exec_prefix(device), sys.executable, "-m", "prismsim.testbed.worker",
                 str(job_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        _wait_all(procs)
        return [json.loads(line) for device in range(tb.n_devices)
                for line in Path(tmp, f"out{device}.jsonl").read_text().splitlines()]


def _wait_all(procs: list[subprocess.Popen]) -> None:
    try:
        errors = [(device, proc.communicate(timeout=RUN_TIMEOUT_S)[1])
                  for device, proc in enumerate(procs)]
        failed = [(device, err) for device, err in errors if procs[device].returncode != 0]
        if failed:  # the first to fail is usually the one that says why
            failed.sort(key=lambda f: "Connection closed by peer" in f[1])
            device, err = failed[0]
            raise RunError(f"device {device} failed: {err.strip()[-2000:]}")
    except subprocess.TimeoutExpired:
        raise RunError(f"the devices did not finish in {RUN_TIMEOUT_S} s") from None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
