"""The workload executor: run a strategy's per-device programs once, recording every
compute step's FLOPs (fvcore) and every message's size, source, destinations and which
receive waits for it (and which post, if the receive was posted early)."""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

import prismsim
from prismsim.cost.flops import count_flops, run_counting_bytes, signature
from prismsim.cost.units import wire_bytes
from prismsim.models import ModelStack, load_model, random_inputs
from prismsim.numerics.executor import make_contexts, run_in_memory
from prismsim.strategies import make_options, make_programs
from prismsim.strategies.program import (
    ALL,
    DeviceContext,
    Expect,
    Post,
    Program,
    Recv,
    Send,
)
from prismsim.workload import Message, Task, Workload

_LAYER_PREFIX = re.compile(r"^L\d+\.")


@dataclass
class TracingContext(DeviceContext):
    """Counts each compute step's FLOPs; steps with the same label pattern and input
    signature on this device are traced once (all blocks of a model share shapes)."""

    tasks: list[Task] = field(default_factory=list)
    memo: dict[tuple, int] = field(default_factory=dict)

    def compute(self, label: str, fn: Callable[..., Any], *args: Any) -> Any:
        key = (_LAYER_PREFIX.sub("L*.", label), signature(args))
        result, memory_bytes = run_counting_bytes(fn, args)
        if key not in self.memo:
            self.memo[key] = count_flops(fn, args)
        self.tasks.append(Task("compute", label, self.memo[key], bytes=memory_bytes))
        return result


@dataclass
class _PendingPost:
    """A recorded ``post`` task whose message ids are filled in as later receives take its
    expects (the messages may not have been sent yet when it is recorded)."""

    tasks: list[Task]
    index: int  # of the post task in ``tasks``
    ids: list[int | None]

    def resolve(self, slot: int, msg_id: int) -> None:
        self.ids[slot] = msg_id
        if None not in self.ids:
            self.tasks[self.index] = replace(self.tasks[self.index], messages=tuple(self.ids))


class _Recorder:
    """Wraps each program to record its sends, posts and receives, in program order.

    Messages are matched FIFO per (receiver, source, tag), as a transport matches them;
    a receive takes the oldest expect posted for its key, if any, and that post task
    gets the same message id as the receive."""

    def __init__(self, n_devices: int, wire: str):
        self.n_devices, self.wire = n_devices, wire
        self.messages: list[Message] = []
        self._queued: dict[tuple[int, int, str], deque[int]] = defaultdict(deque)
        # posted, not yet taken: (device, src, tag) -> FIFO of (post, slot, posted expect)
        self._posted: dict[tuple[int, int, str], deque[tuple[_PendingPost, int, Expect]]] = \
            defaultdict(deque)

    def _sent(self, op: Send) -> list[Task]:
        tasks = []
        for msg in op.messages:
            dst = msg.recipients(self.n_devices)
            if not dst:
                continue
            m = Message(id=len(self.messages), src=msg.src, dst=dst, broadcast=msg.dst == ALL,
                        tag=msg.tag, shape=tuple(msg.tensor.shape),
                        bytes=wire_bytes(tuple(msg.tensor.shape), self.wire))
            self.messages.append(m)
            for d in dst:
                self._queued[(d, m.src, m.tag)].append(m.id)
            tasks.append(Task("send", msg.tag, 0, (m.id,)))
        return tasks

    def _posting(self, device: int, op: Post, tasks: list[Task]) -> None:
        """Record a post task; its ids are resolved by the receives that take it."""
        pending = _PendingPost(tasks, len(tasks), [None] * len(op.expects))
        tasks.append(Task("post", ",".join(e.tag for e in op.expects)))
        for slot, e in enumerate(op.expects):
            self._posted[(device, e.src, e.tag)].append((pending, slot, e))

    def _received(self, device: int, op: Recv) -> Task:
        ids = []
        for e in op.expects:
            key = (device, e.src, e.tag)
            ids.append(self._queued[key].popleft())
            if self._posted[key]:
                pending, slot, posted = self._posted[key].popleft()
                if posted != e:
                    raise ValueError(f"device {device} posted {posted}, received {e}")
                pending.resolve(slot, ids[-1])
        return Task("recv", ",".join(e.tag for e in op.expects), 0, tuple(ids))

    def _check_posts_taken(self, device: int) -> None:
        left = sorted((src, tag) for (d, src, tag), q in self._posted.items() if d == device and q)
        if left:
            raise ValueError(f"device {device} posted receives it never took: {left}")

    def wrap(self, gen: Program, ctx: TracingContext) -> Program:
        reply = None
        while True:
            try:
                op = gen.send(reply)
            except StopIteration as stop:
                self._check_posts_taken(ctx.device)
                return stop.value
            if isinstance(op, Send):
                ctx.tasks.extend(self._sent(op))
            elif isinstance(op, Post):
                self._posting(ctx.device, op, ctx.tasks)
            reply = yield op
            if isinstance(op, Recv):
                ctx.tasks.append(self._received(ctx.device, op))


def _meta(stack: ModelStack, strategy: str, options: Any, ctx: DeviceContext, wire: str
          ) -> dict[str, Any]:
    return {
        "model": stack.name, "family": stack.family, "hf_class": type(stack.hf).__name__,
        "hidden": stack.hidden, "layers": len(stack.blocks), "causal": stack.causal,
        "strategy": strategy, "options": asdict(options), "devices": ctx.n_devices,
        "sizes": list(ctx.sizes), "tokens": ctx.n_tokens, "batch": ctx.batch, "wire": wire,
        "version": prismsim.__version__,
    }


def trace_workload(model: str | nn.Module | ModelStack, strategy: str, devices: int, *,
                   batch: int = 1, tokens: int | None = None, wire: str = "fp32",
                   weights: Sequence[float] | None = None, seed: int = 0,
                   **options: Any) -> Workload:
    """Trace ``strategy`` on ``devices`` devices at this batch and sequence length."""
    stack = load_model(model, seed=seed)
    inputs = random_inputs(stack, batch=batch, tokens=tokens, seed=seed)
    if tokens is not None and stack.n_tokens(inputs) != tokens:
        raise ValueError(f"{stack.name} sees {stack.n_tokens(inputs)} tokens at its image "
                         f"size, not {tokens}")
    opts = make_options(strategy, **options)
    contexts = [TracingContext(c.device, c.sizes, c.batch, c.hidden)
                for c in make_contexts(stack, inputs, devices, weights)]
    rec = _Recorder(devices, wire)
    programs = make_programs(strategy, contexts, stack, inputs, opts)
    with torch.no_grad():
        run_in_memory([rec.wrap(g, c) for g, c in zip(programs, contexts, strict=True)])
    return Workload(meta=_meta(stack, strategy, opts, contexts[0], wire),
                    tasks=[c.tasks for c in contexts], messages=rec.messages)
