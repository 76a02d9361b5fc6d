"""Traced FLOPs of a smollm2-135m prefill and of each decoded token, against a count from
its shapes: 2 x multiply-accumulates of every matmul with a weight, and QK^T and AV.

smollm2-135m: d 576, 30 blocks, 9 query heads and 3 KV heads of 64, SwiGLU 1536, vocabulary
49,152 (tied head). A 512-token prompt, 3 tokens generated: the first from the prefill's
last row, then two decode steps at positions 512 and 513.
"""

import re

import pytest

from prismsim.executors.trace import trace_workload
from prismsim.models.load import load_model

D, LAYERS, HEADS, KV_HEADS, DH, INTER, VOCAB = 576, 30, 9, 3, 64, 1536, 49152
PROMPT, GENERATE = 512, 3
Q_O = 2 * D * HEADS * DH  # q and o projections, weights per token per block
KV = 2 * D * KV_HEADS * DH  # k and v projections
MLP = 3 * D * INTER  # gate, up, down
HEAD = D * VOCAB
ATTN = 2 * 2 * DH * HEADS * LAYERS  # QK^T and AV FLOPs per (query, key) pair, all blocks
_STEP = re.compile(r"^(L\d+\.)?t(\d+)\.")


def _flops_by_step(wl) -> dict[int, int]:
    """FLOPs of every device together, per decode step (-1: the prefill's blocks)."""
    out: dict[int, int] = {}
    for task in (t for ts in wl.tasks for t in ts):
        match = _STEP.match(task.label)
        step = int(match.group(2)) if match else -1
        out[step] = out.get(step, 0) + task.flops
    return out


def _token_flops(keys: int) -> int:
    """One decoded token: every weight once, and attention over ``keys`` keys."""
    return 2 * ((Q_O + KV + MLP) * LAYERS + HEAD) + ATTN * keys


def test_the_weights_count_is_smollm2_135m():
    """The shapes above are the loaded model's: its 134,515,008 parameters (the 135M of its
    name) are the blocks' weights, the tied embedding and the norms."""
    norms = LAYERS * 2 * D + D
    stack = load_model("smollm2-135m")
    assert sum(p.numel() for p in stack.hf.parameters()) == 134_515_008
    assert (Q_O + KV + MLP) * LAYERS + HEAD + norms == 134_515_008


def test_one_device_prefill_and_decoded_tokens():
    by_step = _flops_by_step(trace_workload("smollm2-135m", "single", 1, tokens=PROMPT,
                                            generate=GENERATE))
    # the prompt's blocks: every weight on 512 rows, the full 512 x 512 score matrix
    assert by_step[-1] == 2 * PROMPT * (Q_O + KV + MLP) * LAYERS + ATTN * PROMPT ** 2
    assert by_step[-1] == 126_835_752_960
    assert by_step[0] == 2 * HEAD  # the head on the prompt's last row only
    # the token at position 512 attends over 513 keys (the prompt's and its own)
    assert by_step[1] == _token_flops(PROMPT + 1) == 304_418_304
    assert by_step[2] == _token_flops(PROMPT + 2)


def test_voltage_prefill_projects_keys_up_to_each_partition():
    """Rows 171/171/170: each device projects q, o and the MLP for its own rows, k and v
    for every row up to its partition's end, and scores its rows against those keys."""
    by_step = _flops_by_step(trace_workload("smollm2-135m", "voltage", 3, tokens=PROMPT,
                                            generate=GENERATE))
    ends, rows = (171, 342, 512), (171, 171, 170)
    linear = 2 * LAYERS * (PROMPT * (Q_O + MLP) + sum(ends) * KV)
    assert by_step[-1] == linear + ATTN * sum(r * e for r, e in zip(rows, ends, strict=True))
    assert by_step[-1] == 127_604_021_760


@pytest.mark.parametrize(("strategy", "devices", "options"),
                         [("voltage", 3, {}), ("voltage", 3, {"decode": "local"}),
                          ("tensor_parallel", 3, {})])
def test_exact_decoding_costs_one_devices_flops_per_token(strategy, devices, options):
    """Split-KV, local and tensor-parallel decoding split the same matmuls: every device
    together does one device's FLOPs per token (the merge is elementwise)."""
    by_step = _flops_by_step(trace_workload("smollm2-135m", strategy, devices,
                                            tokens=PROMPT, generate=GENERATE, **options))
    assert by_step[0] == 2 * HEAD
    assert [by_step[1], by_step[2]] == [_token_flops(PROMPT + 1), _token_flops(PROMPT + 2)]


def test_prism_decodes_over_its_rows_and_the_earlier_means():
    """P = 2, CR 4: the last device attends over its 256 rows, the 256 / 4 = 64 Segment
    Means of partition 0, and the new tokens."""
    by_step = _flops_by_step(trace_workload("smollm2-135m", "prism", 2, tokens=PROMPT,
                                            generate=GENERATE, cr=4))
    assert by_step[1] == _token_flops(256 + 64 + 1) == 291_147_264
    assert by_step[2] == _token_flops(256 + 64 + 2)
