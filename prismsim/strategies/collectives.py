"""Collectives written as point-to-point messages, for use with ``yield from``.

AllReduce sums whole tensors [B, N, d]. ReduceScatter and AllGather work on the row
partition ``sizes`` (default the sequence partition ``ctx.sizes``): device p ends with,
or contributes, chunk p = its own rows. Both are rings (each device sends only to the
next one, so no two senders share a receiver), and their per-step pieces are exposed
(``ring_*``) so a strategy can compute between the steps (galaxy's overlap).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import torch
from torch import Tensor

from prismsim.numerics.segments import partition_sizes
from prismsim.strategies.program import ALL, DeviceContext, Expect, Post, Recv, Tag, send


def allreduce(ctx: DeviceContext, x: Tensor, tag: Tag, algorithm: str = "ring"
              ) -> Generator[Any, Any, Tensor]:
    """Sum ``x`` [B, N, d] over all devices; every device gets the sum."""
    if ctx.n_devices == 1:
        return x
    if algorithm == "ring":
        return (yield from _ring_allreduce(ctx, x, tag))
    if algorithm == "direct":
        return (yield from _direct_allreduce(ctx, x, tag))
    raise ValueError(f"allreduce algorithm must be 'ring' or 'direct', got {algorithm!r}")


def _direct_allreduce(ctx: DeviceContext, x: Tensor, tag: Tag) -> Generator[Any, Any, Tensor]:
    """Everyone sends its whole partial to everyone (one step, (P-1) N d per device);
    sums are taken in device order so all replicas are bit-identical."""
    p = ctx.device
    yield send(p, ALL, tag, x)
    inbox = yield Recv(tuple(Expect(q, tag, tuple(x.shape)) for q in ctx.others()))
    parts = [x if q == p else inbox.get(q, tag) for q in range(ctx.n_devices)]
    return ctx.compute(tag.sub("sum"), lambda *ts: torch.stack(ts).sum(dim=0), *parts)


def _ring_allreduce(ctx: DeviceContext, x: Tensor, tag: Tag) -> Generator[Any, Any, Tensor]:
    """Ring AllReduce (as NCCL/GLOO): P-1 reduce-scatter steps then P-1 all-gather steps,
    each sending one of P token chunks to the next device: 2 (P-1)/P N d per device.
    Every step's receive is posted first, so no step waits for a rendezvous handshake."""
    n_dev, p = ctx.n_devices, ctx.device
    nxt, prv = (p + 1) % n_dev, (p - 1) % n_dev
    chunks = list(x.split(partition_sizes(x.shape[1], n_dev), dim=1))
    steps = [_allreduce_step(p, n_dev, step, tag) for step in range(2 * (n_dev - 1))]
    yield Post(tuple(Expect(prv, stag, tuple(chunks[in_i].shape)) for _, _, in_i, stag in steps))
    for reduce, out_i, in_i, stag in steps:
        yield send(p, (nxt,), stag, chunks[out_i])
        inbox = yield Recv((Expect(prv, stag, tuple(chunks[in_i].shape)),))
        got = inbox.get(prv, stag)
        chunks[in_i] = ctx.compute(stag.sub("add"), torch.add, chunks[in_i], got) if reduce else got
    return torch.cat(chunks, dim=1)


def _allreduce_step(p: int, n_dev: int, step: int, tag: Tag) -> tuple[bool, int, int, Tag]:
    """Ring AllReduce step ``step`` on device p: (a reduce step, the chunk it sends, the
    chunk it receives, the step's tag)."""
    reduce = step < n_dev - 1
    shift = step if reduce else step - (n_dev - 1) - 1
    out_i, in_i = (p - shift) % n_dev, (p - shift - 1) % n_dev
    return reduce, out_i, in_i, tag.sub(f"{'rs' if reduce else 'ag'}{step}")


def ring_next(ctx: DeviceContext) -> int:
    return (ctx.device + 1) % ctx.n_devices


def ring_prev(ctx: DeviceContext) -> int:
    return (ctx.device - 1) % ctx.n_devices


def ring_chunk(ctx: DeviceContext, step: int) -> int:
    """The chunk this device passes on at ring step ``step`` (0 .. P-2): the ReduceScatter
    sends its running sum, the AllGather receives it (and forwards it unless last)."""
    return (ctx.device - 1 - step) % ctx.n_devices


def ring_accumulate(ctx: DeviceContext, part: Tensor, tag: Tag, step: int
                    ) -> Generator[Any, Any, None]:
    """ReduceScatter, one chunk at ring step ``step``: add this device's ``part`` to the
    running sum from the previous device (none at step 0) and send it to the next."""
    if step > 0:
        inbox = yield Recv((Expect(ring_prev(ctx), tag, tuple(part.shape)),))
        part = ctx.compute(tag.sub("add"), torch.add, inbox.get(ring_prev(ctx), tag), part)
    yield send(ctx.device, (ring_next(ctx),), tag, part)


def ring_reduced(ctx: DeviceContext, own: Tensor, tag: Tag) -> Generator[Any, Any, Tensor]:
    """ReduceScatter, last step: the running sum of this device's own chunk, plus ``own``."""
    if ctx.n_devices == 1:
        return own
    inbox = yield Recv((Expect(ring_prev(ctx), tag, tuple(own.shape)),))
    return ctx.compute(tag.sub("add"), torch.add, inbox.get(ring_prev(ctx), tag), own)


def ring_share(ctx: DeviceContext, rows: Tensor, tag: Tag) -> Generator[Any, Any, None]:
    """AllGather, first step: this device's own chunk to the next device."""
    if ctx.n_devices > 1:
        yield send(ctx.device, (ring_next(ctx),), tag, rows)


def ring_gathered(ctx: DeviceContext, tag: Tag, shape: tuple[int, ...], step: int
                  ) -> Generator[Any, Any, Tensor]:
    """AllGather, ring step ``step``: chunk ``ring_chunk(step)`` from the previous device,
    forwarded to the next unless the next device is the one it came from (last step)."""
    inbox = yield Recv((Expect(ring_prev(ctx), tag, shape),))
    rows = inbox.get(ring_prev(ctx), tag)
    if step < ctx.n_devices - 2:
        yield send(ctx.device, (ring_next(ctx),), tag, rows)
    return rows


def reduce_scatter(ctx: DeviceContext, x: Tensor, tag: Tag, sizes: Sequence[int] | None = None
                   ) -> Generator[Any, Any, Tensor]:
    """Ring ReduceScatter: sum ``x`` [B, N, d] over all devices; device p gets only its rows
    of the sum (chunk p of ``sizes``). P-1 steps; device p sends N - n_p rows in all."""
    chunks = x.split(list(sizes or ctx.sizes), dim=1)
    for step in range(ctx.n_devices - 1):
        c = ring_chunk(ctx, step)
        yield from ring_accumulate(ctx, chunks[c], tag.sub(c), step)
    return (yield from ring_reduced(ctx, chunks[ctx.device], tag.sub(ctx.device)))


def allgather(ctx: DeviceContext, rows: Tensor, tag: Tag, sizes: Sequence[int] | None = None
              ) -> Generator[Any, Any, Tensor]:
    """Ring AllGather: every device's rows (chunk q of ``sizes`` from device q), in order,
    on every device. P-1 steps; device p sends N - n_(p+1) rows in all."""
    sizes, p = sizes or ctx.sizes, ctx.device
    yield from ring_share(ctx, rows, tag.sub(p))
    chunks = {p: rows}
    for step in range(ctx.n_devices - 1):
        c = ring_chunk(ctx, step)
        shape = (rows.shape[0], sizes[c], rows.shape[2])
        chunks[c] = yield from ring_gathered(ctx, tag.sub(c), shape, step)
    return torch.cat([chunks[c] for c in range(ctx.n_devices)], dim=1)
