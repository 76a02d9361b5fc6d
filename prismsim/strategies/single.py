"""single: the whole model on one device, no messages (the reference baseline)."""

from __future__ import annotations

from dataclasses import dataclass

from prismsim.models.stack import Inputs, ModelStack
from prismsim.strategies import rowwise, rowwise_decode
from prismsim.strategies.decoding import Decode
from prismsim.strategies.program import DeviceContext, Program


@dataclass(frozen=True)
class Options:
    """single has no options."""


def _plan(ctx: DeviceContext) -> rowwise.RowwisePlan:
    if ctx.n_devices != 1:
        raise ValueError(f"single runs on one device, got {ctx.n_devices}")
    return rowwise.RowwisePlan(segments=((1,) * ctx.n_tokens,), senders=((),),
                               summarize=lambda r: None)


def program(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options
            ) -> Program:
    return rowwise.run(ctx, stack, inputs, _plan(ctx))


def generate(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options,
             decode: Decode) -> Program:
    """Prefill, then decoding with the whole KV cache."""
    return rowwise_decode.generate(ctx, stack, inputs, _plan(ctx), decode, "local")
