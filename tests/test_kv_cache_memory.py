"""The KV cache as its own line of a device's memory, against values worked out by hand:
what each device keeps after generating from a prompt (single, voltage with split KV,
tensor_parallel by KV heads), what a step holds beside its arguments, and the JSON."""

from __future__ import annotations

from prismsim.executors.trace import trace_workload
from prismsim.executors.trace_cache import WorkloadCache
from prismsim.sim import DeviceSpec
from prismsim.sim.memory import device_memory
from prismsim.strategies.program import DeviceContext
from prismsim.workload import Workload

F32 = 4  # bytes
# llama-tiny (prismsim's catalog): 2 layers, 8 query heads over d = 128 (16 dims each),
# 4 KV heads
LAYERS, KV_HEADS, HEAD_DIM = 2, 4, 16
PROMPT, GENERATE = 16, 5
LAYER_ROW = 2 * KV_HEADS * HEAD_DIM * F32  # one token's K and V in one block: 512 bytes
ROW = LAYERS * LAYER_ROW  # 1,024 bytes
# the last generated token is chosen, never fed back: the cache ends at T + G - 1 rows
ROWS = PROMPT + GENERATE - 1  # 20


def _trace(strategy: str, devices: int, **options) -> Workload:
    return WorkloadCache().get("llama-tiny", strategy, devices, tokens=PROMPT,
                               generate=GENERATE, **options)


def test_single_keeps_every_row_of_every_block() -> None:
    """2 x 2 layers x 4 KV heads x 16 x (16 + 5 - 1) x 4 bytes = 20,480."""
    wl = _trace("single", 1)
    assert wl.kv_cache_bytes == [ROWS * ROW] == [20_480]


def test_voltage_split_kv_keeps_each_devices_own_rows() -> None:
    """Prompt 8 + 8: device 0 keeps its 8 rows; the last (which decodes) its 8 and the
    4 rows fed back; together the single device's cache."""
    wl = _trace("voltage", 2, decode="split_kv")
    assert wl.kv_cache_bytes == [8 * ROW, 12 * ROW] == [8_192, 12_288]
    assert sum(wl.kv_cache_bytes) == ROWS * ROW


def test_voltage_local_the_decoding_device_keeps_all_the_others_none() -> None:
    wl = _trace("voltage", 2, decode="local")
    assert wl.kv_cache_bytes == [0, ROWS * ROW]


def test_tensor_parallel_splits_the_cache_by_kv_heads() -> None:
    wl = _trace("tensor_parallel", 2)
    assert wl.kv_cache_bytes == [ROWS * ROW // 2] * 2 == [10_240] * 2


def test_a_prefill_alone_keeps_no_cache() -> None:
    assert _trace_prefill().kv_cache_bytes == [0]


def _trace_prefill() -> Workload:
    return WorkloadCache().get("llama-tiny", "single", 1, tokens=PROMPT)


def test_a_step_holds_the_cache_beside_its_arguments_once() -> None:
    """single, the last decode step (t4): block 1 attends over its own cache (19 rows,
    an argument, in its live bytes) while block 0's, just grown to 20 rows, is held
    beside it; the head after it holds both blocks' 20 rows."""
    (tasks,) = _trace("single", 1).tasks
    held = {t.label: t.held_bytes for t in tasks if t.kind == "compute"}
    assert held["L1.t4.block"] == ROWS * LAYER_ROW == 10_240
    assert held["t4.head"] == ROWS * ROW
    assert held["embed"] == 0  # before the prefill made any


def test_device_memory_reports_the_cache_and_counts_it_in_the_fullest_step() -> None:
    wl = _trace("tensor_parallel", 2)
    spec = DeviceSpec(peak_gflops=1.0)
    for p, m in enumerate(device_memory(wl, spec)):
        assert m.kv_cache_bytes == 10_240
        assert m.live_bytes == max(t.live_bytes + t.held_bytes for t in wl.tasks[p]
                                   if t.kind == "compute")
        assert m.live_bytes >= max(t.live_bytes for t in wl.tasks[p] if t.kind == "compute")
        assert m.peak_bytes == m.weights_bytes + m.live_bytes + m.buffers_bytes


def test_the_cache_round_trips() -> None:
    wl = trace_workload("llama-tiny", "voltage", 2, tokens=PROMPT, generate=GENERATE,
                        decode="split_kv")
    again = Workload.from_json(wl.to_json())
    assert again.kv_cache_bytes == wl.kv_cache_bytes == [8_192, 12_288]
    assert again.tasks == wl.tasks


def test_an_untraced_context_keeps_no_record() -> None:
    ctx = DeviceContext(0, (4,), 1, 8)
    ctx.hold("kv.L0", None)
    assert not hasattr(ctx, "held")
