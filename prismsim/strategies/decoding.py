"""Token-by-token decoding after a partitioned prefill: what every decoding program shares.

Generating ``steps`` tokens: the prefill's last row gives the first (its time is the time
to first token); each of the ``steps - 1`` decode steps feeds the previous token, at the
next position, through every block and gives the next one. The device that *owns*
decoding (row-wise strategies: the last device, whose partition ends the sequence;
tensor_parallel: the master) runs the head and picks each token, greedily or, with
``forced``, as told (teacher forcing, for the likelihood of a given continuation).

Every device keeps a :class:`KVCache` per block: the rotated keys and the values of the
rows it attends over. Compute steps and messages of decode step i are tagged ``t{i}.…``
(the prefill's head ``t0.head``), so a timeline or simulator finds each token's end.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from prismsim.models.stack import ModelStack
from prismsim.strategies.program import DeviceContext, Tag


@dataclass(frozen=True)
class Decode:
    """What to generate after the prompt."""

    steps: int  # tokens to generate (>= 1): the first from the prefill, then steps-1 steps
    # [B, steps] or None: teacher forcing, the token taken as output j is forced[:, j]
    # (None: the greedy choice, argmax of the logits)
    forced: Tensor | None = None

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"generate at least one token, not {self.steps}")
        if self.forced is not None and self.forced.shape[1] != self.steps:
            raise ValueError(f"forced tokens are {self.forced.shape[1]} a row, "
                             f"not the {self.steps} steps generated")


@dataclass
class Generation:
    """What decoding returns on the device that owns it."""

    tokens: Tensor  # [B, steps] the tokens taken (greedy choices, or the forced ones)
    logits: Tensor  # [B, steps, V] the logits each token was chosen from


class KVCache:
    """One block's keys (rotated where the model has RoPE) and values on one device,
    [B, h_kv, n, dh] each, with an additive key bias [1, n] (log-counts of Segment
    Means; None while every key is one token)."""

    def __init__(self, k: Tensor, v: Tensor, bias: Tensor | None = None):
        self.k, self.v, self.bias = k, v, bias

    def take(self, k: Tensor, v: Tensor, bias: Tensor | None = None) -> None:
        """Hold the keys and values [B, h_kv, n + t, dh] a step grew out of these (with
        their key bias [1, n + t]): a step concatenates the cache with its new rows
        once, inside it, where the trace and the timer see it."""
        self.k, self.v, self.bias = k, v, bias

    def hold(self, ctx: DeviceContext, layer: int) -> None:
        """Tell ``ctx`` this is what it now keeps for block ``layer``."""
        ctx.hold(f"kv.L{layer}", self.k, self.v, self.bias)


def check_decodable(stack: ModelStack) -> None:
    if not stack.causal or stack.embed_ids is None:
        raise ValueError(f"decoding needs a causal language model (gpt2, llama family); "
                         f"{stack.name} is not one")


def step_tag(step: int, name: str, layer: int | None = None) -> Tag:
    """Decode step ``step``'s ``name``: Tag("t3.q", 5) is L5.t3.q."""
    return Tag(f"t{step}.{name}", layer)


def last_logits(stack: ModelStack, x: Tensor) -> Tensor:
    """The head over the last row of x [B, n, d]: logits [B, 1, V]."""
    return stack.head.finish(stack.head.local(x[:, -1:]))


def _choose(decode: Decode, logits: Tensor, j: int) -> Tensor:
    if decode.forced is not None:
        return decode.forced[:, j:j + 1]  # [B, 1]
    return logits[:, -1].argmax(dim=-1, keepdim=True)  # [B, 1]


StepFn = Callable[[int, Tensor], Generator[Any, Any, Tensor]]


def own_decoding(ctx: DeviceContext, stack: ModelStack, decode: Decode, x: Tensor,
                 step: StepFn) -> Generator[Any, Any, Generation]:
    """The owner's loop, from the prefill's final rows x [B, n, d] on: head, choice,
    embedding at the next position, ``step(i, row)`` through every block, again."""
    logits = [ctx.compute(step_tag(0, "head"), last_logits, stack, x)]  # [B, 1, V] each
    tokens = [_choose(decode, logits[0], 0)]
    for i in range(1, decode.steps):
        row = ctx.compute(step_tag(i, "embed"), stack.embed_ids, tokens[-1],
                          ctx.n_tokens + i - 1)  # [B, 1, d]
        row = yield from step(i, row)
        logits.append(ctx.compute(step_tag(i, "head"), last_logits, stack, row))
        tokens.append(_choose(decode, logits[-1], i))
    return Generation(tokens=torch.cat(tokens, dim=1), logits=torch.cat(logits, dim=1))
