"""What each device knows before it starts: its place and how the tokens are split
(``DeviceContext`` per device), the same for every executor."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from prismsim.models.stack import ModelStack
from prismsim.numerics.segments import partition_sizes
from prismsim.strategies.program import DeviceContext


def make_contexts(stack: ModelStack, inputs: dict[str, Tensor], devices: int,
                  weights: Sequence[float] | None = None) -> list[DeviceContext]:
    sizes = partition_sizes(stack.n_tokens(inputs), devices, weights)
    return [DeviceContext(device=p, sizes=sizes, batch=stack.batch(inputs), hidden=stack.hidden)
            for p in range(devices)]
