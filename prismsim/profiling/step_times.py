"""A strategy's own compute steps, each timed in isolation in this process: the
validation's "simulated" column (not held out: it shows what the operator table adds to
the error), never a part of a held-out prediction."""

from __future__ import annotations

import statistics
from typing import Any

import torch

from prismsim.executors.memory import run_in_memory
from prismsim.executors.timed import TimedContext
from prismsim.models.load import load_model, random_inputs
from prismsim.strategies import make_decoding_programs, make_options, make_programs
from prismsim.strategies.contexts import make_contexts
from prismsim.strategies.decoding import Decode


def step_seconds(model: str, strategy: str, devices: int, batch: int = 1, reps: int = 7,
                 decode: tuple[int, int] | None = None, **options: Any
                 ) -> list[list[float]]:
    """Median seconds of every compute step of every device's program, in program order,
    each timed in this process with one torch thread (all devices run in turn, messages in
    memory): the compute cost of the strategy's own shapes, free of any contention.
    ``decode`` (prompt tokens, tokens generated): the generation's programs."""
    torch.set_num_threads(1)
    stack = load_model(model, seed=0)
    tokens, generate = decode or (None, None)
    inputs = random_inputs(stack, batch=batch, tokens=tokens, seed=0)
    opts = make_options(strategy, **options)
    runs = []
    with torch.no_grad():
        for _ in range(reps + 1):  # the first warms up
            ctxs = [TimedContext(c.device, c.sizes, c.batch, c.hidden)
                    for c in make_contexts(stack, inputs, devices)]
            programs = (make_programs(strategy, ctxs, stack, inputs, opts) if generate is None
                        else make_decoding_programs(strategy, ctxs, stack, inputs, opts,
                                             Decode(steps=generate)))
            run_in_memory(programs)
            runs.append([[end - start for _, _, start, end in c.steps] for c in ctxs])
    return [[statistics.median(r[d][i] for r in runs[1:]) for i in range(len(runs[0][d]))]
            for d in range(devices)]
