"""Running a per-device program: the one loop every executor shares (:class:`Driver`),
what an executor provides (:class:`Transport`), and collectives turned into messages
where an executor has no native one (GLOO's allgather ring, as ``gloo/allgather.cc``
runs it)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Protocol

import torch
from torch import Tensor

from prismsim.strategies.program import (
    AllGather,
    Expect,
    Inbox,
    Message,
    Post,
    Program,
    Recv,
    Send,
)


class Transport(Protocol):
    """How an executor carries out one device's operations."""

    n_devices: int

    def send(self, device: int, op: Send) -> None:
        """Hand the messages over; returns at once."""

    def post(self, device: int, op: Post) -> None:
        """Post receives early; returns at once."""

    def take(self, device: int, op: Recv) -> Inbox | None:
        """The messages of ``op``, or None while they are not all there (an executor
        that can block waits instead and never returns None)."""

    def finish(self, device: int) -> None:
        """The program returned: complete what is outstanding, check what is left."""


def gloo_allgather(device: int, n_devices: int, op: AllGather
                   ) -> Generator[Send | Recv | Post, Any, Tensor]:
    """GLOO's allgather ring as point-to-point messages. Each device's block is cut into
    two chunks (GLOO halves its bytes; here its elements, within one element of that);
    2(P-1) operations, operation i sending one chunk to the next device and posting the
    receive of one from the previous; from i = 2 on, operation i first waits for the
    receive of operation i-2, whose chunk it forwards. Returns [P, *shape]."""
    if n_devices == 1:
        return op.tensor[None]
    flat = op.tensor.reshape(-1)  # [numel]
    sizes = (flat.numel() // 2, flat.numel() - flat.numel() // 2)
    chunks = {(device, c): t for c, t in enumerate(flat.split(sizes))}  # (segment, chunk)
    nxt, prv, n_ops = (device + 1) % n_devices, (device - 1) % n_devices, 2 * (n_devices - 1)

    def segments(i: int) -> tuple[int, int, int]:  # what operation i sends and receives
        send_seg = (device - i // 2) % n_devices
        return send_seg, (send_seg - 1) % n_devices, i & 1

    def expect(i: int) -> Expect:
        return Expect(prv, op.tag.sub(f"ag{i}"), (sizes[i & 1],))

    for i in range(n_ops + 2):
        if i >= 2:  # the receive of operation i-2
            inbox = yield Recv((expect(i - 2),))
            _, recv_seg, c = segments(i - 2)
            chunks[(recv_seg, c)] = inbox.get(prv, op.tag.sub(f"ag{i - 2}"))
        if i < n_ops:
            send_seg, _, c = segments(i)
            yield Send((Message(device, (nxt,), op.tag.sub(f"ag{i}"), chunks[(send_seg, c)]),))
            yield Post((expect(i),))
    blocks = [torch.cat([chunks[(r, 0)], chunks[(r, 1)]]) for r in range(n_devices)]
    return torch.stack(blocks).view(n_devices, *op.tensor.shape)  # [P, *shape]


class Driver:
    """Runs one device's program against a transport, operation by operation. A
    collective goes to the transport's own (``transport.all_gather``) if it has one, or
    else runs as the messages of its algorithm, driven like the program itself."""

    def __init__(self, device: int, program: Program, transport: Transport):
        self.device, self.transport = device, transport
        self.stack: list[Generator[Any, Any, Any]] = [program]  # the program, a collective
        self.blocked: Recv | None = None  # the receive it waits on
        self.reply: Any = None  # what the program gets back from its last operation
        self.done, self.result = False, None

    def advance(self) -> bool:
        """Run until the program returns or waits on a receive whose messages are not
        all there; whether it got anywhere."""
        progressed = False
        while not self.done:
            if self.blocked is not None:
                inbox = self.transport.take(self.device, self.blocked)
                if inbox is None:
                    return progressed
                self.blocked, self.reply = None, inbox
            self._step()
            progressed = True
        return progressed

    def _step(self) -> None:
        try:
            op = self.stack[-1].send(self.reply)
        except StopIteration as stop:
            self.stack.pop()
            self.reply = stop.value
            if not self.stack:
                self.done, self.result = True, stop.value
                self.transport.finish(self.device)
            return
        self.reply = None
        if isinstance(op, Send):
            self.transport.send(self.device, op)
        elif isinstance(op, Post):
            self.transport.post(self.device, op)
        elif isinstance(op, Recv):
            self.blocked = op
        elif isinstance(op, AllGather):
            self._all_gather(op)
        else:
            raise TypeError(f"device {self.device} yielded {op!r}; programs yield Send, "
                            f"Recv, Post or AllGather")

    def _all_gather(self, op: AllGather) -> None:
        native = getattr(self.transport, "all_gather", None)
        if native is not None:
            self.reply = native(self.device, op)
        else:
            self.stack.append(gloo_allgather(self.device, self.transport.n_devices, op))
