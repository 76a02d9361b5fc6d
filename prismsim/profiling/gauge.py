"""The host's speed of the moment, gauged by one small fixed Transformer stack.

A shared (virtual) machine does not keep one speed: on this kind of host the same
product takes up to 1.5x longer a minute later (CPU time taken by other machines, clock
changes). The relative cost of two operators moves far less than either. So an
operator table is kept in the units of a reference timed beside its entries, and a
prediction for a later moment multiplies by the reference timed then: no program of
the strategy is timed, only this reference. The reference is a forward of the generic
probe stack (``probe_stack.py``: width 256, 64 tokens, 2 blocks, ~3 ms), a mix of
products, attention and element-wise work like the steps it scales (one matrix product
alone, cache-resident, tracked the host's speed for small operators badly here).

Each forward takes the next of COPIES copies of the stack, which together hold more than
the host's last-level cache: its weights come from memory as a model's layers' do, and a
reading does not depend on what ran just before it. A reference read warm (one copy,
called again and again) runs up to a fifth faster than the same stack read after other
work, and the operator table is measured between other work: a warm reading in a
testbed round made every step predicted too fast.

Work that stays in the cache does not keep the cold reference's pace: in slow spells of
this host a warm one-token probe took up to 1.9 times its usual time while the cold
reference took 1.3 times. So what is timed warm while profiling (the warm products and
probes) is taken relative to a second, warm reference read beside the first
(:class:`WarmGauge`: a small probe stack, one copy, called back to back), and kept in
the table's units through that reference's median reading (``warm_reference_s``).
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable

import torch

from prismsim.profiling.probe_stack import probe_stack

# Operands (the operator table's) and probe stacks (the in-sequence probes') are cycled
# through copies filling this many bytes: a model's layers each bring their own weights
# and activations from memory, never the cache-warm ones a loop over one would time.
COLD_BYTES = 96 << 20
REFERENCE = (256, 64, 2)  # width, tokens and blocks of the reference probe stack
COPIES = 12  # copies of its weights cycled through: 75 MB, over a 32 MB L3
GAUGE_BATCH_S = 0.004  # one timed batch of references lasts about this long
WARM_REFERENCE = (128, 8, 4)  # width, tokens and blocks of the warm reference (2.6 MB)
# what an operator table's reference_s was timed with (OperatorTable.gauge)
GAUGE_NAME = f"probe stack {'x'.join(map(str, REFERENCE))}, {COPIES} copies cycled"


def _reference_call() -> Callable[[], object]:
    turn = itertools.cycle([probe_stack(*REFERENCE) for _ in range(COPIES)])

    def forward() -> object:
        stack, x = next(turn)
        with torch.no_grad():
            return stack(x)
    return forward


class Gauge:
    """Times the reference on demand (one torch thread, as the caller set)."""

    def __init__(self) -> None:
        self.call = _reference_call()
        self.call()
        start = time.perf_counter()
        self.call()
        self.reps = max(1, round(GAUGE_BATCH_S / max(time.perf_counter() - start, 1e-7)))

    def seconds(self, batches: int = 1) -> float:
        """Seconds of one reference forward: the median of ``batches`` timed batches."""
        out = []
        for _ in range(batches):
            start = time.perf_counter()
            for _ in range(self.reps):
                self.call()
            out.append((time.perf_counter() - start) / self.reps)
        return statistics.median(out)


class WarmGauge:
    """Times the warm reference on demand: one copy of its probe stack, two calls to
    bring it into the cache, then calls back to back for GAUGE_BATCH_S; a batch's
    reading is its median call."""

    def __init__(self) -> None:
        stack, x = probe_stack(*WARM_REFERENCE)

        def forward() -> object:
            with torch.no_grad():
                return stack(x)
        self.call = forward

    def seconds(self, batches: int = 1) -> float:
        """Seconds of one warm reference forward: the median of ``batches`` batches."""
        return statistics.median(median_call_s(self.call, GAUGE_BATCH_S, 3)
                                 for _ in range(batches))


def median_call_s(call: Callable[[], object], batch_s: float, min_calls: int) -> float:
    """The median seconds of ``call`` called again and again for ``batch_s`` (at least
    ``min_calls`` times), after two calls that bring what it touches into the cache."""
    call(), call()
    calls_s: list[float] = []
    end = time.perf_counter() + batch_s
    while time.perf_counter() < end or len(calls_s) < min_calls:
        start = time.perf_counter()
        call()
        calls_s.append(time.perf_counter() - start)
    return statistics.median(calls_s)


def gauge_s(batches: int = 5) -> float:
    """Seconds of one reference forward now, with one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return Gauge().seconds(batches)
    finally:
        torch.set_num_threads(threads)
