"""What operators timed one at a time miss when they run in sequence: the generic
Transformer stack of ``probe_stack`` (not any catalog model's code, nor any strategy's
program) is timed whole, and its time over what the operator table predicts
for its recorded operators is the table's ``sequence_factor`` (on this kind of host a
block's operators run slower one after another than each in a loop of its own: the
caches, the branch predictors and the library's packed buffers serve another operator
in between). A patch-embedding convolution is timed beside the product of the same
sizes: ``conv_factor``.

The probe's sizes (widths 256 and 512, 64 and 128 tokens) are off every shape the
validation models run, so the factor is a property of the host, not fitted to them.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import Tensor, nn

from prismsim.cost.op_record import record_ops
from prismsim.cost.op_table import OperatorTable
from prismsim.profiling.gauge import Gauge
from prismsim.profiling.probe_stack import probe_stack

PROBES = ((256, 64), (512, 128))  # (width, tokens) of the probe stacks
PROBE_LAYERS = 4  # layers of each probe stack, each with its own weights
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


def sequence_factor(table: OperatorTable) -> float:
    """Median over the probes of (timed stack) / (the table's sum over its operators),
    both in the units of the gauge (the table's entries are relative to reference_s)."""
    assert table.reference_s is not None
    gauge, out = Gauge(), []
    for width, tokens in PROBES:
        stack, x = probe_stack(width, tokens, PROBE_LAYERS)
        _, _, ops = record_ops(stack, (x,))
        predicted = sum(table.op_s(k) * c for k, c in ops) / table.reference_s
        out.append(_timed_ratio(stack, x, predicted, gauge))
    return statistics.median(out)


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
