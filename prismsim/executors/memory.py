"""The in-memory executor: all P device programs in one process, messages in memory."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from prismsim.models.load import load_model, normalize_inputs
from prismsim.models.stack import ModelStack
from prismsim.numerics.segments import partition_sizes
from prismsim.strategies import make_decoding_programs, make_options, make_programs
from prismsim.strategies.contexts import make_contexts
from prismsim.strategies.decoding import Decode, Generation
from prismsim.strategies.driver import Driver, Transport
from prismsim.strategies.program import Inbox, Post, Program, Recv, Send, Tag
from prismsim.workload import MASTER


class DeadlockError(RuntimeError):
    """Every unfinished device waits for a message nobody will send."""


class InMemoryNetwork:
    """Mailboxes keyed by (destination, source, tag); FIFO per key. A transport for
    programs run in one process."""

    def __init__(self, n_devices: int):
        self.n_devices = n_devices
        self._boxes: dict[tuple[int, int, Tag], deque[Tensor]] = defaultdict(deque)
        self.sent_bytes = [0] * n_devices  # unicast accounting: one copy per recipient
        self.sent_messages = [0] * n_devices

    def send(self, device: int, op: Send) -> None:
        for msg in op.messages:
            recipients = msg.recipients(self.n_devices)
            for dst in recipients:
                self._boxes[(dst, msg.src, msg.tag)].append(msg.tensor)
            size_bytes = msg.tensor.numel() * msg.tensor.element_size()
            self.sent_bytes[msg.src] += size_bytes * len(recipients)
            self.sent_messages[msg.src] += len(recipients)

    def post(self, device: int, op: Post) -> None:
        """Nothing to do: in memory a message waits in its mailbox anyway."""

    def take(self, device: int, op: Recv) -> Inbox | None:
        keys = [(device, e.src, e.tag) for e in op.expects]
        if not all(self._boxes[k] for k in keys):
            return None
        items = []
        for e, k in zip(op.expects, keys, strict=True):
            t = self._boxes[k].popleft()
            if tuple(t.shape) != e.shape:
                raise ValueError(f"device {device}: message {e.tag} from {e.src} has shape "
                                 f"{tuple(t.shape)}, expected {e.shape}")
            items.append((e, t))
        return Inbox(items)

    def finish(self, device: int) -> None:
        """Nothing outstanding: sends were delivered when made."""


def run_in_memory(programs: Sequence[Program], net: Transport | None = None,
                  turn: Callable[[int], AbstractContextManager[Any]] | None = None
                  ) -> list[Any]:
    """Drive every generator until it finishes, round robin, each until it blocks;
    returns each device's result. ``turn(device)``: a context each stretch a device runs
    goes inside (what measures memory per device marks them with)."""
    net = net or InMemoryNetwork(len(programs))
    drivers = [Driver(p, gen, net) for p, gen in enumerate(programs)]
    turn = turn or (lambda device: nullcontext())
    while not all(d.done for d in drivers):
        progressed = []
        for d in drivers:
            if not d.done:
                with turn(d.device):
                    progressed.append(d.advance())
        if not any(progressed):
            waiting = [(d.device, d.blocked) for d in drivers if not d.done]
            raise DeadlockError(f"devices wait for messages that never come: {waiting}")
    return [d.result for d in drivers]


def run_numerics(model: str | nn.Module | ModelStack, inputs: Tensor | dict[str, Tensor],
                 strategy: str = "single", devices: int = 1, *,
                 weights: Sequence[float] | None = None, grad: bool = False,
                 **options: Any) -> Tensor:
    """Run ``strategy`` on ``devices`` simulated devices and return the master's output:
    what the HF model returns as its main output (logits, or the last hidden state).

    ``weights`` splits tokens in proportion to device speed instead of equally;
    ``options`` are the strategy's (prism: ``cr=`` or ``segments=``, ``duplicate=``, ...).
    ``grad``: record the graph, so a loss on the output back-propagates through every
    device's program to the parameters that require it (fine-tuning).
    """
    stack = load_model(model)
    inputs = normalize_inputs(stack, inputs)
    opts = make_options(strategy, **options)
    contexts = make_contexts(stack, inputs, devices, weights)
    with torch.set_grad_enabled(grad):
        results = run_in_memory(make_programs(strategy, contexts, stack, inputs, opts))
    return results[MASTER]


def run_generation(model: str | nn.Module | ModelStack, inputs: Tensor | dict[str, Tensor],
                   steps: int, strategy: str = "single", devices: int = 1, *,
                   forced: Tensor | None = None, weights: Sequence[float] | None = None,
                   **options: Any) -> Generation:
    """Prefill ``inputs`` (the prompt) with ``strategy`` on ``devices`` devices, then
    generate ``steps`` tokens (greedy, or ``forced`` [B, steps]: teacher forcing).
    Returns the owning device's tokens and logits."""
    stack = load_model(model)
    inputs = normalize_inputs(stack, inputs)
    opts = make_options(strategy, **options)
    contexts = make_contexts(stack, inputs, devices, weights)
    decode = Decode(steps=steps, forced=forced)
    with torch.no_grad():
        programs = make_decoding_programs(strategy, contexts, stack, inputs, opts, decode)
        results = run_in_memory(programs)
    return next(r for r in results if r is not None)


def forced_sizes(devices: int, length: int, prompt_tokens: int,
                 weights: Sequence[float] | None = None) -> list[int]:
    """Rows each device holds when a window of ``length`` tokens is fed as length - 1
    rows: the prompt split as the prefill splits it (by ``weights`` where given), the
    continuation on the last device, which decodes it."""
    sizes = list(partition_sizes(prompt_tokens, devices, weights))
    sizes[-1] += length - 1 - prompt_tokens
    return sizes


def run_forced_decoding(model: str | nn.Module | ModelStack, ids: Tensor, prompt_tokens: int,
                        strategy: str = "single", devices: int = 1, *,
                        weights: Sequence[float] | None = None, grad: bool = False,
                        **options: Any) -> Tensor:
    """Teacher-forced decoding of windows ids [B, length] after a prefill of their first
    ``prompt_tokens``, in one pass: the logits [B, length - prompt_tokens, V] that predict
    ids[:, prompt_tokens:]. A decoded row attends to its device's rows before it and to
    what the earlier partitions sent, exactly as a prefill row of the last partition does,
    so this is one prefill in which the last device's partition also holds the
    continuation (``tests/test_finetune_lm.py`` checks it against ``run_generation``);
    ``grad`` keeps the graph (fine-tuning)."""
    sizes = forced_sizes(devices, ids.shape[1], prompt_tokens, weights)
    logits = run_numerics(model, ids[:, :-1], strategy, devices, weights=sizes, grad=grad,
                          **options)  # [B, length - 1, V]
    return logits[:, prompt_tokens - 1:]  # [B, length - prompt_tokens, V]
