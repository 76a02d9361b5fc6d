"""Memory from the traced programs: each device's resident bytes (the weights its steps
read) and each compute step's peak live bytes, against values worked out by hand."""

from __future__ import annotations

import json

import pytest
import torch

from prismsim.cost.op_record import record_ops, record_step
from prismsim.executors import trace_cache
from prismsim.executors.trace import trace_workload
from prismsim.executors.trace_cache import workload_key
from prismsim.models.load import load_model
from prismsim.workload import FORMAT, Workload

F32 = 4  # bytes

# vit-tiny (prismsim's catalog): ViT/16 at 224x224 (197 tokens), 3 channels, d = 192,
# 4 blocks of 3 heads (64 dims) with an MLP of 768, a 10-class head on [CLS]
D, BLOCKS, FF, CLASSES, TOKENS, HEAD_DIM = 192, 4, 768, 10, 197, 64
EMBED = 3 * 16 * 16 * D + D + D + TOKENS * D  # patch conv and bias, [CLS], positions
LINEAR = D * D + D  # q, k, v, o: weight and bias
BLOCK = 2 * 2 * D + 4 * LINEAR + (D * FF + FF) + (FF * D + D)  # 2 LayerNorms, attn, MLP
HEAD = 2 * D + D * CLASSES + CLASSES  # final LayerNorm, classifier
BLOCKS_BYTES = BLOCKS * BLOCK * F32  # 7,117,824
ALL_BYTES = (EMBED + BLOCKS * BLOCK + HEAD) * F32  # 7,869,736


def _tp_block_bytes(rows: int, cols: int) -> int:
    """A tensor_parallel device's share of one block: q/k/v rows and the matching o
    columns for its heads, fc1 rows and fc2 columns for its MLP columns, and, whole on
    every device, both LayerNorms and the o and fc2 biases (added after the AllReduce)."""
    replicated = 2 * 2 * D + 2 * D
    return (replicated + 3 * (rows * D + rows) + D * rows + (cols * D + cols) + D * cols) * F32


@pytest.fixture(scope="module")
def vit_tiny_params_bytes() -> int:
    stack = load_model("vit-tiny")
    return sum(p.numel() * p.element_size() for p in stack.hf.parameters())


def test_the_hand_count_is_the_loaded_models(vit_tiny_params_bytes: int) -> None:
    assert ALL_BYTES == vit_tiny_params_bytes == 7_869_736
    assert BLOCKS_BYTES == 7_117_824


def test_single_holds_every_parameter_once() -> None:
    wl = trace_workload("vit-tiny", "single", 1)
    assert wl.resident_bytes == [ALL_BYTES]
    assert all(t.live_bytes == 0 for t in wl.tasks[0] if t.kind != "compute")
    assert all(t.live_bytes > 0 for t in wl.tasks[0] if t.kind == "compute")


def test_voltage_replicates_the_blocks_the_master_embeds_and_classifies() -> None:
    wl = trace_workload("vit-tiny", "voltage", 2)
    assert wl.resident_bytes == [ALL_BYTES, BLOCKS_BYTES]


def test_tensor_parallel_shards_the_blocks() -> None:
    """3 heads on 2 devices: 2 and 1 (128 and 64 rows of q/k/v); 384 MLP columns each."""
    wl = trace_workload("vit-tiny", "tensor_parallel", 2)
    device0, device1 = _tp_block_bytes(128, 384), _tp_block_bytes(64, 384)
    # the two shares make one block, with its LayerNorms and two biases held twice
    assert device0 + device1 == (BLOCK + 2 * 2 * D + 2 * D) * F32
    assert wl.resident_bytes == [(EMBED + HEAD) * F32 + BLOCKS * device0, BLOCKS * device1]
    # device 1's MLP step: x [197, 192] given; fc1's [197, 384] and GELU's output live at
    # once (the LayerNorm's output died at fc1)
    (mlp,) = [t for t in wl.tasks[1] if t.label == "L0.mlp"]
    assert mlp.live_bytes == (TOKENS * D + 2 * TOKENS * 384) * F32 == 756_480


def test_a_step_by_hand() -> None:
    """y = relu(x @ W) + b: x [4, 8] given (128 B) throughout; x @ W [4, 16] (256 B) and
    its relu live together, then the relu and the sum: 128 + 256 + 256."""
    w, b, x = torch.randn(8, 16), torch.randn(16), torch.randn(4, 8)
    step = record_step(lambda x: (x @ w).relu() + b, (x,))
    assert step.live_bytes == 128 + 256 + 256
    assert sorted(step.resident.values()) == [16 * F32, 8 * 16 * F32]
    assert torch.equal(step.result, (x @ w).relu() + b)
    _, memory_bytes, ops = record_ops(lambda x: (x @ w).relu() + b, (x,))
    assert (step.memory_bytes, step.ops) == (memory_bytes, ops)


def test_views_share_their_storage_and_temporaries_die_at_their_last_use() -> None:
    """ops: mm -> t0, relu -> t1 (t0 dead), two views of t1, t1 + view -> t2, sum -> t3
    [16] (64 B, returned), a slice of x (a view of the argument). Most at relu and at the
    add: x 128 + two [4, 16] storages of 256 (the view is t1 itself, not 256 more)."""
    w, x = torch.randn(8, 16), torch.randn(4, 8)

    def fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = (x @ w).relu()
        s = a + a.view(16, 4).view(4, 16)
        return s.sum(dim=0), x[:2]

    assert record_step(fn, (x,)).live_bytes == 128 + 256 + 256


def test_a_weight_read_transposed_counts_once_a_slice_its_own_bytes() -> None:
    w, v, x = torch.randn(8, 16), torch.randn(8, 32), torch.randn(4, 8)
    step = record_step(lambda x: (x @ w) @ w.t() + x @ v[:, :8], (x,))
    assert sum(step.resident.values()) == (8 * 16 + 8 * 8) * F32  # w once, 8 of v's columns


def test_a_constant_made_in_a_step_is_not_a_weight() -> None:
    x = torch.randn(4, 8)
    step = record_step(lambda x: x * torch.tensor([3.0]), (x,))
    assert step.resident == {}
    assert step.live_bytes == 128 + 4 + 128


def test_memory_round_trips_and_keys_the_cache() -> None:
    wl = trace_workload("vit-tiny", "voltage", 2)
    again = Workload.from_json(wl.to_json())
    assert again.resident_bytes == wl.resident_bytes
    assert [t.live_bytes for t in again.tasks[1]] == [t.live_bytes for t in wl.tasks[1]]
    assert json.loads(wl.to_json())["format"] == FORMAT == 9


def test_the_cache_key_follows_the_format(monkeypatch: pytest.MonkeyPatch) -> None:
    def key() -> str:
        return workload_key("vit-tiny", "single", 1, {}, tokens=None, batch=1, wire="fp32",
                            weights=None)

    now = key()
    monkeypatch.setattr(trace_cache, "FORMAT", 7)
    assert key() != now  # a format-7 file is never found: traced again
