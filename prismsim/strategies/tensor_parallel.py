"""tensor_parallel: Megatron-LM intra-layer parallelism (Shoeybi et al. 2019).

Every device holds the full activations X [B, N, d]. Attention heads are split across
devices (device p computes its heads' Q/K/V and the matching input columns of the output
projection), and so are the MLP's hidden columns (fc1 rows, fc2 input columns). Each
sub-layer ends in an AllReduce of the partial outputs [B, N, d]: two per block. Exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

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
    """Device p's slice of one block's weights."""

    q_w: Tensor
    q_b: Tensor
    k_w: Tensor
    k_b: Tensor
    v_w: Tensor
    v_b: Tensor
    o_w: Tensor  # input columns of the output projection for p's heads (no bias)
    fc1_w: Tensor
    fc1_b: Tensor
    fc2_w: Tensor  # input columns of fc2 for p's hidden units (no bias)


def _span(sizes: tuple[int, ...], p: int, unit: int = 1) -> slice:
    start = sum(sizes[:p]) * unit
    return slice(start, start + sizes[p] * unit)


def shard(block: Block, p: int, n_dev: int, weights: Sequence[float] | None = None) -> Shard:
    """Device p's whole heads and MLP columns; equal counts, or in proportion to
    ``weights`` (device speeds)."""
    if n_dev > block.n_heads:
        raise ValueError(f"tensor_parallel: {n_dev} devices but only {block.n_heads} heads")
    heads = _span(partition_sizes(block.n_heads, n_dev, weights), p, block.head_dim)
    cols = _span(partition_sizes(block.fc1.out_features, n_dev, weights), p)
    return Shard(
        q_w=block.q.weight[heads].contiguous(), q_b=block.q.bias[heads].contiguous(),
        k_w=block.k.weight[heads].contiguous(), k_b=block.k.bias[heads].contiguous(),
        v_w=block.v.weight[heads].contiguous(), v_b=block.v.bias[heads].contiguous(),
        o_w=block.o.weight[:, heads].contiguous(),
        fc1_w=block.fc1.weight[cols].contiguous(), fc1_b=block.fc1.bias[cols].contiguous(),
        fc2_w=block.fc2.weight[:, cols].contiguous(),
    )


def attn_partial(block: Block, s: Shard, x: Tensor, bias: Tensor | None) -> Tensor:
    """This device's heads: their contribution to the output projection (before bias)."""
    h = block.attn_in(x)
    q = block.split_heads(F.linear(h, s.q_w, s.q_b))
    k = block.split_heads(F.linear(h, s.k_w, s.k_b))
    v = block.split_heads(F.linear(h, s.v_w, s.v_b))
    return F.linear(block.merge_heads(attention(q, k, v, bias, block.scaling)), s.o_w)


def mlp_partial(block: Block, s: Shard, x: Tensor) -> Tensor:
    return F.linear(block.act(F.linear(block.mlp_in(x), s.fc1_w, s.fc1_b)), s.fc2_w)


def attn_finish(block: Block, x: Tensor, total: Tensor) -> Tensor:
    return block.attn_residual(x, total + block.o.bias)


def mlp_finish(block: Block, x: Tensor, total: Tensor) -> Tensor:
    return block.mlp_residual(x, total + block.fc2.bias)


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
    x = yield from _input(ctx, stack, inputs)
    for layer, (block, s) in enumerate(zip(stack.blocks, shards, strict=True)):
        attn, mlp = Tag("attn", layer), Tag("mlp", layer)
        part = ctx.compute(attn, partial(attn_partial, block, s), x, bias)
        total = yield from allreduce(ctx, part, attn, options.allreduce)
        x = ctx.compute(Tag("attn_out", layer), partial(attn_finish, block), x, total)
        part = ctx.compute(mlp, partial(mlp_partial, block, s), x)
        total = yield from allreduce(ctx, part, mlp, options.allreduce)
        x = ctx.compute(Tag("mlp_out", layer), partial(mlp_finish, block), x, total)
    if ctx.device != MASTER:
        return None
    return ctx.compute(HEAD, stack.apply_head, x)
