"""Position-wise partitioning, the loop shared by ``single``, ``voltage`` and ``prism``.

Each device owns a contiguous partition of the token rows. Per block it computes Q from
its own rows and K/V from its own rows plus a *summary* of every partition it needs
(voltage: the rows themselves; prism: their Segment Means), then the position-wise
MLP on its own rows, and sends its output's summary to the devices that need it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor

from prismsim.models.stack import Block, Inputs, ModelStack
from prismsim.numerics.attention import attention, key_bias
from prismsim.numerics.segments import segment_ends, segment_positions
from prismsim.strategies import EXCHANGES
from prismsim.strategies.program import (
    ALL,
    AllGather,
    DeviceContext,
    Expect,
    Recv,
    Tag,
    send,
)
from prismsim.workload import MASTER

Summarize = Callable[[Tensor], Tensor]
# How a device's summary reaches those that need it after each block (EXCHANGES, declared
# with the strategies): "p2p", one unicast copy per receiver; "broadcast", one message to
# all (a broadcast-capable medium sends it once); "ring", an all_gather of every summary
# (padded to the largest), as torch.distributed.all_gather runs it (GLOO: a ring of 2(P-1)
# steps).


def check_exchange(exchange: str) -> None:
    if exchange not in EXCHANGES:
        raise ValueError(f"exchange must be one of {EXCHANGES}, got {exchange!r}")
EMBED, INPUT_ROWS, OUTPUT = Tag("embed"), Tag("input.rows"), Tag("output")
HEAD_LOCAL, HEAD_FINISH = Tag("head.local"), Tag("head.finish")


@dataclass(frozen=True)
class RowwisePlan:
    """What each device sends of its rows, and who needs whose.

    ``segments[r]``: sizes of the segments device r's summary is made of (all ones when
    rows are sent as they are). ``senders[q]``: the devices whose summaries device q
    attends to, in partition order. ``duplicate``: expand each received mean into as many
    copies as tokens it stands for (the paper's Table II "duplicated" form).
    ``rope_position``: where a segment's mean is rotated in a model with rotary
    embeddings (segments.ROPE_POSITIONS; one-token segments are at their token).
    """

    segments: tuple[tuple[int, ...], ...]
    senders: tuple[tuple[int, ...], ...]
    summarize: Callable[[int], Summarize | None]
    duplicate: bool = False
    local_mask: bool = False
    exchange: str = "p2p"  # how summaries travel: see EXCHANGES
    rope_position: str = "center"

    def receivers(self, r: int) -> tuple[int, ...]:
        return tuple(q for q, srcs in enumerate(self.senders) if r in srcs)


def needed_senders(ctx: DeviceContext, segments: tuple[tuple[int, ...], ...], causal: bool,
                   skip_masked: bool) -> tuple[tuple[int, ...], ...]:
    """senders[q]: every other device, or (causal, skip_masked) only those with at least one
    segment that some query of q may see: in a causal model the earlier partitions."""
    out = []
    for q in range(ctx.n_devices):
        last_query = ctx.offset(q) + ctx.sizes[q] - 1
        srcs = tuple(
            r for r in range(ctx.n_devices)
            if r != q and not (causal and skip_masked
                               and segment_ends(ctx.offset(r), segments[r])[0] > last_query))
        out.append(srcs)
    return tuple(out)


def key_counts(ctx: DeviceContext, plan: RowwisePlan) -> tuple[list[int], list[float]]:
    """This device's keys in attention order (own rows, then each sender's segments):
    the last global position each one covers and how many tokens it stands for."""
    p = ctx.device
    key_pos = list(range(ctx.offset(p), ctx.offset(p) + ctx.sizes[p]))
    counts = [1.0] * len(key_pos)
    for r in plan.senders[p]:
        ends = segment_ends(ctx.offset(r), plan.segments[r])
        for size, end in zip(plan.segments[r], ends, strict=True):
            reps = size if plan.duplicate else 1
            key_pos += [end] * reps
            counts += [float(size // reps)] * reps
    return key_pos, counts


def device_bias(ctx: DeviceContext, plan: RowwisePlan, causal: bool) -> Tensor | None:
    """Key bias [n_p, n_keys] of this device: log-counts for means, causal mask."""
    p = ctx.device
    query_pos = list(range(ctx.offset(p), ctx.offset(p) + ctx.sizes[p]))
    key_pos, counts = key_counts(ctx, plan)
    if plan.local_mask:  # the paper's Fig. 3b mistake: positions local to the device
        query_pos, key_pos = list(range(len(query_pos))), list(range(len(key_pos)))
    return key_bias(query_pos, key_pos, counts, causal)


def device_positions(ctx: DeviceContext, plan: RowwisePlan
                     ) -> tuple[Tensor, Tensor]:
    """Global token positions [n_p] of this device's queries and [n_keys] of its keys, in
    the key order of ``device_bias``, where rotary embeddings rotate them: own rows at
    their own positions, a remote mean at ``plan.rope_position`` of its segment (all its
    copies alike when duplicated)."""
    p = ctx.device
    query_pos = [float(i) for i in range(ctx.offset(p), ctx.offset(p) + ctx.sizes[p])]
    key_pos = list(query_pos)
    for r in plan.senders[p]:
        where = segment_positions(ctx.offset(r), plan.segments[r], plan.rope_position)
        for size, pos in zip(plan.segments[r], where, strict=True):
            key_pos += [pos] * (size if plan.duplicate else 1)
    return (torch.tensor(query_pos, dtype=torch.float32),
            torch.tensor(key_pos, dtype=torch.float32))


def block_rows_kv(block: Block, x: Tensor, remote: Tensor | None, bias: Tensor | None,
                  query_pos: Tensor | None = None, key_pos: Tensor | None = None
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """One block on local rows x [B, n, d], attending to x and remote key rows [B, m, d];
    with rotary embeddings Q is rotated at query_pos [n] and K at key_pos [n + m].
    Returns the block's output [B, n, d] and the keys and values it attended over
    [B, h_kv, n + m, dh] (a decoding device's cache)."""
    h = block.attn_in(x)
    kv = h if remote is None else torch.cat([h, block.attn_in(remote)], dim=1)  # [B, n+m, d]
    q = block.rotate(block.split_heads(block.q(h)), query_pos)  # [B, h, n, dh]
    k = block.rotate(block.split_heads(block.k(kv)), key_pos)  # [B, h_kv, n+m, dh]
    v = block.split_heads(block.v(kv))  # [B, h_kv, n+m, dh]
    a = attention(q, k, v, bias, block.scaling)
    x = block.attn_residual(x, block.o(block.merge_heads(a)))
    return block.mlp(x), k, v


def block_rows(block: Block, x: Tensor, remote: Tensor | None, bias: Tensor | None,
               query_pos: Tensor | None = None, key_pos: Tensor | None = None) -> Tensor:
    """:func:`block_rows_kv`'s output rows [B, n, d] alone."""
    return block_rows_kv(block, x, remote, bias, query_pos, key_pos)[0]


def _dst(ctx: DeviceContext, plan: RowwisePlan, receivers: tuple[int, ...]
         ) -> tuple[int, ...] | str:
    everyone = len(receivers) == ctx.n_devices - 1
    return ALL if plan.exchange == "broadcast" and everyone else receivers


def _summary(ctx: DeviceContext, plan: RowwisePlan, r: int, rows: Tensor, tag: Tag) -> Tensor:
    fn = plan.summarize(r)
    return rows if fn is None else ctx.compute(tag.sub(f"summary{r}"), fn, rows)


def _expect(ctx: DeviceContext, plan: RowwisePlan, r: int, src: int, tag: Tag) -> Expect:
    return Expect(src, tag, (ctx.batch, len(plan.segments[r]), ctx.hidden))


def _remote(plan: RowwisePlan, r_summaries: list[tuple[int, Tensor]]) -> Tensor | None:
    if not r_summaries:
        return None
    parts = []
    for r, s in r_summaries:
        if plan.duplicate:  # copies of each mean, as many as tokens it stands for
            s = s.repeat_interleave(torch.tensor(plan.segments[r]), dim=1)
        parts.append(s)
    return torch.cat(parts, dim=1)


def scatter_rows(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None
                 ) -> Generator[Any, Any, Tensor]:
    """The master embeds the input and sends every other device its partition's rows;
    returns this device's rows (the master's: the whole embedded sequence). Receives
    are taken by the caller on the other devices, with whatever else the master sends."""
    x = ctx.compute(EMBED, stack.embed, inputs)
    for q in ctx.others():
        yield send(ctx.device, (q,), INPUT_ROWS, x[:, ctx.rows(q)])
    return x


def own_rows_expect(ctx: DeviceContext) -> Expect:
    """What a device other than the master receives first: its partition's rows."""
    return Expect(MASTER, INPUT_ROWS, (ctx.batch, ctx.sizes[ctx.device], ctx.hidden))


def distribute(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, plan: RowwisePlan
               ) -> Generator[Any, Any, tuple[Tensor, Tensor | None]]:
    """The master embeds the input and sends each device its partition and the
    summaries of the partitions it needs. Returns (local rows, remote key rows)."""
    p, summary_tag = ctx.device, Tag("input")
    if p != MASTER:
        summaries = [_expect(ctx, plan, r, MASTER, summary_tag.sub(f"from{r}"))
                     for r in plan.senders[p]]
        inbox = yield Recv((own_rows_expect(ctx), *summaries))
        got = [(r, inbox.get(MASTER, summary_tag.sub(f"from{r}"))) for r in plan.senders[p]]
        return inbox.get(MASTER, INPUT_ROWS), _remote(plan, got)
    x = yield from scatter_rows(ctx, stack, inputs)
    summaries = {}
    for r in range(ctx.n_devices):
        dst = tuple(q for q in plan.receivers(r) if q != MASTER)
        if dst or r in plan.senders[p]:
            summaries[r] = _summary(ctx, plan, r, x[:, ctx.rows(r)], summary_tag)
        if dst:
            yield send(p, dst, summary_tag.sub(f"from{r}"), summaries[r])
    return x[:, ctx.rows(p)], _remote(plan, [(r, summaries[r]) for r in plan.senders[p]])


def exchange(ctx: DeviceContext, plan: RowwisePlan, x: Tensor, tag: Tag
             ) -> Generator[Any, Any, Tensor | None]:
    """Send this device's summary to those who need it; receive the ones it needs."""
    if plan.exchange == "ring":
        return (yield from _gather_ring(ctx, plan, x, tag))
    p = ctx.device
    receivers = plan.receivers(p)
    if receivers:
        yield send(p, _dst(ctx, plan, receivers), tag, _summary(ctx, plan, p, x, tag))
    if not plan.senders[p]:
        return None
    inbox = yield Recv(tuple(_expect(ctx, plan, r, r, tag) for r in plan.senders[p]))
    return _remote(plan, [(r, inbox.get(r, tag)) for r in plan.senders[p]])


def _gather_ring(ctx: DeviceContext, plan: RowwisePlan, x: Tensor, tag: Tag
                 ) -> Generator[Any, Any, Tensor | None]:
    """Every summary on every device, by one all_gather: each padded with zero rows to
    the largest [B, m, d], as all_gather needs equal shapes; the padding is cut off."""
    m = max(len(s) for s in plan.segments)
    own = _summary(ctx, plan, ctx.device, x, tag)  # [B, m_p, d]
    padded = torch.nn.functional.pad(own, (0, 0, 0, m - own.shape[1]))  # [B, m, d]
    gathered = yield AllGather(padded, tag)  # [P, B, m, d]
    parts = [(r, gathered[r][:, :len(plan.segments[r])]) for r in plan.senders[ctx.device]]
    return _remote(plan, parts)


def collect_output(ctx: DeviceContext, stack: ModelStack, x: Tensor
                   ) -> Generator[Any, Any, Tensor | None]:
    """Each device applies the position-wise head part to its rows; the master gathers
    what the head needs (only row 0 for a [CLS] head) and finishes."""
    head, p = stack.head, ctx.device
    if head.first_only:
        if p != MASTER:
            return None
        y = ctx.compute(HEAD_LOCAL, head.local, x[:, :1])
        return ctx.compute(HEAD_FINISH, head.finish, y)
    y = ctx.compute(HEAD_LOCAL, head.local, x)
    if p != MASTER:
        yield send(p, (MASTER,), OUTPUT, y)
        return None
    others = ctx.others()
    if others:
        inbox = yield Recv(tuple(Expect(q, OUTPUT, (ctx.batch, ctx.sizes[q], head.width))
                                 for q in others))
        y = torch.cat([y] + [inbox.get(q, OUTPUT) for q in others], dim=1)
    return ctx.compute(HEAD_FINISH, head.finish, y)


KV = tuple[Tensor, Tensor]


def prefill(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, plan: RowwisePlan,
            keep: bool = False) -> Generator[Any, Any, tuple[Tensor, list[KV]]]:
    """Every block on this device's rows. Returns the final rows [B, n_p, d] and, with
    ``keep``, each block's keys and values [B, h_kv, n_p + m, dh] (own rows first)."""
    bias = device_bias(ctx, plan, stack.causal)
    positions = device_positions(ctx, plan) if stack.has_rope else ()
    x, remote = yield from distribute(ctx, stack, inputs, plan)
    last, kept = len(stack.blocks) - 1, []
    for layer, block in enumerate(stack.blocks):
        x, k, v = ctx.compute(Tag("block", layer), partial(block_rows_kv, block), x, remote,
                              bias, *positions)
        if keep:
            kept.append((k, v))
        if layer < last:
            remote = yield from exchange(ctx, plan, x, Tag("rows", layer + 1))
    return x, kept


def run(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, plan: RowwisePlan
        ) -> Generator[Any, Any, Tensor | None]:
    """The per-device program of every position-wise strategy."""
    x, _ = yield from prefill(ctx, stack, inputs, plan)
    return (yield from collect_output(ctx, stack, x))
