"""voltage: position-wise partitioning (Hu & Li, ICDCS 2024).

Device p holds rows X_p [B, n_p, d]. Per block: Q from X_p, K and V from the full
sequence [X_p ; X_r for r != p] ([B, N, d]), so after every block each device sends its
n_p x d output rows to the others (an AllGather). Output equals the single device.
In a causal model a device only attends to earlier rows, so with ``skip_masked`` rows go
only to later devices (fewer bytes and FLOPs, same output).
"""

from __future__ import annotations

from dataclasses import dataclass

from prismsim.models.stack import Inputs, ModelStack
from prismsim.strategies import rowwise
from prismsim.strategies.program import DeviceContext, Program


@dataclass(frozen=True)
class Options:
    # True: causal models exchange only rows some query can see. False reproduces the
    # paper's accounting (full score matrix computed, then masked).
    skip_masked: bool = True


def plan(ctx: DeviceContext, stack: ModelStack, options: Options) -> rowwise.RowwisePlan:
    segments = tuple((1,) * n for n in ctx.sizes)  # every row is its own "segment"
    senders = rowwise.needed_senders(ctx, segments, stack.causal, options.skip_masked)
    return rowwise.RowwisePlan(segments=segments, senders=senders, summarize=lambda r: None)


def program(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options
            ) -> Program:
    return rowwise.run(ctx, stack, inputs, plan(ctx, stack, options))
