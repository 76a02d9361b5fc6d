"""Scaling-aware softmax and causal masks against hand-computed values."""

import math

import torch

from prismsim.numerics.attention import attention, key_bias


def test_log_count_bias_by_hand():
    bias = key_bias([5], [3, 7], [1.0, 2.0], causal=False)
    assert torch.allclose(bias, torch.tensor([[0.0, math.log(2.0)]]))
    assert key_bias([0, 1], [0, 1], [1.0, 1.0], causal=False) is None


def test_scaled_key_equals_duplicated_key_by_hand():
    # one query, keys k1 (count 1) and k2 (count 2); scores 0 and log(3):
    # weights 1*e^0 : 2*e^log3 = 1 : 6 -> output (1*v1 + 6*v2) / 7
    q = torch.tensor([[[[1.0]]]])
    k = torch.tensor([[[[0.0], [math.log(3.0)]]]])
    v = torch.tensor([[[[7.0], [14.0]]]])
    bias = key_bias([0], [0, 0], [1.0, 2.0], causal=False)
    out = attention(q, k, v, bias, scaling=1.0)
    assert abs(out.item() - (7.0 + 6 * 14.0) / 7) < 1e-5


def test_causal_mask_on_global_positions():
    # device holding positions 4..5; keys: its own rows (4, 5) and a mean of 0..3
    # (last position 3, visible to both) and a mean of 6..7 (visible to neither)
    bias = key_bias([4, 5], [4, 5, 3, 7], [1.0, 1.0, 4.0, 2.0], causal=True)
    inf = float("-inf")
    expected = torch.tensor([[0.0, inf, math.log(4.0), inf], [0.0, 0.0, math.log(4.0), inf]])
    assert torch.equal(bias, expected)
