"""One device of a real run: its own process, the same per-device program as the numerics
executor, messages through torch.distributed (GLOO over TCP), one torch thread.

Started by :mod:`prismsim.testbed.runner` as ``python -m prismsim.testbed.worker JOB``
(a JSON file: this device's number, the group's size, the model, the configurations,
rounds, where GLOO meets and where to write). Several strategies share one process
group and are run interleaved, each repetition after a barrier, so they see the same
machine state. Each device writes one JSON line per timed repetition: wall and CPU
seconds and every compute step's start and end (seconds from the barrier), and the
master's reading of the host-speed gauge for the round (``gauge.py``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from prismsim.executors.gloo import await_ready, drive
from prismsim.executors.memory import run_generation
from prismsim.executors.timed import TimedContext
from prismsim.models.load import load_model, random_inputs
from prismsim.profiling.gauge import Gauge
from prismsim.strategies import make_decoding_programs, make_options, make_programs
from prismsim.strategies.contexts import make_contexts
from prismsim.strategies.decoding import Decode, Generation
from prismsim.strategies.program import DeviceContext, Program
from prismsim.testbed.link_schedule import AdaptiveChoice
from prismsim.workload import MASTER

INIT_TIMEOUT_S = 120  # how long a device waits for the others to join
GAUGE_BATCHES = 5  # timed batches of the gauge's reference per round (~20 ms)
IDLE_GAUGE_S = 0.05  # serving: the master reads the gauge when idle at least this long
CHOICE_TAG = 0x7FFFFFFD  # the master's choice of configuration (READY_TAG's neighbour)


def _one_run(job: dict, cfg: dict, stack: Any, inputs: Any, ready: bool = True
             ) -> tuple[dict, Any]:
    """One request of ``cfg``; ``ready``: the master starts it once every other device
    has posted its first receives (after a barrier they leave it up to a one-way delay
    apart: a request finds a group idle and waiting, as the simulator has it)."""
    device, n_dev = job["device"], job["devices"]
    devices = cfg.get("devices", n_dev)
    if device >= devices:  # this strategy runs on fewer devices (single): wait it out
        return {}, None
    base = make_contexts(stack, inputs, devices)[device]
    ctx = TimedContext(base.device, base.sizes, base.batch, base.hidden)
    opts = make_options(cfg["strategy"], **cfg.get("options", {}))
    # every device knows the shapes; only the master's program sees the data
    program = _program(cfg["strategy"], ctx, stack, inputs, opts, job.get("generate"))
    if ready and device == MASTER and devices > 1:
        await_ready(devices)
    cpu0, ctx.t0 = time.process_time(), time.perf_counter()
    out = drive(device, program, devices, ready=ready and devices > 1)
    wall = time.perf_counter() - ctx.t0
    # t0_s: when this device started, on the host's monotonic clock that every process
    # shares (aligns the devices' steps)
    return {"wall_s": wall, "cpu_s": time.process_time() - cpu0, "steps": ctx.steps,
            "t0_s": ctx.t0}, out


def _program(name: str, ctx: DeviceContext, stack: Any, inputs: Any, opts: Any,
             generate: int | None) -> Program:
    """One forward, or with ``generate`` the prefill and that many tokens (greedy)."""
    if generate is None:
        return make_programs(name, [ctx], stack, inputs, opts)[0]
    return make_decoding_programs(name, [ctx], stack, inputs, opts, Decode(steps=generate))[0]


def _reference(job: dict, stack: Any, inputs: Any) -> Any:
    """What an exact run returns: one device's output, or with ``generate`` the logits
    of one device's greedy generation (every device: any may own decoding)."""
    if job.get("generate") is not None:
        return run_generation(stack, inputs, job["generate"]).logits  # [B, steps, V]
    return stack.reference(inputs) if job["device"] == MASTER else None


def _error(out: Any, ref: Any) -> float:
    got = out.logits if isinstance(out, Generation) else out
    return float((got - ref).abs().max())


def _serve_trace(job: dict, stack: Any, inputs: Any, out_file: Any) -> None:
    """Load mode: the master takes requests arriving at ``arrivals_s`` (seconds from a
    common barrier) first come first served, each as soon as it is done with its part
    of the one before; the other devices run request after request, each waiting for
    its input. With ``adaptive`` (``link_schedule.AdaptiveChoice``) the master chooses
    each request's configuration when it starts it and tells the others (a message of
    one number each). The master writes one line per request: arrival, start, finish,
    its last reading of the gauge (and the choice, with the rate it was made at)."""
    device, configs = job["device"], job["configs"]
    choose = AdaptiveChoice.from_job(job["adaptive"]) if job.get("adaptive") else None
    for _ in range(job["warmup"]):
        for cfg in configs:
            _one_run(job, cfg, stack, inputs, ready=False)
    gauge = Gauge() if device == MASTER else None
    gauge_s = gauge.seconds(GAUGE_BATCHES) if gauge else None
    if job["devices"] > 1:
        dist.barrier()
    t0, sends = time.perf_counter(), []
    if device == MASTER and job.get("started"):
        Path(job["started"]).write_text(f"{t0!r}\n")  # the rate schedule starts
    for i, arrival_s in enumerate(job["arrivals_s"]):
        if gauge is not None:
            gauge_s = _idle_reading(gauge, t0 + arrival_s, gauge_s)
        if device == MASTER and (wait_s := t0 + arrival_s - time.perf_counter()) > 0:
            time.sleep(wait_s)
        start_s = time.perf_counter() - t0
        index, mbps = _agree(job, choose, start_s, sends)
        record, _ = _one_run(job, configs[index], stack, inputs, ready=False)
        if device == MASTER:
            out_file.write(json.dumps({"request": i, "arrival_s": arrival_s,
                                       "start_s": start_s, "finish_s": start_s
                                       + record["wall_s"], "gauge_s": gauge_s,
                                       "choice": index, "bandwidth_mbps": mbps}) + "\n")
    for work in sends:
        work.wait()


def _idle_reading(gauge: Gauge, next_s: float, last_s: float | None) -> float | None:
    """The gauge read again while the master is idle, if the next request arrives at
    least IDLE_GAUGE_S after now (a reading, GAUGE_BATCHES batches as the table's
    reference was read, lasts ~20 ms; one batch alone reads ~15 % slow); else the last
    reading. A reading catches the host's speed of a moment, which moves by tens of
    percent from one second to the next here, far more than a long forward's: the
    prediction takes the median of the readings spread over the stream."""
    if next_s - time.perf_counter() < IDLE_GAUGE_S:
        return last_s
    return gauge.seconds(GAUGE_BATCHES)


def _agree(job: dict, choose: AdaptiveChoice | None, start_s: float, sends: list
           ) -> tuple[int, float | None]:
    """Which configuration serves the request the master starts at ``start_s``: the
    master's choice (and the rate it read), sent to every other device (the first,
    without ``adaptive``: no message)."""
    if choose is None:
        return 0, None
    if job["device"] != MASTER:
        index = torch.zeros(1, dtype=torch.int64)
        dist.recv(index, MASTER, tag=CHOICE_TAG)
        return int(index), None
    index, mbps = choose(start_s)
    sends += [dist.isend(torch.tensor([index]), d, tag=CHOICE_TAG)
              for d in range(1, job["devices"])]
    return index, mbps


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    torch.set_num_threads(job.get("threads", 1))
    device, n_dev = job["device"], job["devices"]
    stack = load_model(job["model"], seed=0)
    inputs = random_inputs(stack, batch=job.get("batch", 1), tokens=job.get("tokens"), seed=0)
    if n_dev > 1:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", job["interface"])
        dist.init_process_group("gloo", init_method=job["init_method"], rank=device,
                                world_size=n_dev, timeout=timedelta(seconds=INIT_TIMEOUT_S))
    ref = _reference(job, stack, inputs)
    out_path, gauge = Path(job["out"]), Gauge()
    with torch.no_grad(), out_path.open("w") as out_file:
        if job.get("arrivals_s") is not None:
            _serve_trace(job, stack, inputs, out_file)
        for rep in range(0 if job.get("arrivals_s") is not None
                         else job["warmup"] + job["runs"]):
            if n_dev > 1:
                dist.barrier()
            # the host's speed this round: the master times the gauge's reference while
            # the others wait at the next barrier
            gauge_s = gauge.seconds(GAUGE_BATCHES) if device == MASTER else None
            for i, cfg in enumerate(job["configs"]):
                if n_dev > 1:
                    dist.barrier()
                record, out = _one_run(job, cfg, stack, inputs)
                if rep < job["warmup"] or not record:
                    continue
                if out is not None:
                    record["max_abs_error"] = _error(out, ref)
                record.update(config=i, rep=rep - job["warmup"], device=device,
                              gauge_s=gauge_s)
                out_file.write(json.dumps(record) + "\n")
    if n_dev > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
