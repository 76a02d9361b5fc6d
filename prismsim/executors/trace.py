"""The workload executor: run a strategy's per-device programs once, in memory, recording
every compute step's FLOPs (fvcore), operators and peak live bytes, every message's size,
source, destinations and which receive waits for it (and which post, if the receive was
posted early), and each device's resident bytes (the weights its steps read)."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

import prismsim
from prismsim.cost.flops import count_flops, signature
from prismsim.cost.op_record import TensorKey, record_step, tensor_key
from prismsim.cost.units import wire_bytes
from prismsim.executors.memory import InMemoryNetwork, run_in_memory
from prismsim.models.load import load_model, random_inputs
from prismsim.models.stack import ModelStack
from prismsim.strategies import make_decoding_programs, make_options, make_programs
from prismsim.strategies.contexts import make_contexts
from prismsim.strategies.decoding import Decode
from prismsim.strategies.program import (
    ALL,
    DeviceContext,
    Expect,
    Inbox,
    Post,
    Recv,
    Send,
    Tag,
)
from prismsim.workload import MASTER, Message, Task, Workload


@dataclass
class TracingContext(DeviceContext):
    """Counts each compute step's FLOPs; steps with the same name and input signature on
    this device are traced once (all blocks of a model share shapes). ``resident``: the
    tensors this device's steps read that were neither given to them nor made by them
    (its weights), each once, by the elements it covers. ``held``: what the program keeps
    between steps (``hold``: its KV caches), per key the tensors by the elements they
    cover; ``most_held``: the most bytes it held at once."""

    tasks: list[Task] = field(default_factory=list)
    memo: dict[tuple, int] = field(default_factory=dict)
    resident: dict[TensorKey, int] = field(default_factory=dict)
    held: dict[str, dict[TensorKey, int]] = field(default_factory=dict)
    most_held: int = 0

    def hold(self, key: str, *tensors: torch.Tensor | None) -> None:
        self.held[key] = dict(tensor_key(t) for t in tensors if t is not None)
        self.most_held = max(self.most_held, self.held_bytes())

    def held_bytes(self, besides: tuple[Any, ...] = ()) -> int:
        """The bytes held now, less those among the tensors ``besides`` (a step's
        arguments, which its live bytes count)."""
        given = {tensor_key(t)[0] for t in besides if isinstance(t, torch.Tensor)}
        return sum(n for kept in self.held.values() for k, n in kept.items()
                   if k not in given)

    def compute(self, tag: Tag, fn: Callable[..., Any], *args: Any) -> Any:
        key = (tag.name, signature(args))
        step = record_step(fn, args)
        if key not in self.memo:
            self.memo[key] = count_flops(fn, args)
        self.resident.update(step.resident)
        self.tasks.append(Task("compute", str(tag), self.memo[key],
                               memory_bytes=step.memory_bytes, layer=tag.layer, ops=step.ops,
                               live_bytes=step.live_bytes,
                               held_bytes=self.held_bytes(args),
                               weight_bytes=step.weight_read_bytes))
        return step.result


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


def _joined(expects: Sequence[Expect]) -> tuple[str, int | None]:
    """A post's or a receive's label and layer: its expects' tags joined, their block."""
    layers = {e.tag.layer for e in expects}
    return ",".join(str(e.tag) for e in expects), layers.pop() if len(layers) == 1 else None


class Recorder:
    """A transport that records every send, post and receive into the devices' task
    lists, in program order, and delivers through an in-memory network.

    Messages are matched FIFO per (receiver, source, tag), as a transport matches them;
    a receive takes the oldest expect posted for its key, if any, and that post task
    gets the same message id as the receive."""

    def __init__(self, contexts: Sequence[TracingContext], wire: str):
        self.contexts, self.wire = contexts, wire
        self.n_devices = len(contexts)
        self.net = InMemoryNetwork(self.n_devices)
        self.messages: list[Message] = []
        self._queued: dict[tuple[int, int, Tag], deque[int]] = defaultdict(deque)
        # posted, not yet taken: (device, src, tag) -> FIFO of (post, slot, posted expect)
        self._posted: dict[tuple[int, int, Tag], deque[tuple[_PendingPost, int, Expect]]] = \
            defaultdict(deque)

    def send(self, device: int, op: Send) -> None:
        for msg in op.messages:
            dst = msg.recipients(len(self.contexts))
            if not dst:
                continue
            shape = tuple(msg.tensor.shape)
            m = Message(id=len(self.messages), src=msg.src, dst=dst, broadcast=msg.dst == ALL,
                        tag=str(msg.tag), layer=msg.tag.layer, shape=shape,
                        payload_bytes=wire_bytes(shape, self.wire))
            self.messages.append(m)
            for d in dst:
                self._queued[(d, m.src, msg.tag)].append(m.id)
            self.contexts[device].tasks.append(Task("send", m.tag, messages=(m.id,),
                                                    layer=m.layer))
        self.net.send(device, op)

    def post(self, device: int, op: Post) -> None:
        """Record a post task; its ids are resolved by the receives that take it."""
        tasks = self.contexts[device].tasks
        pending = _PendingPost(tasks, len(tasks), [None] * len(op.expects))
        label, layer = _joined(op.expects)
        tasks.append(Task("post", label, layer=layer))
        for slot, e in enumerate(op.expects):
            self._posted[(device, e.src, e.tag)].append((pending, slot, e))

    def take(self, device: int, op: Recv) -> Inbox | None:
        inbox = self.net.take(device, op)
        if inbox is not None:
            self.contexts[device].tasks.append(self._received(device, op))
        return inbox

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
        label, layer = _joined(op.expects)
        return Task("recv", label, messages=tuple(ids), layer=layer)

    def finish(self, device: int) -> None:
        left = sorted((src, str(tag)) for (d, src, tag), q in self._posted.items()
                      if d == device and q)
        if left:
            raise ValueError(f"device {device} posted receives it never took: {left}")


def _meta(stack: ModelStack, strategy: str, options: Any, ctx: DeviceContext, wire: str
          ) -> dict[str, Any]:
    return {
        "model": stack.name, "family": stack.family, "hf_class": type(stack.hf).__name__,
        "hidden": stack.hidden, "layers": len(stack.blocks), "causal": stack.causal,
        "strategy": strategy, "options": asdict(options), "devices": ctx.n_devices,
        "sizes": list(ctx.sizes), "tokens": ctx.n_tokens, "batch": ctx.batch, "wire": wire,
        "version": prismsim.__version__, "output_device": MASTER,
    }


def trace_workload(model: str | nn.Module | ModelStack, strategy: str, devices: int, *,
                   batch: int = 1, tokens: int | None = None, wire: str = "fp32",
                   weights: Sequence[float] | None = None, seed: int = 0,
                   generate: int | None = None, **options: Any) -> Workload:
    """Trace ``strategy`` on ``devices`` devices at this batch and sequence length; with
    ``generate``, the prefill of that prompt and then as many generated tokens (meta
    ``generate``; the output device is the one that decodes)."""
    stack = load_model(model, seed=seed)
    inputs = random_inputs(stack, batch=batch, tokens=tokens, seed=seed)
    if tokens is not None and stack.n_tokens(inputs) != tokens:
        raise ValueError(f"{stack.name} sees {stack.n_tokens(inputs)} tokens at its image "
                         f"size, not {tokens}")
    opts = make_options(strategy, **options)
    contexts = [TracingContext(c.device, c.sizes, c.batch, c.hidden)
                for c in make_contexts(stack, inputs, devices, weights)]
    rec = Recorder(contexts, wire)
    if generate is None:
        programs = make_programs(strategy, contexts, stack, inputs, opts)
    else:
        programs = make_decoding_programs(strategy, contexts, stack, inputs, opts,
                                   Decode(steps=generate))
    with torch.no_grad():
        results = run_in_memory(programs, rec)
    meta = _meta(stack, strategy, opts, contexts[0], wire)
    if generate is not None:
        owner = next(p for p, r in enumerate(results) if r is not None)
        meta.update(generate=generate, output_device=owner)
    return Workload(meta=meta, tasks=[c.tasks for c in contexts], messages=rec.messages,
                    resident_bytes=[sum(c.resident.values()) for c in contexts],
                    kv_cache_bytes=[c.most_held for c in contexts])
