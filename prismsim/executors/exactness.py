"""Exactness report: every strategy's output against the HF model's own eager forward."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from prismsim.configuration import (
    Configuration,
    command_configurations,
    grid_frame,
    prism_settings,
)
from prismsim.executors.memory import InMemoryNetwork, run_in_memory
from prismsim.models.load import load_model, random_inputs
from prismsim.models.stack import Inputs, ModelStack
from prismsim.strategies import SKIPPED, make_options, make_programs, stack_heads, why_not
from prismsim.strategies.contexts import make_contexts
from prismsim.workload import MASTER


def _agreement(out: Tensor, ref: Tensor) -> float:
    """Share of positions whose arg-max class/token matches the reference."""
    return float((out.argmax(-1) == ref.argmax(-1)).float().mean())


def check_numerics(model: str = "vit-base", strategies: Iterable[str] = ("single", "voltage"),
                   devices: Iterable[int] = (2, 3), crs: Iterable[float] = (4.0,),
                   batch: int = 1, seed: int = 0) -> pd.DataFrame:
    """One row a point: the output's largest deviation from the HF eager forward
    (relative to the output's largest magnitude), arg-max agreement, and the bytes and
    messages the devices sent (float32, one copy per recipient). A strategy that cannot
    run on the model at P (``strategies.why_not``) is a row saying why (``skipped``)."""
    stack = load_model(model, seed=seed)
    inputs = random_inputs(stack, batch=batch, seed=seed)
    ref = stack.reference(inputs)
    heads, rows = stack_heads(stack), []
    for c in command_configurations(strategies, devices, prism_settings(crs)):
        reason = why_not(c.strategy, c.devices, heads)
        rows.append(_skipped(stack, inputs, c, reason) if reason
                    else _checked(stack, inputs, ref, c))
    return grid_frame(rows)


def _columns(stack: ModelStack, tokens: int, c: Configuration) -> dict[str, Any]:
    return {"model": stack.name, "tokens": tokens, "strategy": c.strategy,
            "devices": c.devices, "cr": c.cr}


def _checked(stack: ModelStack, inputs: Inputs, ref: Tensor, c: Configuration
             ) -> dict[str, Any]:
    """Configuration ``c`` run in memory against the reference output ``ref``."""
    contexts = make_contexts(stack, inputs, c.devices)
    net = InMemoryNetwork(c.devices)
    programs = make_programs(c.strategy, contexts, stack, inputs,
                             make_options(c.strategy, **c.options()))
    with torch.no_grad():
        out = run_in_memory(programs, net)[MASTER]
    return {**_columns(stack, contexts[0].n_tokens, c),
            "max_rel_err": float((out - ref).abs().max()) / float(ref.abs().max()),
            "argmax_agreement": _agreement(out, ref),
            "bytes_sent": sum(net.sent_bytes), "messages": sum(net.sent_messages)}


def _skipped(stack: ModelStack, inputs: Inputs, c: Configuration, reason: str
             ) -> dict[str, Any]:
    tokens = stack.n_tokens(inputs)
    return {**_columns(stack, tokens, c), "max_rel_err": None, "argmax_agreement": None,
            "bytes_sent": None, "messages": None, SKIPPED: reason}
