"""The numerics executor: all P device programs in one process, messages in memory."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from prismsim.models import ModelStack, load_model, normalize_inputs
from prismsim.numerics.segments import partition_sizes
from prismsim.strategies import make_options, make_programs
from prismsim.strategies.program import (
    MASTER,
    DeviceContext,
    Inbox,
    Post,
    Program,
    Recv,
    Send,
)


class DeadlockError(RuntimeError):
    """Every unfinished device waits for a message nobody will send."""


class InMemoryNetwork:
    """Mailboxes keyed by (destination, source, tag); FIFO per key."""

    def __init__(self, n_devices: int):
        self.n_devices = n_devices
        self._boxes: dict[tuple[int, int, str], deque[Tensor]] = defaultdict(deque)
        self.sent_bytes = [0] * n_devices  # unicast accounting: one copy per recipient
        self.sent_messages = [0] * n_devices

    def post(self, op: Send) -> None:
        for msg in op.messages:
            recipients = msg.recipients(self.n_devices)
            for dst in recipients:
                self._boxes[(dst, msg.src, msg.tag)].append(msg.tensor)
            size_bytes = msg.tensor.numel() * msg.tensor.element_size()
            self.sent_bytes[msg.src] += size_bytes * len(recipients)
            self.sent_messages[msg.src] += len(recipients)

    def try_take(self, device: int, op: Recv) -> Inbox | None:
        keys = [(device, e.src, e.tag) for e in op.expects]
        if not all(self._boxes[k] for k in keys):
            return None
        items = []
        for e, k in zip(op.expects, keys, strict=True):
            t = self._boxes[k].popleft()
            if tuple(t.shape) != e.shape:
                raise ValueError(f"device {device}: message {e.tag!r} from {e.src} has shape "
                                 f"{tuple(t.shape)}, expected {e.shape}")
            items.append((e, t))
        return Inbox(items)


def run_in_memory(programs: Sequence[Program], net: InMemoryNetwork | None = None
                  ) -> list[Any]:
    """Drive every generator until it finishes; returns each device's result."""
    net = net or InMemoryNetwork(len(programs))
    waiting: list[Recv | None] = [None] * len(programs)
    reply: list[Any] = [None] * len(programs)
    results: list[Any] = [None] * len(programs)
    alive = set(range(len(programs)))
    while alive:
        progressed = False
        for p in sorted(alive):
            progressed |= _advance(p, programs[p], net, waiting, reply, results, alive)
        if not progressed:
            raise DeadlockError(f"devices {sorted(alive)} wait for messages that never come: "
                           f"{[waiting[p] for p in sorted(alive)]}")
    return results


def _advance(p: int, gen: Program, net: InMemoryNetwork, waiting: list[Recv | None],
             reply: list[Any], results: list[Any], alive: set[int]) -> bool:
    """Run device p until it blocks on a Recv whose messages are not all there."""
    progressed = False
    while True:
        if waiting[p] is not None:
            inbox = net.try_take(p, waiting[p])
            if inbox is None:
                return progressed
            waiting[p], reply[p] = None, inbox
        try:
            op = gen.send(reply[p])
        except StopIteration as stop:
            results[p] = stop.value
            alive.discard(p)
            return True
        progressed, reply[p] = True, None
        if isinstance(op, Send):
            net.post(op)
        elif isinstance(op, Recv):
            waiting[p] = op
        elif not isinstance(op, Post):  # a Post changes nothing in memory
            raise TypeError(f"device {p} yielded {op!r}; programs yield Send, Recv or Post")


def make_contexts(stack: ModelStack, inputs: dict[str, Tensor], devices: int,
                  weights: Sequence[float] | None = None) -> list[DeviceContext]:
    sizes = partition_sizes(stack.n_tokens(inputs), devices, weights)
    return [DeviceContext(device=p, sizes=sizes, batch=stack.batch(inputs), hidden=stack.hidden)
            for p in range(devices)]


def run_numerics(model: str | nn.Module | ModelStack, inputs: Tensor | dict[str, Tensor],
                 strategy: str = "single", devices: int = 1, *,
                 weights: Sequence[float] | None = None, **options: Any) -> Tensor:
    """Run ``strategy`` on ``devices`` simulated devices and return the master's output:
    what the HF model returns as its main output (logits, or the last hidden state).

    ``weights`` splits tokens in proportion to device speed instead of equally;
    ``options`` are the strategy's (prism: ``cr=`` or ``segments=``, ``duplicate=``, ...).
    """
    stack = load_model(model)
    inputs = normalize_inputs(stack, inputs)
    opts = make_options(strategy, **options)
    contexts = make_contexts(stack, inputs, devices, weights)
    with torch.no_grad():
        results = run_in_memory(make_programs(strategy, contexts, stack, inputs, opts))
    return results[MASTER]
