"""What operators timed one at a time miss when they run in sequence: the generic
Transformer stack of ``probe_stack`` (not any catalog model's code, nor any strategy's
program) is timed whole at several sizes, and its time against what the operator table
predicts for its recorded operators gives three terms (``sequence_costs``): a factor on
the table's time (on this kind of host a block's operators run slower one after another
than each in a loop of its own: the caches, the branch predictors and the library's
packed buffers serve another operator in between) and a cost per operator on top, one
for views and one for the others (the Python and dispatch between operators, which
dominates a one-token decoding step; a view, which moves nothing, costs less than an
operator that computes). Two of the probes close each block with no-op view pairs, so
the share of views varies and the two costs can be told apart. A patch-embedding
convolution is timed beside the product of the same sizes: ``conv_factor``.

Each probe is timed cold, as the table's operators are: its forwards cycle through copies
of its weights that together fill COLD_BYTES. Timed warm (one copy again and again), a
one-token probe of width 256 ran in 0.58 of its operators' (cold) times and one of width
64 in 1.43: the fitted terms then mixed the cache with the dispatch and moved from one
profile to the next (5.0, 1.4 and 3.9 us an operator).

A device whose whole working set fits the host's last-level cache (a small model
decoding one token after another) does not stream its weights from memory: its steps run
warm. ``warm_sequence_costs`` fits the same three terms for it, over the probes
(WARM_PROBES) whose weights fit half the cache, each timed back to back on one copy
against the table's warm products, relative to the warm reference (``gauge.WarmGauge``),
in interleaved passes (WARM_PASSES): in a slow spell of this host a warm probe slowed by
up to 1.9 times where the cold reference slowed by 1.3, and fits over probes timed one
after another put the cost per operator anywhere from 1.1 to 2.5 us. On this host a
one-token llama-tiny block ran 207 us where the cold terms gave it 464 (the per-operator
cost of a cold one-token probe, 4.4 us, is most of it: the same probe of width 64 back
to back took 253 us, after a gauge reading 475 us).

The probes' sizes (widths 64-512; 1, 8, 64 and 128 tokens) are off every shape the
validation models run, so the terms are properties of the host, not fitted to them.
"""

from __future__ import annotations

import functools
import itertools
import math
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from prismsim.cost.op_record import record_ops
from prismsim.cost.op_table import OperatorTable
from prismsim.profiling.gauge import COLD_BYTES, Gauge, WarmGauge, median_call_s
from prismsim.profiling.probe_stack import probe_stack

# (width, tokens, no-op view pairs a block) of the probe stacks: two whole-sequence ones,
# three decoding-like, and two with three times as many views as operators that compute
PROBES = ((256, 64, 0), (512, 128, 0), (64, 1, 0), (256, 1, 0), (512, 8, 0), (64, 1, 24),
          (256, 8, 24))
# the warm probes: widths 64-256 (weights up to 12.6 MB), 1 to 128 tokens, two with views
WARM_PROBES = ((256, 64, 0), (64, 1, 0), (256, 1, 0), (64, 1, 24), (256, 8, 24), (64, 64, 0),
               (128, 128, 0), (64, 8, 0), (128, 8, 24))
WARM_PASSES = 3  # interleaved passes over the warm probes ...
WARM_BATCHES = 2  # ... each probe timed in this many batches a pass
PROBE_LAYERS = 4  # layers of each probe stack, each with its own weights
MAX_COPIES = 128  # copies of a probe stack cycled through, at most
PATCHES = ((64, 256, 8), (256, 128, 8))  # (image side, channels out, patch side)


def _timed_ratio(fn: object, x: Tensor, predicted_s: float, gauge: Gauge, reps: int = 7
                 ) -> float:
    """Median over ``reps`` of (seconds of fn(x) over the gauge's reading around it) over
    ``predicted_s`` (in the gauge's units too)."""
    fn(x)  # type: ignore[operator]
    ratios = []
    for _ in range(reps):
        before = gauge.seconds()
        start = time.perf_counter()
        fn(x)  # type: ignore[operator]
        took_s = time.perf_counter() - start
        ratios.append(took_s / ((before + gauge.seconds()) / 2))
    return statistics.median(ratios) / predicted_s


def _back_to_back_ratios(fn: Callable, x: Tensor, gauge: Gauge | WarmGauge, reps: int,
                         batch_s: float = 0.02) -> list[float]:
    """Per batch of ``reps``: the median call of ``fn(x)`` called again and again for
    ``batch_s`` (after two that warm it) over the gauge's readings around the batch."""
    ratios = []
    for _ in range(reps):
        before = gauge.seconds()
        call_s = median_call_s(functools.partial(fn, x), batch_s, 5)
        ratios.append(call_s / ((before + gauge.seconds()) / 2))
    return ratios


def interleaved_medians(timers: Sequence[Callable[[], list[float]]], passes: int
                        ) -> list[float]:
    """Each timer's median reading over ``passes`` passes over all of them in turn: a
    slow spell of the host lasting less than a pass spoils one pass of each, not every
    reading of some."""
    readings: list[list[float]] = [[] for _ in timers]
    for _ in range(passes):
        for out, timer in zip(readings, timers, strict=True):
            out.extend(timer())
    return [statistics.median(out) for out in readings]


def _weight_bytes(stack: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in stack.parameters())


def cold_forward(width: int, tokens: int, view_pairs: int) -> tuple[Callable, Tensor]:
    """A forward of the probe stack that takes the next of enough copies of its weights
    to fill COLD_BYTES (at most MAX_COPIES), each already called once: when a copy comes
    round again the others have pushed it out of the cache. And its input."""
    stack, x = probe_stack(width, tokens, PROBE_LAYERS, view_pairs)
    weight_bytes = _weight_bytes(stack)
    copies = [stack] + [probe_stack(width, tokens, PROBE_LAYERS, view_pairs)[0] for _ in
                        range(min(MAX_COPIES, math.ceil(COLD_BYTES / weight_bytes)) - 1)]
    for copy in copies:
        copy(x)
    turn = itertools.cycle(copies)
    return lambda inputs: next(turn)(inputs), x


SequenceCosts = tuple[float, float, float]  # factor, seconds a computing op, a view op


def fit_sequence_costs(points: list[tuple[float, int, int, float]]) -> SequenceCosts:
    """(factor, seconds per computing operator, seconds per view) from probes given as
    (the table's seconds for their operators, how many compute, how many are views,
    seconds timed): least squares on each probe's error relative to its time, so a
    one-token probe counts as much as a large one. Where a view's cost comes out negative
    it is 0 and the other two fitted again; where the cost per operator is not physical
    either, both are 0 and the factor is the median ratio."""
    for columns in ((0, 1, 2), (0, 1)):
        rows = np.array([(t / m, n / m, v / m) for t, n, v, m in points])[:, columns]
        terms = np.linalg.lstsq(rows, np.ones(len(points)), rcond=None)[0]
        if terms[0] > 0 and (terms[1:] >= 0).all():
            return float(terms[0]), float(terms[1]), float(terms[2]) if len(terms) > 2 else 0.0
    return statistics.median(m / t for t, _, _, m in points), 0.0, 0.0


def sequence_costs(table: OperatorTable) -> SequenceCosts:
    """The table's ``sequence_factor``, ``op_overhead_s`` and ``view_overhead_s`` (in the
    units of its reference, as its entries) from the probe stacks of PROBES, each timed
    whole."""
    assert table.reference_s is not None
    gauge, points = Gauge(), []
    for width, tokens, view_pairs in PROBES:
        forward, x = cold_forward(width, tokens, view_pairs)
        _, _, ops = record_ops(forward, (x,))
        alone_s = sum(table.op_s(k) * c for k, c in ops)
        timed_s = _timed_ratio(forward, x, 1.0, gauge) * table.reference_s
        views = sum(c for k, c in ops if k[0] == "view")
        points.append((alone_s, sum(c for _, c in ops) - views, views, timed_s))
    return fit_sequence_costs(points)


def warm_sequence_costs(table: OperatorTable) -> SequenceCosts | None:
    """``sequence_costs`` of a device that runs warm (``OperatorTable.fits_cache``): over
    the WARM_PROBES whose weights fit half the table's ``cache_bytes``, each one copy
    timed back to back in WARM_PASSES interleaved passes, against the table's warm
    products and relative to the warm reference (``gauge.WarmGauge``) where the table
    has its reading. None: under three such probes."""
    assert table.reference_s is not None and table.cache_bytes is not None
    gauge = Gauge() if table.warm_reference_s is None else WarmGauge()
    unit_s = table.warm_reference_s or table.reference_s
    probes, timers = [], []
    for width, tokens, view_pairs in WARM_PROBES:
        stack, x = probe_stack(width, tokens, PROBE_LAYERS, view_pairs)
        if _weight_bytes(stack) * 2 <= table.cache_bytes:
            probes.append(_counted(table, stack, x))
            timers.append(functools.partial(_back_to_back_ratios, stack, x, gauge,
                                            WARM_BATCHES))
    if len(probes) < 3:
        return None
    ratios = interleaved_medians(timers, WARM_PASSES)
    return fit_sequence_costs([(alone_s, ops, views, ratio * unit_s)
                               for (alone_s, ops, views), ratio in zip(probes, ratios,
                                                                       strict=True)])


def _counted(table: OperatorTable, stack: nn.Module, x: Tensor) -> tuple[float, int, int]:
    """A warm probe's operators: the table's warm seconds for them alone, how many
    compute, how many are views."""
    _, _, ops = record_ops(stack, (x,))
    views = sum(c for k, c in ops if k[0] == "view")
    return (sum(table.op_s(k, warm=True) * c for k, c in ops),
            sum(c for _, c in ops) - views, views)


def conv_factor(table: OperatorTable) -> float:
    """Median over PATCHES of a patch-embedding convolution's time over the table's time
    for the matrix product it is (``op_record`` keys it so)."""
    assert table.reference_s is not None
    gauge, out = Gauge(), []
    for side, channels, patch in PATCHES:
        conv = nn.Conv2d(3, channels, patch, stride=patch)
        x = torch.randn(1, 3, side, side)
        _, _, ops = record_ops(conv, (x,))
        mm = sum(table.op_s(("mm", *k[1:])) * c for k, c in ops if k[0] == "conv")
        rest = sum(table.op_s(k) * c for k, c in ops if k[0] != "conv")
        whole = _timed_ratio(conv, x, 1.0, gauge) * table.reference_s
        out.append(max(whole - rest, 0.0) / mm)
    return statistics.median(out)
