"""Eager attention with an additive key bias: the one place strategies compute softmax.

Written with explicit matmuls (as HF's eager path) so FLOP counters see QK^T and AV.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, scaling: float) -> Tensor:
    """softmax(q k^T * scaling + bias) v, softmax in float32 as HF does.

    q [B, h, nq, dh]; k, v [B, h_kv, nk, dh]; bias broadcastable to [B, h, nq, nk].
    Grouped-query attention (h_kv < h): each K/V head serves h / h_kv consecutive query
    heads, repeated here, right before the products (as HF's ``repeat_kv``).
    """
    group = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, group), repeat_kv(v, group)  # [B, h, nk, dh]
    scores = torch.matmul(q, k.transpose(-1, -2)) * scaling
    if bias is not None:
        scores = scores + bias
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(weights, v)


def repeat_kv(t: Tensor, group: int) -> Tensor:
    """[B, h_kv, n, dh] -> [B, h_kv * group, n, dh], each head repeated ``group`` times in
    a row (HF's ``repeat_kv``)."""
    if group == 1:
        return t
    b, h, n, dh = t.shape
    return t[:, :, None].expand(b, h, group, n, dh).reshape(b, h * group, n, dh)


def key_bias(query_pos: Sequence[int], key_last_pos: Sequence[int],
             key_counts: Sequence[float], causal: bool) -> Tensor | None:
    """Additive bias [nq, nk] for keys that may stand for several tokens.

    Scaling-aware softmax (PRISM Eq. 13-15): a key that is the mean of c tokens gets
    weight c exp(s) / sum c' exp(s'), i.e. log(c) added to its score; this equals
    attending over the mean duplicated c times. Causal: a key is visible to a query at
    position t only if every token it summarizes is at a position <= t (Eq. 17 on
    global positions). Returns None when no key needs a bias.
    """
    counts = torch.tensor(key_counts, dtype=torch.float32)
    needs_scale = bool((counts != 1).any())
    if not (needs_scale or causal):
        return None
    bias = torch.log(counts).expand(len(query_pos), -1).clone()
    if causal:
        q = torch.tensor(query_pos)[:, None]
        k = torch.tensor(key_last_pos)[None, :]
        bias = bias.masked_fill(k > q, float("-inf"))
    return bias


def attention_lse(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, scaling: float
                  ) -> Tensor:
    """One shard's part of split-KV attention (flash-decoding): softmax(q k^T * scaling +
    bias) v over this shard's keys, and the log-sum-exp of its scores, packed as
    [B, h, nq, dh + 1] (the output, then the log-sum-exp) so it travels as one message.
    Shapes as :func:`attention`; :func:`merge_lse` combines the shards exactly."""
    group = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, group), repeat_kv(v, group)  # [B, h, nk, dh]
    scores = torch.matmul(q, k.transpose(-1, -2)) * scaling  # [B, h, nq, nk]
    if bias is not None:
        scores = scores + bias
    scores = scores.float()
    lse = torch.logsumexp(scores, dim=-1, keepdim=True)  # [B, h, nq, 1]
    out = torch.matmul(torch.exp(scores - lse).to(q.dtype), v)  # [B, h, nq, dh]
    return torch.cat([out, lse.to(q.dtype)], dim=-1)  # [B, h, nq, dh + 1]


def merge_lse(parts: Sequence[Tensor]) -> Tensor:
    """The flash-decoding combine: shards' packed outputs [B, h, nq, dh + 1] (from
    :func:`attention_lse`) merged into attention over all their keys [B, h, nq, dh]:
    each shard weighted by exp(its log-sum-exp - the overall one)."""
    packed = torch.stack(list(parts))  # [S, B, h, nq, dh + 1]
    out, lse = packed[..., :-1], packed[..., -1:]
    weights = torch.softmax(lse.float(), dim=0).to(out.dtype)  # [S, B, h, nq, 1]
    return (weights * out).sum(dim=0)
