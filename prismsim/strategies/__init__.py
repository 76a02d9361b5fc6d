"""Strategies: one file each, registered in a plain dict by name.

Each module has ``Options`` (a frozen dataclass, defaults commented) and
``program(ctx, stack, inputs, options)`` returning that device's generator.
``STRATEGIES`` maps a name to its module's import path, so listing and checking names
(``prismsim check``) imports no torch; a plug-in adds its own module path.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from prismsim.strategies.program import DeviceContext, Program
from prismsim.workload import MASTER

if TYPE_CHECKING:
    from prismsim.models.stack import Inputs, ModelStack
    from prismsim.strategies.decoding import Decode

STRATEGIES: dict[str, str] = {
    "single": "prismsim.strategies.single",
    "voltage": "prismsim.strategies.voltage",
    "prism": "prismsim.strategies.prism",
    "tensor_parallel": "prismsim.strategies.tensor_parallel",
    "galaxy": "prismsim.strategies.galaxy",
}


def get_strategy(name: str) -> ModuleType:
    try:
        return importlib.import_module(STRATEGIES[name])
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


def make_decoding_programs(name: str, contexts: list[DeviceContext], stack: ModelStack,
                    inputs: Inputs, options: Any, decode: Decode) -> list[Program]:
    """One program per device that prefills ``inputs`` and then decodes (the strategy's
    ``generate``; strategies without one cannot decode)."""
    module = get_strategy(name)
    if not hasattr(module, "generate"):
        raise ValueError(f"strategy {name!r} has no decoding; these have: "
                         f"{', '.join(decoding_strategies())}")
    return [module.generate(ctx, stack, inputs if ctx.device == MASTER else None, options,
                            decode) for ctx in contexts]


def decoding_strategies() -> list[str]:
    return [n for n in STRATEGIES if hasattr(get_strategy(n), "generate")]
