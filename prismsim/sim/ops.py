"""A device's tasks prepared for replay on one device spec: typed operations with compute
times worked out once, cached by the replay per (workload, device, spec, merge).

The cache is keyed weakly by the workload, so it lives exactly as long as the workload
it was made from and the workload itself stays plain data.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from prismsim.sim.specs import DeviceSpec
from prismsim.workload import Message, Task, Workload, token_step


# One operation each; tuples, as the replay reads them in its innermost loop.
class Compute(NamedTuple):
    seconds: float
    label: str
    layer: int | None
class SendMessage(NamedTuple):
    message: int
    label: str  # message id
    stage_s: float = 0.0  # the device's copy of it to host memory first (0: none)
class PostReceives(NamedTuple):
    messages: tuple[int, ...]
class Receive(NamedTuple):
    messages: tuple[int, ...]
    label: str
    stage_s: float = 0.0  # the device's copies of them from host memory after (0: none)
Op = Compute | SendMessage | PostReceives | Receive


def compute_s(task: Task, spec: DeviceSpec, warm: bool = False) -> float:
    """The device's operator table at the task's own operator sizes if it has one (and
    the task was traced with its operators; ``warm``: the device's working set fits the
    cache, ``runs_warm``); else the roofline: the larger of compute time and memory time
    (if a bandwidth is given)."""
    if spec.operators is not None and task.ops:
        return spec.operators.seconds(task.ops, warm)
    t = task.flops / spec.flops_per_s
    mem = spec.mem_bytes_per_s
    return max(t, task.memory_bytes / mem) if mem else t


def runs_warm(wl: Workload, device: int, spec: DeviceSpec) -> bool:
    """Whether the device's decode steps find their operands in the host's cache: its
    working set (the weights its steps read, the most KV cache it holds, its largest
    step's live tensors) fits it (``OperatorTable.fits_cache``), as a small model's
    decoding loop does; a larger one streams its weights from memory each pass, as the
    table's products were timed. Only the steps of a token after the first run warm
    (``warm_step``): a forward or a prefill reads each block's weights once, after
    whatever ran before it."""
    if spec.operators is None or not wl.resident_bytes:
        return False
    live = max((t.live_bytes for t in wl.tasks[device] if t.kind == "compute"), default=0)
    kv = wl.kv_cache_bytes[device] if wl.kv_cache_bytes else 0
    return spec.operators.fits_cache(wl.resident_bytes[device] + kv + live)


def warm_step(task: Task, device_warm: bool) -> bool:
    """Whether a compute task runs warm on a device that ``runs_warm``: it is a step of
    decode step 1 or later, the token before it having read the same weights."""
    return device_warm and (token_step(task.label) or 0) >= 1


def compile_tasks(tasks: Sequence[Task], spec: DeviceSpec, merge: bool,
                  messages: Sequence[Message] = (), warm: bool = False) -> list[Op]:
    """Tasks as typed operations; consecutive compute steps merged into one hold when no
    timeline is recorded (same result, fewer events); a device that stages messages
    (``DeviceSpec.stages``) has each one's copy time worked out once (``messages``: the
    workload's, by id); ``warm``: ``runs_warm``."""
    ops: list[Op] = []
    for t in tasks:
        if t.kind == "compute":
            last = ops[-1] if ops else None
            if merge and isinstance(last, Compute):
                ops[-1] = Compute(last.seconds + compute_s(t, spec, warm_step(t, warm)),
                                  last.label, last.layer)
            else:
                ops.append(Compute(compute_s(t, spec, warm_step(t, warm)), t.label, t.layer))
        elif t.kind == "send":
            ops.append(SendMessage(t.messages[0], t.label, _stage_s(spec, messages, t)))
        elif t.kind == "post":
            ops.append(PostReceives(t.messages))
        else:
            ops.append(Receive(t.messages, t.label, _stage_s(spec, messages, t)))
    return ops


def _stage_s(spec: DeviceSpec, messages: Sequence[Message], task: Task) -> float:
    """The device's staging copies of a send's or a receive's messages, in turn."""
    if not spec.stages:
        return 0.0
    return sum(spec.staging_s(messages[m].payload_bytes) for m in task.messages)


# per workload: (device, id(spec), merge) -> (spec, operations). Keyed by the spec's
# identity, not its hash: hashing a spec hashes its whole operator table, which took
# longer than replaying the inference. The spec is kept with its operations, so its id
# cannot be reused by another spec while the entry lives.
_CACHE: weakref.WeakKeyDictionary[Workload, dict[tuple, tuple[DeviceSpec, list[Op]]]] = \
    weakref.WeakKeyDictionary()


def device_ops(wl: Workload, device: int, spec: DeviceSpec, merge: bool) -> list[Op]:
    """The compiled operations of one device (reused across points with this spec)."""
    per_workload = _CACHE.setdefault(wl, {})
    key = (device, id(spec), merge)
    hit = per_workload.get(key)
    if hit is None or hit[0] is not spec:
        hit = per_workload[key] = (spec, compile_tasks(
            wl.tasks[device], spec, merge, wl.messages, runs_warm(wl, device, spec)))
    return hit[1]


# per workload: (device, id(spec), merge) -> (spec, each compute task's mean seconds, the
# operation each is part of): what varying the compute times needs, worked out once
_STEPS: weakref.WeakKeyDictionary[Workload, dict[tuple, tuple[DeviceSpec, np.ndarray,
                                                               np.ndarray]]] = \
    weakref.WeakKeyDictionary()


def step_seconds(wl: Workload, device: int, spec: DeviceSpec, merge: bool
           ) -> tuple[np.ndarray, np.ndarray]:
    """Each compute task's mean seconds on ``spec`` and the index of the operation of
    ``device_ops`` it is part of (merged steps share one)."""
    per_workload = _STEPS.setdefault(wl, {})
    key = (device, id(spec), merge)
    hit = per_workload.get(key)
    if hit is None or hit[0] is not spec:
        seconds, owner, at = [], [], -1
        warm = runs_warm(wl, device, spec)
        for t in wl.tasks[device]:
            if t.kind == "compute":
                at += 0 if merge and owner and owner[-1] == at else 1
                seconds.append(compute_s(t, spec, warm_step(t, warm)))
                owner.append(at)
            else:
                at += 1
        hit = per_workload[key] = (spec, np.array(seconds), np.array(owner, dtype=np.intp))
    return hit[1], hit[2]


def compute_steps(wl: Workload, device: int) -> int:
    """How many compute tasks a device runs (each draws its own fast factor)."""
    return sum(t.kind == "compute" for t in wl.tasks[device])


def held_s(wl: Workload, device: int, spec: DeviceSpec, merge: bool,
           factors: np.ndarray) -> list[float]:
    """For each of ``device_ops``, the seconds it holds the device with each compute
    task's time times its factor (one a task, in program order): merged steps the sum of
    theirs; 0 for the operations that are not compute steps."""
    seconds, owner = step_seconds(wl, device, spec, merge)
    n_ops = len(device_ops(wl, device, spec, merge))
    return np.bincount(owner, weights=seconds * factors, minlength=n_ops).tolist()


def varied_ops(wl: Workload, device: int, spec: DeviceSpec, merge: bool,
               factors: np.ndarray) -> list[Op]:
    """``device_ops`` with each compute task's time times its factor (``held_s``)."""
    held = held_s(wl, device, spec, merge, factors)
    return [Compute(held[i], op.label, op.layer) if type(op) is Compute else op
            for i, op in enumerate(device_ops(wl, device, spec, merge))]


def shift_keys(ops: list[Op], base: int) -> list[Op]:
    """``ops`` with every message number moved up by ``base`` (a request's keys)."""
    out: list[Op] = []
    for op in ops:
        if isinstance(op, SendMessage):
            out.append(SendMessage(op.message + base, op.label, op.stage_s))
        elif isinstance(op, Receive):
            out.append(Receive(tuple(m + base for m in op.messages), op.label, op.stage_s))
        elif isinstance(op, PostReceives):
            out.append(PostReceives(tuple(m + base for m in op.messages)))
        else:
            out.append(op)
    return out
