"""Strategies: one file each, registered in a plain dict by name.

Each module has ``Options`` (a frozen dataclass, defaults commented) and
``program(ctx, stack, inputs, options)`` returning that device's generator.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

from prismsim.models.stack import Inputs, ModelStack
from prismsim.strategies import galaxy, prism, single, tensor_parallel, voltage
from prismsim.strategies.program import MASTER, DeviceContext, Program

STRATEGIES: dict[str, ModuleType] = {
    "single": single,
    "voltage": voltage,
    "prism": prism,
    "tensor_parallel": tensor_parallel,
    "galaxy": galaxy,
}


def get_strategy(name: str) -> ModuleType:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}") from None


def make_options(name: str, **options: Any) -> Any:
    """The strategy's Options from keyword arguments; unknown names are errors."""
    cls = get_strategy(name).Options
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"strategy {name!r} has no option(s) {unknown}; "
                         f"its options: {sorted(known) or 'none'}")
    return cls(**options)


def make_programs(name: str, contexts: list[DeviceContext], stack: ModelStack,
                  inputs: Inputs, options: Any) -> list[Program]:
    """One program per device; only the master sees the inputs."""
    module = get_strategy(name)
    return [module.program(ctx, stack, inputs if ctx.device == MASTER else None, options)
            for ctx in contexts]
