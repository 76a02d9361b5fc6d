"""Strategies: one file each, registered in a plain dict by name with what each can do.

Each module has ``Options`` (a frozen dataclass, defaults commented) and
``program(ctx, stack, inputs, options)`` returning that device's generator; a strategy
that decodes also has ``generate(ctx, stack, inputs, options, decode)``. ``STRATEGIES``
maps a name to a :class:`StrategyEntry`: its module's import path and what it can do,
declared beside it, so listing names and asking what a strategy can do (``prismsim
check``, every grid) imports no torch. A plug-in adds its own entry.

:func:`why_not` is the one answer to "can this strategy run on this model at P devices,
decode, use this exchange?": None, or the reason it cannot. Programs are made only for
what it allows (:class:`CannotRunError` otherwise), and grids skip the rest, saying why.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from prismsim.strategies.program import DeviceContext, Program
from prismsim.workload import MASTER

if TYPE_CHECKING:
    from prismsim.models.stack import Inputs, ModelStack
    from prismsim.strategies.decoding import Decode

# how a row-wise strategy's rows or means travel (rowwise.py says each); the first: default
EXCHANGES = ("p2p", "broadcast", "ring")
SKIPPED = "skipped"  # a grid's column: why_not's reason, where a configuration could not run


@dataclass(frozen=True)
class StrategyEntry:
    """A strategy's module and what it can do (``tests/test_strategy_registry.py`` holds
    each declaration to its module)."""

    module: str  # import path of the module with Options and program(...)
    decodes: bool = False  # has generate(...): a prefill, then token-by-token decoding
    exchanges: tuple[str, ...] = ()  # its ``exchange=`` patterns; (): no such option
    # each device holds whole KV groups (heads): P <= the model's KV heads
    shards_heads: bool = False
    exact: bool = False  # its output is one device's, up to float rounding


STRATEGIES: dict[str, StrategyEntry] = {
    "single": StrategyEntry("prismsim.strategies.single", decodes=True, exact=True),
    "voltage": StrategyEntry("prismsim.strategies.voltage", decodes=True,
                             exchanges=EXCHANGES, exact=True),
    "prism": StrategyEntry("prismsim.strategies.prism", decodes=True, exchanges=EXCHANGES),
    "tensor_parallel": StrategyEntry("prismsim.strategies.tensor_parallel", decodes=True,
                                     shards_heads=True, exact=True),
    "galaxy": StrategyEntry("prismsim.strategies.galaxy", shards_heads=True, exact=True),
}


@dataclass(frozen=True)
class Heads:
    """A model's attention heads: query heads and the key/value heads they share (fewer
    under grouped-query attention, as many without)."""

    query: int
    kv: int


class CannotRunError(ValueError):
    """A program asked of a strategy for what it cannot do; the message is the reason."""


def stack_heads(stack: ModelStack) -> Heads | None:
    """The heads of the stack's block with the fewest KV heads (what bounds a split)."""
    if not stack.blocks:
        return None
    block = min(stack.blocks, key=lambda b: b.n_kv_heads)
    return Heads(block.n_heads, block.n_kv_heads)


def strategy_entry(name: str) -> StrategyEntry:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}") from None


def why_not(name: str, devices: int | None = None, heads: Heads | None = None, *,
            decode: bool = False, exchange: str | None = None) -> str | None:
    """Why strategy ``name`` cannot run on ``devices`` devices of a model with ``heads``,
    decode (``decode``) or send with ``exchange``; None when it can. What is not asked
    (None) or not known (``heads`` None) is not held against it."""
    entry = strategy_entry(name)
    if decode and not entry.decodes:
        return (f"strategy {name!r} has no decoding; these have: "
                f"{', '.join(decoding_strategies())}")
    if exchange is not None and exchange not in (entry.exchanges or EXCHANGES[:1]):
        return (f"{name} has no exchange {exchange!r}; its: "
                f"{', '.join(entry.exchanges) if entry.exchanges else 'none'}")
    if entry.shards_heads and devices is not None and heads is not None \
            and devices > heads.kv:
        kind = "heads" if heads.kv == heads.query else "KV heads"
        return f"{name} needs P <= {heads.kv}: this model has only {heads.kv} {kind}"
    return None


def decoding_strategies() -> list[str]:
    return [name for name, entry in STRATEGIES.items() if entry.decodes]


def get_strategy(name: str) -> ModuleType:
    return importlib.import_module(strategy_entry(name).module)


def make_options(name: str, **options: Any) -> Any:
    """The strategy's Options from keyword arguments; unknown names are errors."""
    cls = get_strategy(name).Options
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"strategy {name!r} has no option(s) {unknown}; "
                         f"its options: {sorted(known) or 'none'}")
    return cls(**options)


def _check_runs(name: str, contexts: list[DeviceContext], stack: ModelStack,
                decode: bool = False) -> None:
    """CannotRunError with :func:`why_not`'s reason, unless the strategy can run these."""
    devices = contexts[0].n_devices if contexts else None
    reason = why_not(name, devices, stack_heads(stack), decode=decode)
    if reason:
        raise CannotRunError(reason)


def make_programs(name: str, contexts: list[DeviceContext], stack: ModelStack,
                  inputs: Inputs, options: Any) -> list[Program]:
    """One program per device; only the master sees the inputs."""
    _check_runs(name, contexts, stack)
    module = get_strategy(name)
    return [module.program(ctx, stack, inputs if ctx.device == MASTER else None, options)
            for ctx in contexts]


def make_decoding_programs(name: str, contexts: list[DeviceContext], stack: ModelStack,
                           inputs: Inputs, options: Any, decode: Decode) -> list[Program]:
    """One program per device that prefills ``inputs`` and then decodes (the strategy's
    ``generate``; only strategies declared to decode have one)."""
    _check_runs(name, contexts, stack, decode=True)
    module = get_strategy(name)
    return [module.generate(ctx, stack, inputs if ctx.device == MASTER else None, options,
                            decode) for ctx in contexts]
