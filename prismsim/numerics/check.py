"""Exactness report: every strategy's output against the HF model's own eager forward."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from prismsim.models import load_model, random_inputs
from prismsim.numerics.executor import InMemoryNetwork, make_contexts, run_in_memory
from prismsim.strategies import make_options, make_programs
from prismsim.strategies.program import MASTER


@dataclass(frozen=True)
class Point:
    strategy: str
    devices: int
    options: dict[str, Any]


def expand_points(strategies: Iterable[str], devices: Iterable[int], crs: Iterable[float]
                  ) -> list[Point]:
    """single once on one device; the others at every device count (prism at every CR)."""
    points = []
    for name in strategies:
        if name == "single":
            points.append(Point("single", 1, {}))
            continue
        for p in devices:
            opts = [{"cr": cr} for cr in crs] if name == "prism" else [{}]
            points += [Point(name, p, o) for o in opts]
    return points


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
    for pt in expand_points(strategies, devices, crs):
        contexts = make_contexts(stack, inputs, pt.devices)
        net = InMemoryNetwork(pt.devices)
        programs = make_programs(pt.strategy, contexts, stack, inputs,
                                 make_options(pt.strategy, **pt.options))
        with torch.no_grad():
            out = run_in_memory(programs, net)[MASTER]
        rows.append({
            "model": stack.name, "tokens": contexts[0].n_tokens, "strategy": pt.strategy,
            "devices": pt.devices, "cr": pt.options.get("cr"),
            "max_rel_err": float((out - ref).abs().max()) / scale,
            "argmax_agreement": _agreement(out, ref),
            "bytes_sent": sum(net.sent_bytes), "messages": sum(net.sent_messages),
        })
    return pd.DataFrame(rows)
