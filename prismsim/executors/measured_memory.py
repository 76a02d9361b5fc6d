"""Each device's memory as the in-memory executor really uses it, measured, to hold the
memory model (``sim/memory.py``, from the traced programs) against.

Two parts, neither from the tracer's analysis of what a step reads and keeps:

* its weights: the bytes of the distinct storages of the parameters and buffers its
  program holds (single, voltage: the whole model; tensor_parallel: the shards its
  program was built with, the parts of each block it uses whole, and on the master the
  embedding and head);
* its live bytes: torch's own allocator, through the profiler's memory events. Every
  allocation made while a device runs (its program, the collectives it joins) is that
  device's until it is freed, wherever it is freed; the most a device has allocated
  and not yet freed at once is its live peak. Tensors made before the run (weights,
  inputs, tensor_parallel's shards) are not among them.

In one process a message is the sender's tensor itself, not a copy in a receive buffer:
it stays the sender's until the receiver lets it go, and there are no message buffers
besides (the model's ``buffers_bytes`` has nothing here to match).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any

import torch
from torch import Tensor, nn
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile, record_function

from prismsim.executors.memory import run_in_memory
from prismsim.models.load import load_model, random_inputs
from prismsim.models.stack import Block, ModelStack
from prismsim.strategies import make_decoding_programs, make_options, make_programs
from prismsim.strategies.contexts import make_contexts
from prismsim.strategies.decoding import Decode
from prismsim.strategies.tensor_parallel import Shard, shard
from prismsim.workload import MASTER

_TURN = "prismsim.device"  # profiler ranges of one device's turn: "prismsim.device3"


@dataclass(frozen=True)
class MeasuredMemory:
    """One device's memory, measured (bytes)."""

    weights_bytes: int  # distinct storages of the weights its program holds
    live_bytes: int  # the most it had allocated during its run and not yet freed, at once

    @property
    def peak_bytes(self) -> int:
        return self.weights_bytes + self.live_bytes


def storages_bytes(tensors: Iterable[Tensor | None]) -> int:
    """The bytes of the distinct storages of ``tensors`` (views and tied weights once)."""
    sizes = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
             for t in tensors if t is not None}
    return sum(sizes.values())


def _state(module: nn.Module) -> Iterator[Tensor]:
    return chain(module.parameters(), module.buffers())


def _shard_tensors(s: Shard) -> list[Tensor | None]:
    return [s.q_w, s.q_b, s.k_w, s.k_b, s.v_w, s.v_b, s.o_w, s.fc1_w, s.fc1_b, s.fc2_w,
            s.up_w, s.up_b]


def _kept_whole(block: Block) -> list[Tensor]:
    """What tensor_parallel uses of a block as it is: all but what its shards replace
    (the norms, the o and fc2 biases, the rotary module's buffers)."""
    linears = [m for m in (block.q, block.k, block.v, block.fc1, block.up) if m is not None]
    replaced = {id(t) for m in linears for t in m.parameters()}
    replaced |= {id(block.o.weight), id(block.fc2.weight)}
    return [t for t in _state(block) if id(t) not in replaced]


def held_weights_bytes(stack: ModelStack, strategy: str, device: int, devices: int) -> int:
    """The weights ``device``'s program holds: the whole model, or under tensor_parallel
    its shards and what it uses whole (the master: the embedding and head too). A shard
    counts its own bytes, what it holds on a device of its own: in one process a row
    slice is a view of the whole weight (``.contiguous()`` copies only column slices)."""
    if strategy != "tensor_parallel":
        return storages_bytes(_state(stack.hf))
    shards, whole = [], []
    for block in stack.blocks:
        shards += [t for t in _shard_tensors(shard(block, device, devices)) if t is not None]
        whole += _kept_whole(block)
    if device == MASTER:
        in_blocks = {id(t) for block in stack.blocks for t in _state(block)}
        whole += [t for t in _state(stack.hf) if id(t) not in in_blocks]
    return sum(t.numel() * t.element_size() for t in shards) + storages_bytes(whole)


Allocation = tuple[int | None, int, int]  # (device whose turn it was, address, bytes)


def allocations(prof: profile) -> list[Allocation]:
    """Every CPU allocation (bytes > 0) and free (< 0) the profiler saw, in order, with
    the device whose turn it happened in (None: outside every turn)."""
    out: list[Allocation] = []

    def walk(events: Sequence[Any], device: int | None) -> None:
        for e in events:  # siblings in the order they began
            if e.tag == _EventType.Allocation:
                fields = e.extra_fields
                if fields.device.type == "cpu":
                    out.append((device, fields.ptr, fields.alloc_size))
            name = e.name if e.tag == _EventType.TorchOp else ""
            here = int(name.removeprefix(_TURN)) if name.startswith(_TURN) else device
            walk(e.children, here)

    walk(prof.profiler.kineto_results.experimental_event_tree(), None)
    return out


def live_peaks_bytes(events: Iterable[Allocation], n_devices: int) -> list[int]:
    """Per device, the most bytes it had allocated and not yet freed at once; a free is
    charged to the device that allocated the address (frees of addresses allocated
    before the run, or outside every turn, to none)."""
    owner: dict[int, tuple[int, int]] = {}  # address -> (device, bytes)
    now, peak = [0] * n_devices, [0] * n_devices
    for device, ptr, size in events:
        if size < 0:
            if (held := owner.pop(ptr, None)) is not None:
                now[held[0]] -= held[1]
        elif device is not None:
            owner[ptr] = (device, size)
            now[device] += size
            peak[device] = max(peak[device], now[device])
    return peak


@contextmanager
def device_turn(device: int) -> Iterator[None]:
    """Marks what runs inside as ``device``'s turn, for ``allocations``."""
    with record_function(f"{_TURN}{device}"):
        yield


def measure_memory(model: str | nn.Module | ModelStack, strategy: str, devices: int, *,
                   tokens: int | None = None, batch: int = 1, generate: int | None = None,
                   seed: int = 0, **options: Any) -> list[MeasuredMemory]:
    """Run ``strategy`` on ``devices`` devices in memory, as ``trace_workload`` traces it
    (the same random inputs; with ``generate``, the prefill and as many tokens), and
    measure each device's memory."""
    stack = load_model(model, seed=seed)
    inputs = random_inputs(stack, batch=batch, tokens=tokens, seed=seed)
    opts = make_options(strategy, **options)
    contexts = make_contexts(stack, inputs, devices)
    with torch.no_grad():
        programs = (make_programs(strategy, contexts, stack, inputs, opts) if generate is None
                    else make_decoding_programs(strategy, contexts, stack, inputs, opts,
                                                Decode(steps=generate)))
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            run_in_memory(programs, turn=device_turn)
    live = live_peaks_bytes(allocations(prof), devices)
    return [MeasuredMemory(held_weights_bytes(stack, strategy, p, devices), live[p])
            for p in range(devices)]
