"""Decoding after a position-wise prefill (``single``, ``voltage``, ``prism``).

After the prefill each device holds, per block, the keys and values it attended over:
its own rows and the summaries it received (voltage: the earlier partitions' rows; prism:
their Segment Means). New tokens belong to the last device, whose partition ends the
sequence. Two ways to attend a new token over the old ones:

* ``"split_kv"`` (voltage): every device keeps only its own rows' cache. Per block the
  owner sends the new query [B, h, 1, dh] to the others; each attends it over its shard
  and sends back its output and log-sum-exp [B, h, 1, dh + 1]; the owner merges them
  exactly (the flash-decoding combine). Two message hops per block per token.
* ``"local"``: the owner keeps everything it attended over in the prefill and needs no
  messages. Exact for voltage (the earlier rows' keys are all there); prism's old tokens
  are represented by their Segment Means, with log-count key biases.
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import Any

import torch
from torch import Tensor

from prismsim.models.stack import Block, Inputs, ModelStack
from prismsim.numerics.attention import attention, attention_lse, key_bias, merge_lse
from prismsim.strategies import rowwise
from prismsim.strategies.decoding import (
    Decode,
    Generation,
    KVCache,
    check_decodable,
    own_decoding,
    step_tag,
)
from prismsim.strategies.program import DeviceContext, Expect, Recv, send

DECODE_MODES = ("split_kv", "local")


def new_qkv(block: Block, x: Tensor, position: int) -> tuple[Tensor, Tensor, Tensor]:
    """Q [B, h, 1, dh], K, V [B, h_kv, 1, dh] of one new row x [B, 1, d] at ``position``."""
    h = block.attn_in(x)
    where = torch.tensor([float(position)])
    q = block.rotate(block.split_heads(block.q(h)), where)
    k = block.rotate(block.split_heads(block.k(h)), where)
    return q, k, block.split_heads(block.v(h))


def finish_row(block: Block, x: Tensor, a: Tensor) -> Tensor:
    """The rest of the block for one row x [B, 1, d] after its attention a [B, h, 1, dh]."""
    x = block.attn_residual(x, block.o(block.merge_heads(a)))
    return block.mlp(x)


def grown_qkv(block: Block, k_cache: Tensor, v_cache: Tensor, x: Tensor, position: int
              ) -> tuple[Tensor, Tensor, Tensor]:
    """Q [B, h, 1, dh] of a new row x [B, 1, d] at ``position``, and the cache [B, h_kv,
    n, dh] grown by its K and V: [B, h_kv, n + 1, dh] each."""
    q, k, v = new_qkv(block, x, position)
    return q, torch.cat([k_cache, k], dim=2), torch.cat([v_cache, v], dim=2)


def local_row(block: Block, k_cache: Tensor, v_cache: Tensor, bias: Tensor | None,
              x: Tensor, position: int) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """One block for a new row over the cache [B, h_kv, n, dh] (key bias [1, n]) and
    itself: output [B, 1, d], the grown cache [B, h_kv, n + 1, dh] and bias [1, n + 1]."""
    q, keys, values = grown_qkv(block, k_cache, v_cache, x, position)
    bias = None if bias is None else torch.nn.functional.pad(bias, (0, 1))  # [1, n + 1]
    out = finish_row(block, x, attention(q, keys, values, bias, block.scaling))
    return out, keys, values, bias


def merged_row(block: Block, x: Tensor, parts: list[Tensor]) -> Tensor:
    return finish_row(block, x, merge_lse(parts))


def _caches(ctx: DeviceContext, plan: rowwise.RowwisePlan, kept: list[rowwise.KV],
            mode: str) -> list[KVCache]:
    """What a device keeps for decoding: split_kv its own rows; local all it attended over,
    with log-count biases where keys stand for several tokens."""
    if mode == "split_kv":
        n = ctx.sizes[ctx.device]
        return [KVCache(k[:, :, :n], v[:, :, :n]) for k, v in kept]
    key_pos, counts = rowwise.key_counts(ctx, plan)
    bias = key_bias([0], key_pos, counts, causal=False)  # [1, n_keys] or None
    return [KVCache(k, v, bias) for k, v in kept]


def _local_step(ctx: DeviceContext, stack: ModelStack, caches: list[KVCache]):
    def step(i: int, x: Tensor) -> Generator[Any, Any, Tensor]:
        position = ctx.n_tokens + i - 1
        for layer, (block, cache) in enumerate(zip(stack.blocks, caches, strict=True)):
            x, *grown = ctx.compute(step_tag(i, "block", layer), partial(local_row, block),
                                    cache.k, cache.v, cache.bias, x, position)
            cache.take(*grown)
            cache.hold(ctx, layer)
        return x
        yield  # a generator, like every step
    return step


def _query_expect(ctx: DeviceContext, block: Block, src: int, i: int, layer: int) -> Expect:
    return Expect(src, step_tag(i, "q", layer), (ctx.batch, block.n_heads, 1, block.head_dim))


def _split_step(ctx: DeviceContext, stack: ModelStack, caches: list[KVCache]):
    shards = ctx.others()

    def step(i: int, x: Tensor) -> Generator[Any, Any, Tensor]:
        position, p = ctx.n_tokens + i - 1, ctx.device
        for layer, (block, cache) in enumerate(zip(stack.blocks, caches, strict=True)):
            q, k, v = ctx.compute(step_tag(i, "qkv", layer), partial(grown_qkv, block),
                                  cache.k, cache.v, x, position)
            cache.take(k, v)
            cache.hold(ctx, layer)
            yield send(p, shards, step_tag(i, "q", layer), q)
            own = ctx.compute(step_tag(i, "attn", layer), attention_lse, q, cache.k, cache.v,
                              None, block.scaling)
            shape = (ctx.batch, block.n_heads, 1, block.head_dim + 1)
            inbox = yield Recv(tuple(Expect(r, step_tag(i, "part", layer), shape)
                                     for r in shards))
            parts = [own] + [inbox.get(r, step_tag(i, "part", layer)) for r in shards]
            x = ctx.compute(step_tag(i, "merge", layer), partial(merged_row, block), x, parts)
        return x
    return step


def serve_shard(ctx: DeviceContext, stack: ModelStack, caches: list[KVCache], owner: int,
                steps: int) -> Generator[Any, Any, None]:
    """A device other than the owner under split_kv: per token and block, attend the
    owner's query over this device's shard and send back the packed partial."""
    for i in range(1, steps):
        for layer, (block, cache) in enumerate(zip(stack.blocks, caches, strict=True)):
            inbox = yield Recv((_query_expect(ctx, block, owner, i, layer),))
            q = inbox.get(owner, step_tag(i, "q", layer))
            part = ctx.compute(step_tag(i, "attn", layer), attention_lse, q, cache.k,
                               cache.v, None, block.scaling)
            yield send(ctx.device, (owner,), step_tag(i, "part", layer), part)


def generate(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None,
             plan: rowwise.RowwisePlan, decode: Decode, mode: str
             ) -> Generator[Any, Any, Generation | None]:
    """The per-device program: the prefill keeping caches, then decoding by ``mode``
    (checked now, before the program runs)."""
    check_decodable(stack)
    if mode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {DECODE_MODES}, got {mode!r}")
    mode = mode if ctx.n_devices > 1 else "local"  # one device has every key
    return _generate(ctx, stack, inputs, plan, decode, mode)


def _generate(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None,
              plan: rowwise.RowwisePlan, decode: Decode, mode: str
              ) -> Generator[Any, Any, Generation | None]:
    x, kept = yield from rowwise.prefill(ctx, stack, inputs, plan, keep=True)
    caches, owner = _caches(ctx, plan, kept, mode), ctx.n_devices - 1
    if ctx.device == owner or mode == "split_kv":  # the others drop theirs
        for layer, cache in enumerate(caches):
            cache.hold(ctx, layer)
    if ctx.device != owner:
        if mode == "split_kv":
            yield from serve_shard(ctx, stack, caches, owner, decode.steps)
        return None
    step = (_split_step if mode == "split_kv" else _local_step)(ctx, stack, caches)
    return (yield from own_decoding(ctx, stack, decode, x, step))
