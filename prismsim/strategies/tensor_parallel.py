"""tensor_parallel: Megatron-LM intra-layer parallelism (Shoeybi et al. 2019).

Every device holds the full activations X [B, N, d]. Attention heads are split across
devices (device p computes its heads' Q/K/V and the matching input columns of the output
projection), and so are the MLP's hidden columns (fc1 rows, fc2 input columns). Each
sub-layer ends in an AllReduce of the partial outputs [B, N, d]: two per block. Exact.

Grouped-query attention (Llama): a device holds whole KV groups, its K/V heads and the
query heads that share them, so P <= n_kv_heads. A gated MLP shards its up rows as fc1's.
Rotary embeddings rotate Q and K at positions 0 .. N-1. Biases may be absent (None).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from prismsim.models.stack import Block, Inputs, ModelStack
from prismsim.numerics.attention import attention, key_bias
from prismsim.numerics.segments import partition_sizes
from prismsim.strategies.collectives import allreduce
from prismsim.strategies.program import ALL, MASTER, DeviceContext, Expect, Program, Recv, Tag, send
from prismsim.strategies.rowwise import EMBED

INPUT, HEAD = Tag("input"), Tag("head")


@dataclass(frozen=True)
class Options:
    # "ring": the bandwidth-optimal AllReduce NCCL and GLOO use; "direct": one all-to-all step.
    allreduce: Literal["ring", "direct"] = "ring"


@dataclass
class Shard:
    """Device p's slice of one block's weights (a bias None where the layer has none)."""

    q_w: Tensor
    q_b: Tensor | None
    k_w: Tensor
    k_b: Tensor | None
    v_w: Tensor
    v_b: Tensor | None
    o_w: Tensor  # input columns of the output projection for p's heads (no bias)
    fc1_w: Tensor
    fc1_b: Tensor | None
    fc2_w: Tensor  # input columns of fc2 for p's hidden units (no bias)
    up_w: Tensor | None = None  # gated MLP: p's rows of the up projection
    up_b: Tensor | None = None


def _span(sizes: tuple[int, ...], p: int, unit: int = 1) -> slice:
    start = sum(sizes[:p]) * unit
    return slice(start, start + sizes[p] * unit)


def _rows(t: Tensor | None, span: slice) -> Tensor | None:
    return None if t is None else t[span].contiguous()


def _check_devices(block: Block, n_dev: int) -> None:
    if n_dev <= block.n_kv_heads:
        return
    if block.group == 1:
        raise ValueError(f"tensor_parallel: {n_dev} devices but only {block.n_heads} heads")
    raise ValueError(f"tensor_parallel: {n_dev} devices but only {block.n_kv_heads} KV heads "
                     f"(each device needs whole KV groups of grouped-query attention)")


def shard(block: Block, p: int, n_dev: int, weights: Sequence[float] | None = None) -> Shard:
    """Device p's whole KV groups (its K/V heads and the query heads sharing them; plain
    heads without GQA) and MLP columns; equal counts, or in proportion to ``weights``."""
    _check_devices(block, n_dev)
    kv_sizes = partition_sizes(block.n_kv_heads, n_dev, weights)
    kv = _span(kv_sizes, p, block.head_dim)
    heads = _span(kv_sizes, p, block.head_dim * block.group)
    cols = _span(partition_sizes(block.fc1.out_features, n_dev, weights), p)
    up = block.up
    return Shard(
        q_w=block.q.weight[heads].contiguous(), q_b=_rows(block.q.bias, heads),
        k_w=block.k.weight[kv].contiguous(), k_b=_rows(block.k.bias, kv),
        v_w=block.v.weight[kv].contiguous(), v_b=_rows(block.v.bias, kv),
        o_w=block.o.weight[:, heads].contiguous(),
        fc1_w=block.fc1.weight[cols].contiguous(), fc1_b=_rows(block.fc1.bias, cols),
        fc2_w=block.fc2.weight[:, cols].contiguous(),
        up_w=None if up is None else up.weight[cols].contiguous(),
        up_b=None if up is None else _rows(up.bias, cols),
    )


def shard_qkv(block: Block, s: Shard, h: Tensor, positions: Tensor | None
              ) -> tuple[Tensor, Tensor, Tensor]:
    """This device's Q [B, h_p, n, dh] and K, V [B, h_kv_p, n, dh] for input rows h (after
    attn_in) at token positions [n] (used by rotary embeddings only)."""
    q = block.rotate(block.split_heads(F.linear(h, s.q_w, s.q_b)), positions)
    k = block.rotate(block.split_heads(F.linear(h, s.k_w, s.k_b)), positions)
    return q, k, block.split_heads(F.linear(h, s.v_w, s.v_b))


def shard_mlp(block: Block, s: Shard, h: Tensor) -> Tensor:
    """This device's hidden columns' share of fc2 for rows h (after mlp_in; no bias)."""
    up = None if s.up_w is None else F.linear(h, s.up_w, s.up_b)
    return F.linear(block.mlp_hidden(F.linear(h, s.fc1_w, s.fc1_b), up), s.fc2_w)


def attn_partial(block: Block, s: Shard, x: Tensor, bias: Tensor | None,
                 positions: Tensor | None = None) -> Tensor:
    """This device's heads: their contribution to the output projection (before bias)."""
    q, k, v = shard_qkv(block, s, block.attn_in(x), positions)
    return F.linear(block.merge_heads(attention(q, k, v, bias, block.scaling)), s.o_w)


def mlp_partial(block: Block, s: Shard, x: Tensor) -> Tensor:
    return shard_mlp(block, s, block.mlp_in(x))


def _plus(total: Tensor, bias: Tensor | None) -> Tensor:
    return total if bias is None else total + bias


def attn_finish(block: Block, x: Tensor, total: Tensor) -> Tensor:
    return block.attn_residual(x, _plus(total, block.o.bias))


def mlp_finish(block: Block, x: Tensor, total: Tensor) -> Tensor:
    return block.mlp_residual(x, _plus(total, block.fc2.bias))


def _input(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None) -> Any:
    """The master embeds and sends the whole sequence to every device."""
    if ctx.device != MASTER:
        inbox = yield Recv((Expect(MASTER, INPUT, (ctx.batch, ctx.n_tokens, ctx.hidden)),))
        return inbox.get(MASTER, INPUT)
    x = ctx.compute(EMBED, stack.embed, inputs)
    if ctx.n_devices > 1:
        yield send(MASTER, ALL, INPUT, x)
    return x


def program(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options
            ) -> Program:
    shards = [shard(b, ctx.device, ctx.n_devices) for b in stack.blocks]  # eager: errors now
    return _run(ctx, stack, inputs, options, shards)


def _run(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options,
         shards: list[Shard]) -> Program:
    positions = list(range(ctx.n_tokens))
    bias = key_bias(positions, positions, [1.0] * ctx.n_tokens, stack.causal)
    rope = (torch.arange(ctx.n_tokens, dtype=torch.float32),) if stack.has_rope else ()
    x = yield from _input(ctx, stack, inputs)
    for layer, (block, s) in enumerate(zip(stack.blocks, shards, strict=True)):
        attn, mlp = Tag("attn", layer), Tag("mlp", layer)
        part = ctx.compute(attn, partial(attn_partial, block, s), x, bias, *rope)
        total = yield from allreduce(ctx, part, attn, options.allreduce)
        x = ctx.compute(Tag("attn_out", layer), partial(attn_finish, block), x, total)
        part = ctx.compute(mlp, partial(mlp_partial, block, s), x)
        total = yield from allreduce(ctx, part, mlp, options.allreduce)
        x = ctx.compute(Tag("mlp_out", layer), partial(mlp_finish, block), x, total)
    if ctx.device != MASTER:
        return None
    return ctx.compute(HEAD, stack.apply_head, x)
