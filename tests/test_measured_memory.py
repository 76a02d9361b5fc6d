"""The memory model (``sim/memory.py``, from the traced programs) against each device's
memory measured while the in-memory executor runs: the weights its program holds and the
most its allocations (torch's allocator, through the profiler's memory events) hold at
once. The measuring parts by hand first, then SmolLM2-135M (the pinned
``smollm2-135m-gguf`` asset) within 10 % per device, prefill and generation. At 64
tokens the weights are over 96 % of every device's figure."""

from __future__ import annotations

import functools

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from prismsim.executors.measured_memory import (
    allocations,
    device_turn,
    held_weights_bytes,
    live_peaks_bytes,
    measure_memory,
    storages_bytes,
)
from prismsim.executors.trace_cache import WorkloadCache
from prismsim.models.load import load_model
from prismsim.models.stack import ModelStack
from prismsim.sim import DeviceSpec
from prismsim.sim.memory import device_memory

F32 = 4  # bytes
TOKENS, GENERATE = 64, 4
TOLERANCE = 0.10


def test_a_storage_counts_once_however_many_views_share_it() -> None:
    w, other = torch.zeros(8, 16), torch.zeros(3)
    assert storages_bytes([w, w.t(), w[:2], None, other]) == (8 * 16 + 3) * F32


def test_each_device_keeps_what_it_allocated_until_it_is_freed_anywhere() -> None:
    """device 0 allocates 100 and 50 bytes, device 1 60; device 1 frees device 0's 100
    and allocates 30 at the same address; a free of an address made before the run
    counts for nobody, an allocation outside every turn neither."""
    events = [(0, 1, 100), (0, 2, 50), (1, 3, 60), (1, 1, -100), (1, 1, 30), (None, 4, 500),
              (0, 9, -70), (0, 2, -50), (1, 4, -500)]
    assert live_peaks_bytes(events, 2) == [150, 90]


def test_the_profiler_tells_whose_turn_an_allocation_was() -> None:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with device_turn(0):
            kept = torch.ones(1000)  # 4,000 bytes, device 0's
        with device_turn(1):
            del kept  # freed by device 1, still charged to device 0
            torch.ones(10).sum()
    events = allocations(prof)
    (ptr,) = [ptr for _, ptr, size in events if size == 1000 * F32]
    assert (0, ptr, 1000 * F32) in events and (1, ptr, -1000 * F32) in events
    assert live_peaks_bytes(events, 2)[0] == 1000 * F32


def test_tensor_parallel_shards_hold_the_whole_model_between_them() -> None:
    """llama-tiny on 2 devices: their shards and the master's embedding and head make the
    whole model, with each block's two norms and rotary buffers on both."""
    stack = load_model("llama-tiny")
    whole = held_weights_bytes(stack, "single", 0, 1)
    assert whole == storages_bytes(stack.hf.parameters()) + storages_bytes(stack.hf.buffers())
    both = sum(held_weights_bytes(stack, "tensor_parallel", p, 2) for p in range(2))
    kept_whole = storages_bytes([t for b in stack.blocks for t in
                                 (*b.ln_attn.parameters(), *b.ln_mlp.parameters(),
                                  *b.buffers())])  # the rotary module: one for all blocks
    assert both == whole + kept_whole


@functools.cache
def _smollm2() -> ModelStack:
    """Loaded once: the trace and the measured run of every configuration share it."""
    return load_model("smollm2-135m")


@pytest.mark.parametrize("generate", [None, GENERATE])
@pytest.mark.parametrize(("strategy", "devices"),
                         [("single", 1), ("voltage", 2), ("tensor_parallel", 2)])
def test_the_model_is_within_10_percent_of_the_measured_memory(
        strategy: str, devices: int, generate: int | None) -> None:
    """Per device, weights and the fullest step with the KV cache kept beside it; the
    model's message buffers and runtime are left out (one process holds neither)."""
    wl = WorkloadCache().get(_smollm2(), strategy, devices, tokens=TOKENS, generate=generate)
    model = device_memory(wl, DeviceSpec(peak_gflops=1.0))
    measured = measure_memory(_smollm2(), strategy, devices, tokens=TOKENS, generate=generate)
    for p, (m, got) in enumerate(zip(model, measured, strict=True)):
        expected = m.weights_bytes + m.live_bytes
        assert got.peak_bytes == pytest.approx(expected, rel=TOLERANCE), (
            f"device {p}: measured {got} ({got.peak_bytes:,} bytes), model weights "
            f"{m.weights_bytes:,} + live {m.live_bytes:,} = {expected:,}")
