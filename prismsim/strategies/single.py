"""single: the whole model on one device, no messages (the reference baseline)."""

from __future__ import annotations

from dataclasses import dataclass

from prismsim.models.stack import Inputs, ModelStack
from prismsim.strategies import rowwise
from prismsim.strategies.program import DeviceContext, Program


@dataclass(frozen=True)
class Options:
    """single has no options."""


def program(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options
            ) -> Program:
    if ctx.n_devices != 1:
        raise ValueError(f"single runs on one device, got {ctx.n_devices}")
    plan = rowwise.RowwisePlan(segments=((1,) * ctx.n_tokens,), senders=((),),
                               summarize=lambda r: None)
    return rowwise.run(ctx, stack, inputs, plan)
