"""Collectives written as point-to-point messages, for use with ``yield from``."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import torch
from torch import Tensor

from prismsim.numerics.segments import partition_sizes
from prismsim.strategies.program import ALL, DeviceContext, Expect, Recv, send


def allreduce(ctx: DeviceContext, x: Tensor, tag: str, algorithm: str = "ring"
              ) -> Generator[Any, Any, Tensor]:
    """Sum ``x`` [B, N, d] over all devices; every device gets the sum."""
    if ctx.n_devices == 1:
        return x
    if algorithm == "ring":
        return (yield from _ring_allreduce(ctx, x, tag))
    if algorithm == "direct":
        return (yield from _direct_allreduce(ctx, x, tag))
    raise ValueError(f"allreduce algorithm must be 'ring' or 'direct', got {algorithm!r}")


def _direct_allreduce(ctx: DeviceContext, x: Tensor, tag: str) -> Generator[Any, Any, Tensor]:
    """Everyone sends its whole partial to everyone (one step, (P-1) N d per device);
    sums are taken in device order so all replicas are bit-identical."""
    p = ctx.device
    yield send(p, ALL, tag, x)
    inbox = yield Recv(tuple(Expect(q, tag, tuple(x.shape)) for q in ctx.others()))
    parts = [x if q == p else inbox.get(q, tag) for q in range(ctx.n_devices)]
    return ctx.compute(f"{tag}.sum", lambda *ts: torch.stack(ts).sum(dim=0), *parts)


def _ring_allreduce(ctx: DeviceContext, x: Tensor, tag: str) -> Generator[Any, Any, Tensor]:
    """Ring AllReduce (as NCCL/GLOO): P-1 reduce-scatter steps then P-1 all-gather steps,
    each sending one of P token chunks to the next device: 2 (P-1)/P N d per device."""
    n_dev, p = ctx.n_devices, ctx.device
    nxt, prv = (p + 1) % n_dev, (p - 1) % n_dev
    chunks = list(x.split(partition_sizes(x.shape[1], n_dev), dim=1))
    for step in range(2 * (n_dev - 1)):
        reduce = step < n_dev - 1
        shift = step if reduce else step - (n_dev - 1) - 1
        out_i, in_i = (p - shift) % n_dev, (p - shift - 1) % n_dev
        stag = f"{tag}.{'rs' if reduce else 'ag'}{step}"
        yield send(p, (nxt,), stag, chunks[out_i])
        inbox = yield Recv((Expect(prv, stag, tuple(chunks[in_i].shape)),))
        got = inbox.get(prv, stag)
        chunks[in_i] = ctx.compute(f"{stag}.add", torch.add, chunks[in_i], got) if reduce else got
    return torch.cat(chunks, dim=1)
