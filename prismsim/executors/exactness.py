"""Exactness report: every strategy's output against the HF model's own eager forward."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import torch
from torch import Tensor

from prismsim.configuration import command_configurations, prism_settings
from prismsim.executors.memory import InMemoryNetwork, run_in_memory
from prismsim.models.load import load_model, random_inputs
from prismsim.strategies import make_options, make_programs
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
    messages the devices sent (float32, one copy per recipient)."""
    stack = load_model(model, seed=seed)
    inputs = random_inputs(stack, batch=batch, seed=seed)
    ref = stack.reference(inputs)
    scale = float(ref.abs().max())
    rows = []
    for c in command_configurations(strategies, devices, prism_settings(crs)):
        contexts = make_contexts(stack, inputs, c.devices)
        net = InMemoryNetwork(c.devices)
        programs = make_programs(c.strategy, contexts, stack, inputs,
                                 make_options(c.strategy, **c.options()))
        with torch.no_grad():
            out = run_in_memory(programs, net)[MASTER]
        rows.append({
            "model": stack.name, "tokens": contexts[0].n_tokens, "strategy": c.strategy,
            "devices": c.devices, "cr": c.cr,
            "max_rel_err": float((out - ref).abs().max()) / scale,
            "argmax_agreement": _agreement(out, ref),
            "bytes_sent": sum(net.sent_bytes), "messages": sum(net.sent_messages),
        })
    return pd.DataFrame(rows)
