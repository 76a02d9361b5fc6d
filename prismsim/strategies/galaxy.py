"""galaxy: hybrid model parallelism with overlapped collectives (Ye et al., INFOCOM 2024).

Attention and MLP are tensor-parallel as in ``tensor_parallel`` (device p holds whole
heads and MLP hidden columns, in proportion to ``speeds`` if given), but the connective
part between them (bias, residual, layer scale, LayerNorm) is sequence-parallel: instead
of an AllReduce, each sub-layer's partial outputs go through a ReduceScatter over the
token rows (device p gets the sums of its partition ``ctx.rows(p)``), p applies the
connective ops to those rows only, and an AllGather of the next sub-layer's input rows
gives every device the full [B, N, d] again. The residual stream itself stays
partitioned. Both collectives are rings (``collectives.ring_*``), P-1 steps each, the
bytes of one ring AllReduce; the connective work is divided by P.

Overlap: the ring steps are interleaved with the compute they feed. Each partition is
cut into ``tiles`` pieces; a device projects (attention: Q/K/V; MLP: the whole MLP) each
piece as soon as the AllGather brings it, passes it on, and sends each piece's partial
sum of the ReduceScatter as soon as it is computed, so piece i travels while piece i+1
is computed. The AllGather brings chunk p-1-s at step s, the order in which the
ReduceScatter needs the MLP's partial sums, so the MLP needs no wait beyond one piece.
Attention needs every key first: its output projection starts after the AllGather.
Exact (up to float summation order). Grouped-query attention, gated MLPs and missing
biases follow ``tensor_parallel.shard``; rotary embeddings rotate each piece's Q and K at
its rows' global positions.

Receives are posted early (``Post``): a sub-layer's (its AllGather's pieces, its
ReduceScatter's running sums) when the sub-layer before it starts, so on a rendezvous
transport (GLOO) no piece waits for its receiver's handshake.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from prismsim.models.stack import Block, Inputs, ModelStack
from prismsim.numerics.attention import attention, key_bias
from prismsim.numerics.segments import partition_sizes
from prismsim.strategies import tensor_parallel
from prismsim.strategies.collectives import (
    ring_accumulate,
    ring_chunk,
    ring_gathered,
    ring_prev,
    ring_reduced,
    ring_share,
)
from prismsim.strategies.program import DeviceContext, Expect, Post, Program, Recv, Tag
from prismsim.strategies.rowwise import INPUT_ROWS, collect_output, own_rows_expect, scatter_rows
from prismsim.strategies.tensor_parallel import Shard
from prismsim.workload import MASTER

Gen = Generator[Any, Any, Any]


@dataclass(frozen=True)
class Options:
    # Relative device speeds: heads and MLP columns are split in proportion (heads stay
    # whole). None: equal split. The token rows of the connective part follow the
    # executor's ``weights`` (pass the same speeds there for a fully balanced split).
    speeds: tuple[float, ...] | None = None
    # Pieces each device's rows are cut into, so piece t's messages overlap piece t+1's
    # compute (capped at the smallest partition's rows). 1: overlap by whole partitions
    # only. 4: simulated ViT-B/16 on 3 devices (ethernet-1g, 200 and 800 Mbit/s) is
    # within 1 % of 8 tiles and 6-25 % faster than 1 tile, at 4x the messages.
    tiles: int = 4

    def __post_init__(self) -> None:
        if self.tiles < 1:
            raise ValueError(f"galaxy tiles must be >= 1, got {self.tiles}")
        if self.speeds is not None:
            if min(self.speeds) <= 0:
                raise ValueError(f"galaxy speeds must be positive, got {list(self.speeds)}")
            object.__setattr__(self, "speeds", tuple(float(s) for s in self.speeds))


@dataclass(frozen=True)
class Pieces:
    """Each device's partition cut into tiles: piece (c, t), tile t of device c's rows,
    has ``sizes[c][t]`` rows. Pieces in (c, t) order are the rows in sequence order."""

    sizes: tuple[tuple[int, ...], ...]
    batch: int
    hidden: int

    @property
    def n_tiles(self) -> int:
        return len(self.sizes[0])

    def shape(self, c: int, t: int) -> tuple[int, int, int]:
        return (self.batch, self.sizes[c][t], self.hidden)

    def in_order(self) -> list[tuple[int, int]]:
        return [(c, t) for c in range(len(self.sizes)) for t in range(self.n_tiles)]


def make_pieces(ctx: DeviceContext, tiles: int) -> Pieces:
    n_tiles = min(tiles, *ctx.sizes)
    return Pieces(tuple(partition_sizes(n, n_tiles) for n in ctx.sizes), ctx.batch, ctx.hidden)


def piece_biases(pieces: Pieces, causal: bool) -> dict[tuple[int, int], Tensor | None]:
    """Each query piece's rows of the key bias over the whole sequence (causal mask)."""
    n = sum(map(sum, pieces.sizes))
    full = key_bias(range(n), range(n), [1.0] * n, causal)
    out, start = {}, 0
    for c, t in pieces.in_order():
        rows = pieces.sizes[c][t]
        out[(c, t)] = None if full is None else full[start:start + rows]
        start += rows
    return out


def ring_pieces(ctx: DeviceContext, pieces: Pieces) -> Iterator[tuple[int, int, int]]:
    """(ring step, chunk, tile) in the order the ring passes other devices' pieces."""
    for step in range(ctx.n_devices - 1):
        for t in range(pieces.n_tiles):
            yield step, ring_chunk(ctx, step), t


def sublayer_receives(ctx: DeviceContext, pieces: Pieces, tag: Tag) -> Post:
    """Every receive of one sub-layer's collectives on this device, to post at once: the
    AllGather's pieces, the ReduceScatter's running sums (ring steps 1 .. P-2) and its
    last step's sums of own pieces (taken in ``_connect``). None on one device."""
    prev, ring = ring_prev(ctx), list(ring_pieces(ctx, pieces))
    gathered = [Expect(prev, tag.sub(f"ag{c}.{t}"), pieces.shape(c, t)) for _, c, t in ring]
    running = [Expect(prev, tag.sub(f"rs{c}.{t}"), pieces.shape(c, t))
               for step, c, t in ring if step > 0]
    reduced = [Expect(prev, tag.sub(f"rs{ctx.device}.{t}"), pieces.shape(ctx.device, t))
               for t in range(pieces.n_tiles)] if ctx.n_devices > 1 else []
    return Post(tuple(gathered + running + reduced))


def piece_positions(pieces: Pieces, rope: bool) -> dict[tuple[int, int], tuple[Tensor, ...]]:
    """Each piece's global token positions [rows] as the extra argument of ``qkv`` for a
    model with rotary embeddings; no argument without them."""
    out, start = {}, 0
    for c, t in pieces.in_order():
        rows = pieces.sizes[c][t]
        out[(c, t)] = (torch.arange(start, start + rows, dtype=torch.float32),) if rope else ()
        start += rows
    return out


def qkv(block: Block, s: Shard, h: Tensor, positions: Tensor | None = None
        ) -> tuple[Tensor, Tensor, Tensor]:
    """This device's heads of Q [B, h_p, n, dh] and K, V [B, h_kv_p, n, dh] for input
    rows h (after attn_in) at token positions [n] (rotary embeddings only)."""
    return tensor_parallel.shard_qkv(block, s, h, positions)


def attn_out(block: Block, s: Shard, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None
             ) -> Tensor:
    """This device's heads' share of the output projection for q's rows (no bias)."""
    return F.linear(block.merge_heads(attention(q, k, v, bias, block.scaling)), s.o_w)


def mlp_out(block: Block, s: Shard, h: Tensor) -> Tensor:
    """This device's hidden columns' share of fc2 for rows h (after mlp_in; no bias)."""
    return tensor_parallel.shard_mlp(block, s, h)


def program(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options
            ) -> Program:
    if options.speeds is not None and len(options.speeds) != ctx.n_devices:
        raise ValueError(f"galaxy: {len(options.speeds)} speeds for {ctx.n_devices} devices")
    shards = [tensor_parallel.shard(b, ctx.device, ctx.n_devices, options.speeds)
              for b in stack.blocks]  # eager: errors now
    return _run(ctx, stack, inputs, make_pieces(ctx, options.tiles), shards)


def _run(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, pieces: Pieces,
         shards: list[Shard]) -> Program:
    biases = piece_biases(pieces, stack.causal)
    positions = piece_positions(pieces, stack.has_rope)
    subs = [Tag(sub, layer) for layer in range(len(stack.blocks)) for sub in ("attn", "mlp")]
    yield from _post(ctx, pieces, subs, 0)  # each sub-layer then posts the next one's
    x = yield from _scatter_input(ctx, stack, inputs)
    x_own = list(x.split(pieces.sizes[ctx.device], dim=1))  # the residual stream, by tile
    h_own = []
    for t, x_t in enumerate(x_own):
        h_own.append((yield from _share(ctx, x_t, stack.blocks[0].attn_in, t, Tag("attn", 0))))
    last = len(stack.blocks) - 1
    for layer, (block, s) in enumerate(zip(stack.blocks, shards, strict=True)):
        attn, mlp = Tag("attn", layer), Tag("mlp", layer)
        yield from _post(ctx, pieces, subs, 2 * layer + 1)
        own = yield from _attention(ctx, block, s, pieces, h_own, (biases, positions), attn)
        x_own, h_own = yield from _connect(
            ctx, own, x_own, partial(tensor_parallel.attn_finish, block), block.mlp_in,
            attn, mlp)
        yield from _post(ctx, pieces, subs, 2 * layer + 2)
        own = yield from _mlp(ctx, block, s, pieces, h_own, mlp)
        next_in = stack.blocks[layer + 1].attn_in if layer < last else None
        x_own, h_own = yield from _connect(
            ctx, own, x_own, partial(tensor_parallel.mlp_finish, block), next_in,
            mlp, Tag("attn", layer + 1))
    return (yield from collect_output(ctx, stack, torch.cat(x_own, dim=1)))


def _post(ctx: DeviceContext, pieces: Pieces, subs: list[Tag], i: int) -> Gen:
    """Post the receives of sub-layer ``subs[i]`` (none past the last, or on one device)."""
    if i < len(subs) and ctx.n_devices > 1:
        yield sublayer_receives(ctx, pieces, subs[i])


def _scatter_input(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None) -> Gen:
    """The master embeds the input and sends each device its partition's rows."""
    if ctx.device != MASTER:
        inbox = yield Recv((own_rows_expect(ctx),))
        return inbox.get(MASTER, INPUT_ROWS)
    x = yield from scatter_rows(ctx, stack, inputs)
    return x[:, ctx.rows(ctx.device)]


def _share(ctx: DeviceContext, x: Tensor, sub_in: Callable[[Tensor], Tensor], t: int, tag: Tag
           ) -> Gen:
    """The next sub-layer's input rows of own tile t (pre-LN: its LayerNorm), sent on
    the AllGather ring at once."""
    h = ctx.compute(tag.sub("in"), sub_in, x)
    yield from ring_share(ctx, h, tag.sub(f"ag{ctx.device}.{t}"))
    return h


def _attention(ctx: DeviceContext, block: Block, s: Shard, pieces: Pieces, h_own: list[Tensor],
               per_piece: tuple[dict, dict], tag: Tag) -> Gen:
    """Q/K/V of own pieces, then of each piece the AllGather brings; then per query piece
    attention over all keys and the output projection, its ReduceScatter partial sum
    sent at once. ``per_piece``: each piece's key bias rows and (rotary embeddings) its
    positions. Returns this device's partials of its own pieces."""
    biases, positions = per_piece
    project, out = partial(qkv, block, s), partial(attn_out, block, s)
    proj = {(ctx.device, t): ctx.compute(tag.sub("qkv"), project, h, *positions[(ctx.device, t)])
            for t, h in enumerate(h_own)}
    for step, c, t in ring_pieces(ctx, pieces):
        h = yield from ring_gathered(ctx, tag.sub(f"ag{c}.{t}"), pieces.shape(c, t), step)
        proj[(c, t)] = ctx.compute(tag.sub("qkv"), project, h, *positions[(c, t)])
    k = torch.cat([proj[key][1] for key in pieces.in_order()], dim=2)  # all keys, in order
    v = torch.cat([proj[key][2] for key in pieces.in_order()], dim=2)
    for step, c, t in ring_pieces(ctx, pieces):
        part = ctx.compute(tag.sub("out"), out, proj[(c, t)][0], k, v, biases[(c, t)])
        yield from ring_accumulate(ctx, part, tag.sub(f"rs{c}.{t}"), step)
    return [ctx.compute(tag.sub("out"), out, proj[(ctx.device, t)][0], k, v,
                        biases[(ctx.device, t)]) for t in range(pieces.n_tiles)]


def _mlp(ctx: DeviceContext, block: Block, s: Shard, pieces: Pieces, h_own: list[Tensor],
         tag: Tag) -> Gen:
    """Own pieces first (while the first gathered pieces travel), then each piece the
    AllGather brings, its ReduceScatter partial sum sent at once."""
    out = partial(mlp_out, block, s)
    own = [ctx.compute(tag.sub("out"), out, h) for h in h_own]
    for step, c, t in ring_pieces(ctx, pieces):
        h = yield from ring_gathered(ctx, tag.sub(f"ag{c}.{t}"), pieces.shape(c, t), step)
        part = ctx.compute(tag.sub("out"), out, h)
        yield from ring_accumulate(ctx, part, tag.sub(f"rs{c}.{t}"), step)
    return own


def _connect(ctx: DeviceContext, own: list[Tensor], x_own: list[Tensor],
             finish: Callable[[Tensor, Tensor], Tensor],
             next_in: Callable[[Tensor], Tensor] | None, tag: Tag, next_tag: Tag) -> Gen:
    """The sequence-parallel connective part, tile by tile on own rows: the ReduceScatter's
    last step, bias + residual (+ LayerNorm), and the next sub-layer's input rows onto
    the AllGather ring (none after the last sub-layer)."""
    new_x, new_h = [], []
    for t, (part, x) in enumerate(zip(own, x_own, strict=True)):
        total = yield from ring_reduced(ctx, part, tag.sub(f"rs{ctx.device}.{t}"))
        new_x.append(ctx.compute(tag.sub("finish"), finish, x, total))
        if next_in is not None:
            new_h.append((yield from _share(ctx, new_x[-1], next_in, t, next_tag)))
    return new_x, new_h
