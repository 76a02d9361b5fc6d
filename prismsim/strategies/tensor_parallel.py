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

from collections.abc import Callable, Generator, Sequence
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
from prismsim.strategies.decoding import (
    Decode,
    KVCache,
    StepFn,
    check_decodable,
    own_decoding,
    step_tag,
)
from prismsim.strategies.program import ALL, DeviceContext, Expect, Program, Recv, Tag, send
from prismsim.strategies.rowwise import EMBED
from prismsim.workload import MASTER

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


def attn_partial_kv(block: Block, s: Shard, x: Tensor, bias: Tensor | None,
                    positions: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """This device's heads: their contribution to the output projection (before bias)
    [B, n, d], and their keys and values [B, h_kv_p, n, dh] (a decoding device's cache)."""
    q, k, v = shard_qkv(block, s, block.attn_in(x), positions)
    a = attention(q, k, v, bias, block.scaling)  # [B, h_p, n, dh]
    return F.linear(block.merge_heads(a), s.o_w), k, v


def attn_partial(block: Block, s: Shard, x: Tensor, bias: Tensor | None,
                 positions: Tensor | None = None) -> Tensor:
    """:func:`attn_partial_kv`'s contribution alone."""
    return attn_partial_kv(block, s, x, bias, positions)[0]


def decode_partial(block: Block, s: Shard, k_cache: Tensor, v_cache: Tensor, x: Tensor,
                   position: int) -> tuple[Tensor, Tensor, Tensor]:
    """One new row x [B, 1, d] at ``position``: this device's heads over their cache
    [B, h_kv_p, n, dh] and the row itself; contribution [B, 1, d], the grown cache
    [B, h_kv_p, n + 1, dh] each."""
    q, k, v = shard_qkv(block, s, block.attn_in(x), torch.tensor([float(position)]))
    keys, values = torch.cat([k_cache, k], dim=2), torch.cat([v_cache, v], dim=2)
    a = attention(q, keys, values, None, block.scaling)  # [B, h_p, 1, dh]
    return F.linear(block.merge_heads(a), s.o_w), keys, values


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


def _reduce(ctx: DeviceContext, part: Tensor, tag: Tag, algorithm: str
            ) -> Generator[Any, Any, Tensor]:
    """AllReduce of partial rows [B, n, d]; one row (decoding) is cut by hidden units."""
    if part.shape[1] > 1 or ctx.n_devices == 1:
        return (yield from allreduce(ctx, part, tag, algorithm))
    total = yield from allreduce(ctx, part.transpose(1, 2).contiguous(), tag, algorithm)
    return total.transpose(1, 2)  # [B, 1, d]


def _rest(ctx: DeviceContext, block: Block, s: Shard, x: Tensor, part: Tensor,
          tag: Callable[[str], Tag], algorithm: str) -> Generator[Any, Any, Tensor]:
    """A block after this device's attention contribution: AllReduce, residual, the MLP
    shard, AllReduce, residual."""
    total = yield from _reduce(ctx, part, tag("attn"), algorithm)
    x = ctx.compute(tag("attn_out"), partial(attn_finish, block), x, total)
    part = ctx.compute(tag("mlp"), partial(mlp_partial, block, s), x)
    total = yield from _reduce(ctx, part, tag("mlp"), algorithm)
    return ctx.compute(tag("mlp_out"), partial(mlp_finish, block), x, total)


def _prefill(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options,
             shards: list[Shard], caches: list[KVCache] | None = None
             ) -> Generator[Any, Any, Tensor]:
    """Every block over the whole sequence; appends each block's K/V to ``caches``."""
    positions = list(range(ctx.n_tokens))
    bias = key_bias(positions, positions, [1.0] * ctx.n_tokens, stack.causal)
    rope = (torch.arange(ctx.n_tokens, dtype=torch.float32),) if stack.has_rope else ()
    x = yield from _input(ctx, stack, inputs)
    for layer, (block, s) in enumerate(zip(stack.blocks, shards, strict=True)):
        part, k, v = ctx.compute(Tag("attn", layer), partial(attn_partial_kv, block, s), x,
                                 bias, *rope)
        if caches is not None:
            caches.append(KVCache(k, v))
            caches[-1].hold(ctx, layer)
        x = yield from _rest(ctx, block, s, x, part, partial(Tag, layer=layer),
                             options.allreduce)
    return x


def _run(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options,
         shards: list[Shard]) -> Program:
    x = yield from _prefill(ctx, stack, inputs, options, shards)
    if ctx.device != MASTER:
        return None
    return ctx.compute(HEAD, stack.apply_head, x)


def generate(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options,
             decode: Decode) -> Program:
    """Prefill, then decoding: the master picks each token and sends its embedded row to
    all; every device runs its heads over its K/V cache and its MLP columns, with the
    two AllReduces per block (of one row, cut by hidden units)."""
    check_decodable(stack)
    shards = [shard(b, ctx.device, ctx.n_devices) for b in stack.blocks]
    return _generate(ctx, stack, inputs, options, shards, decode)


def _generate(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options,
              shards: list[Shard], decode: Decode) -> Program:
    caches: list[KVCache] = []
    x = yield from _prefill(ctx, stack, inputs, options, shards, caches)
    step = _decode_step(ctx, stack, options, shards, caches)
    if ctx.device == MASTER:
        return (yield from own_decoding(ctx, stack, decode, x, step))
    for i in range(1, decode.steps):
        inbox = yield Recv((Expect(MASTER, step_tag(i, "input"), (ctx.batch, 1, ctx.hidden)),))
        yield from step(i, inbox.get(MASTER, step_tag(i, "input")))
    return None


def _decode_step(ctx: DeviceContext, stack: ModelStack, options: Options, shards: list[Shard],
                 caches: list[KVCache]) -> StepFn:
    def step(i: int, x: Tensor) -> Generator[Any, Any, Tensor]:
        if ctx.device == MASTER and ctx.n_devices > 1:
            yield send(MASTER, ALL, step_tag(i, "input"), x)
        position = ctx.n_tokens + i - 1
        for layer, (block, s, cache) in enumerate(zip(stack.blocks, shards, caches,
                                                      strict=True)):
            part, k, v = ctx.compute(step_tag(i, "attn", layer),
                                     partial(decode_partial, block, s), cache.k, cache.v, x,
                                     position)
            cache.take(k, v)
            cache.hold(ctx, layer)
            x = yield from _rest(ctx, block, s, x, part, partial(step_tag, i, layer=layer),
                                 options.allreduce)
        return x
    return step
