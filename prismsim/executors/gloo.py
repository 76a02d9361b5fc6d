"""Messages of the per-device programs through torch.distributed (GLOO over TCP): the
transport of real runs, and the driver loop that runs one program to its end."""

from __future__ import annotations

import zlib
from collections import defaultdict, deque
from typing import Any

import torch
import torch.distributed as dist

from prismsim.strategies.driver import Driver
from prismsim.strategies.program import AllGather, Expect, Inbox, Post, Program, Recv, Send, Tag


def tag_id(tag: Tag) -> int:
    """GLOO tags are integers: a stable hash of the program's tag as text."""
    return zlib.crc32(str(tag).encode()) & 0x7FFFFFFF


class GlooTransport:
    """Messages through torch.distributed: sends are ``isend`` (completed when the program
    returns); a ``Post`` issues its ``irecv`` at once; each ``Recv`` takes the posted ones
    for its expects (oldest first per source and tag), issues ``irecv`` for the rest,
    then waits for them all."""

    def __init__(self, n_devices: int):
        self.n_devices = n_devices
        self.pending: list[Any] = []
        self.posted: dict[tuple[int, Tag], deque[tuple[Any, torch.Tensor]]] = defaultdict(deque)

    def send(self, device: int, op: Send) -> None:
        self.pending += [dist.isend(m.tensor.contiguous(), dst, tag=tag_id(m.tag))
                         for m in op.messages for dst in m.recipients(self.n_devices)]

    def post(self, device: int, op: Post) -> None:
        for e in op.expects:
            self.posted[(e.src, e.tag)].append(_irecv(e))

    def take(self, device: int, op: Recv) -> Inbox:
        received = [self.posted[(e.src, e.tag)].popleft() if self.posted[(e.src, e.tag)]
                    else _irecv(e) for e in op.expects]
        for work, _ in received:
            work.wait()
        return Inbox(zip(op.expects, (b for _, b in received), strict=True))

    def all_gather(self, device: int, op: AllGather) -> torch.Tensor:
        """The real collective: GLOO's own ring (``dist.all_gather``)."""
        out = [torch.empty_like(op.tensor) for _ in range(self.n_devices)]
        dist.all_gather(out, op.tensor.contiguous())
        return torch.stack(out)  # [P, *shape]

    def finish(self, device: int) -> None:
        for work in self.pending:
            work.wait()
        self.pending.clear()


def drive(device: int, program: Program, n_devices: int) -> Any:
    """Run one program to its end over torch.distributed; its result."""
    driver = Driver(device, program, GlooTransport(n_devices))
    driver.advance()
    return driver.result


def _irecv(e: Expect) -> tuple[Any, torch.Tensor]:
    """An ``irecv`` of ``e`` into a fresh buffer: (its work, the buffer)."""
    buffer = torch.empty(e.shape)
    return dist.irecv(buffer, e.src, tag=tag_id(e.tag)), buffer
