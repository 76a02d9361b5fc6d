"""Messages of the per-device programs through torch.distributed (GLOO over TCP): the
transport of real runs, and the driver loop that runs one program to its end."""

from __future__ import annotations

import zlib
from collections import defaultdict, deque
from collections.abc import Callable
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

    def __init__(self, n_devices: int, on_first_post: Callable[[], None] | None = None):
        self.n_devices = n_devices
        self.pending: list[Any] = []
        self.posted: dict[tuple[int, Tag], deque[tuple[Any, torch.Tensor]]] = defaultdict(deque)
        # called once, as soon as the program's first receives are posted (a testbed
        # device tells the master it is ready for the request: ``ready``)
        self.on_first_post = on_first_post

    def mark_posted(self) -> None:
        if self.on_first_post is not None:
            self.on_first_post()
            self.on_first_post = None

    def send(self, device: int, op: Send) -> None:
        self.pending += [dist.isend(m.tensor.contiguous(), dst, tag=tag_id(m.tag))
                         for m in op.messages for dst in m.recipients(self.n_devices)]

    def post(self, device: int, op: Post) -> None:
        for e in op.expects:
            self.posted[(e.src, e.tag)].append(_irecv(e))
        self.mark_posted()

    def take(self, device: int, op: Recv) -> Inbox:
        received = [self.posted[(e.src, e.tag)].popleft() if self.posted[(e.src, e.tag)]
                    else _irecv(e) for e in op.expects]
        self.mark_posted()
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


READY_TAG = 0x7FFFFFFE  # the tag of ``ready``'s message (tag_id's are hashes: no clash in practice)


def drive(device: int, program: Program, n_devices: int, ready: bool = False) -> Any:
    """Run one program to its end over torch.distributed; its result. ``ready``: a
    device other than the master tells it once its first receives are posted (see
    ``await_ready``)."""
    signal = _send_ready if ready and device != 0 else None
    transport = GlooTransport(n_devices, signal)
    driver = Driver(device, program, transport)
    driver.advance()
    transport.mark_posted()  # a program that never received still lets the master go
    return driver.result


def _send_ready() -> None:
    dist.send(torch.zeros(1), 0, tag=READY_TAG)


def await_ready(n_devices: int) -> None:
    """The master waits until every other device has posted its first receives (the
    notices travel ahead of the ready message on each in-order connection): then the
    group is as a request finds it, idle and waiting for its input."""
    for src in range(1, n_devices):
        dist.recv(torch.zeros(1), src, tag=READY_TAG)


def _irecv(e: Expect) -> tuple[Any, torch.Tensor]:
    """An ``irecv`` of ``e`` into a fresh buffer: (its work, the buffer)."""
    buffer = torch.empty(e.shape)
    return dist.irecv(buffer, e.src, tag=tag_id(e.tag)), buffer
