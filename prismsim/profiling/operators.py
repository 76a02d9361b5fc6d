"""Measuring an operator table on this host (``prismsim profile-device``): matrix
products over a grid of sizes, each element-wise kind at a few sizes, and a view, with
one torch thread, in well under two minutes. The grid spans what partitioned
Transformer blocks run (a few tokens to a full batch; widths from 64 to 16k), not any
model's own shapes, so a model's steps are predicted from operators, never timed whole.

Every operator is timed in ROUNDS passes over the whole list (not ROUNDS times in a
row), and the reference of ``gauge`` (a probe stack) is timed between every GAUGE_EVERY operators:
each time is taken relative to the gauge readings around it, so the host's drift while
measuring cancels out. An entry is the median of its passes' relative times in seconds
of the gauge's median reading, which the table keeps as ``reference_s`` (a prediction
for another moment scales by the gauge read then); the spread of the passes is kept.
The warm products are taken relative to the warm reference read beside it
(``gauge.WarmGauge``), in seconds of its median reading (``warm_reference_s``).
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable
from itertools import product
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from prismsim.cost.op_record import record_ops
from prismsim.cost.op_table import Bandwidth, OperatorTable, Product
from prismsim.profiling.block_probe import conv_factor, sequence_costs, warm_sequence_costs
from prismsim.profiling.gauge import COLD_BYTES, GAUGE_NAME, Gauge, WarmGauge

MM_M = (1, 8, 32, 64, 128, 256, 512)  # rows: tokens x batch of one device's partition
MM_K = (64, 256, 1024, 4096)  # inner size: hidden or MLP width
MM_N = (64, 256, 1024, 4096, 16384)  # output width (up to an LM head's order)
BMM_B = (2, 12)  # batch x heads
BMM_MKN = (16, 64, 256, 512)  # queries, head size or keys
EW_ROWS = (4, 64, 1024, 16384)  # element-wise inputs of [rows, 256] floats: 4 KB-16 MB
BATCH_S = 0.005  # a timed batch of calls lasts at least this long
ROUNDS = 5  # passes over every operator; the median pass counts
GAUGE_EVERY = 12  # operators timed between two readings of the gauge (~0.1 s)

Call = Callable[[], object]


def _reps(fn: Call) -> int:
    """Calls in one timed batch of at least BATCH_S (after a warm-up call)."""
    fn()
    start = time.perf_counter()
    fn()
    return max(1, min(10_000, round(BATCH_S / max(time.perf_counter() - start, 1e-7))))


def seconds_per_call(fn: Call) -> float:
    """One batch of calls of ``fn`` (after a warm-up): seconds a call."""
    return _batch_s(fn, _reps(fn))


def _batch_s(fn: Call, reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def time_calls(calls: dict[object, Call], rounds: int = ROUNDS
               ) -> tuple[dict[object, list[float]], list[float], list[float]]:
    """Per pass, each call's seconds over the reference's seconds read around it
    (``rounds`` interleaved passes), and every reading of the gauge and of the warm one
    (``gauge.WarmGauge``, read beside it): a warm product (key ``("warm", ...)``) is
    taken relative to the warm reference, every other call to the cold one."""
    gauge, warm_gauge = Gauge(), WarmGauge()
    reps = {key: _reps(fn) for key, fn in calls.items()}
    out: dict[object, list[float]] = {key: [] for key in calls}
    readings, warm_readings = [gauge.seconds()], [warm_gauge.seconds()]
    keys = list(calls)
    for _ in range(rounds):
        for i in range(0, len(keys), GAUGE_EVERY):
            chunk = {key: _batch_s(calls[key], reps[key]) for key in keys[i:i + GAUGE_EVERY]}
            readings.append(gauge.seconds())
            warm_readings.append(warm_gauge.seconds())
            local_s = (readings[-2] + readings[-1]) / 2
            warm_local_s = (warm_readings[-2] + warm_readings[-1]) / 2
            for key, seconds in chunk.items():
                out[key].append(seconds / (warm_local_s if _is_warm(key) else local_s))
    return out, readings, warm_readings


def _is_warm(key: object) -> bool:
    return isinstance(key, tuple) and key[:1] == ("warm",)


_POOLS: dict[int, torch.Tensor] = {}  # by bytes: random floats operands are cut from


def _pool(pool_bytes: int) -> torch.Tensor:
    if pool_bytes not in _POOLS:
        _POOLS[pool_bytes] = torch.randn(pool_bytes // 4)
    return _POOLS[pool_bytes]


def _cold(fn: Callable[..., object], *shapes: tuple[int, ...], pool_bytes: int = COLD_BYTES
          ) -> Call:
    """A call of ``fn`` on operands of these shapes, each call on the next of enough
    sets to cover ``pool_bytes`` (COLD_BYTES: none is still in cache when it comes round
    again; half the cache: each comes from the cache, not from a core's own): the sets
    are consecutive slices of one random pool, so making them costs nothing."""
    sizes = [math.prod(s) for s in shapes]
    per_set = sum(sizes)
    if per_set > pool_bytes // 4:  # larger than the pool: one set of its own
        sets = [[torch.randn(s) for s in shapes]]
    else:
        pool, sets = _pool(pool_bytes), []
        for i in range(min(64, pool_bytes // 4 // per_set)):
            starts = itertools.accumulate(sizes, initial=i * per_set)  # one more than sizes
            sets.append([pool[a:a + n].view(s)
                         for a, n, s in zip(starts, sizes, shapes, strict=False)])
    turn = itertools.cycle(sets)
    return lambda: fn(*next(turn))


CPU_CACHES = Path("/sys/devices/system/cpu/cpu0/cache")  # Linux: one folder a cache level


def cache_bytes(caches: Path = CPU_CACHES) -> int | None:
    """This host's last-level cache, bytes (None where ``caches`` does not say)."""
    sizes = {}
    for index in caches.glob("index*"):
        try:
            level = int((index / "level").read_text())
            size = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
        if size.rstrip("KMG").isdigit():
            sizes[level] = int(size.rstrip("KMG")) * unit
    return sizes[max(sizes)] if sizes else None


def _product_calls(warm_bytes: int | None) -> dict[object, Call]:
    """Every product of the grid cold, and with ``warm_bytes`` again with its operands
    cycled through that many bytes (keyed ("warm", sizes))."""
    calls: dict[object, Call] = {}
    for pool, tag in ((COLD_BYTES, ()), (warm_bytes, ("warm",))):
        if pool is None:
            continue
        for m, k, n in product(MM_M, MM_K, MM_N):
            calls[(*tag, m, k, n)] = _cold(F.linear, (m, k), (n, k), pool_bytes=pool)
        for b, m, k, n in product(BMM_B, BMM_MKN, BMM_MKN, BMM_MKN):
            calls[(*tag, b, m, k, n)] = _cold(torch.bmm, (b, m, k), (b, k, n),
                                              pool_bytes=pool)
    return calls


def _ew_calls() -> dict[object, Call]:
    calls: dict[object, Call] = {}
    for rows in EW_ROWS:
        x, y = torch.randn(rows, 256), torch.randn(rows, 256)
        w, b = torch.ones(256), torch.zeros(256)
        calls.update({
            ("layer_norm", rows): lambda x=x, w=w, b=b: F.layer_norm(x, (256,), w, b),
            ("softmax", rows): lambda x=x: torch.softmax(x, dim=-1),
            ("unary", rows): lambda x=x: F.gelu(x), ("binary", rows): lambda x=x, y=y: x + y,
            ("reduce", rows): lambda x=x: x.mean(dim=0), ("copy", rows): x.clone})
    return calls


def _bandwidths(calls: dict[object, Call], secs: dict[object, float]) -> dict[str, Bandwidth]:
    """Per kind: fixed cost and bandwidth fitted over the sizes measured (bytes as
    tracing counts them for the same call), least squares on relative error so small
    operators' fixed cost counts as much as large ones' bandwidth."""
    points: dict[str, list[tuple[int, float]]] = {}
    for (kind, rows), call in calls.items():  # type: ignore[misc]
        points.setdefault(kind, []).append((record_ops(call, ())[1], secs[(kind, rows)]))
    out = {}
    for kind, pts in points.items():
        moved, seconds = np.array(pts, dtype=float).T
        per_byte, fixed = np.polyfit(moved, seconds, 1, w=1.0 / seconds)
        out[kind] = Bandwidth(fixed_s=max(float(fixed), 0.0),
                              bytes_per_s=1.0 / max(float(per_byte), 1e-15))
    return out


def _grids(secs: dict[object, float]) -> dict[str, tuple[Product, ...]]:
    """The products timed, as the table's grids (``mm``, ``bmm`` and warm ones)."""
    out: dict[str, list[Product]] = {"mm": [], "bmm": [], "mm_warm": [], "bmm_warm": []}
    for key, seconds in secs.items():
        if isinstance(key, tuple) and all(isinstance(d, int) for d in key[-3:]):
            dims = key[1:] if key[0] == "warm" else key
            grid = ("mm" if len(dims) == 3 else "bmm") + ("_warm" if key[0] == "warm" else "")
            out[grid].append(Product(dims=dims, seconds=seconds))
    return {grid: tuple(products) for grid, products in out.items()}


def _with_factors(table: OperatorTable) -> OperatorTable:
    """The table with its in-sequence terms and convolution factor (``block_probe``)."""
    conv = conv_factor(table)
    factor, per_op_s, per_view_s = sequence_costs(table)
    warm = warm_sequence_costs(table) if table.mm_warm else None
    return table.model_copy(update={"conv_factor": conv, "sequence_factor": factor,
                                    "op_overhead_s": per_op_s, "view_overhead_s": per_view_s,
                                    "warm_terms": warm})


def measure_operator_table(source: str, rounds: int = ROUNDS, threads: int = 1
                           ) -> tuple[OperatorTable, float]:
    """This host's operator table with ``threads`` torch threads (the caller's restored),
    and the spread of its passes: the median over operators of (slowest pass / fastest
    pass - 1), after the gauge took out the host's drift."""
    callers = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            x = torch.randn(64, 64)
            view: dict[object, Call] = {"view": lambda: x.view(4096).view(64, 64).t()}
            cache = cache_bytes()
            calls = {**_product_calls(None if cache is None else cache // 2), **_ew_calls(),
                     **view}
            passes, readings, warm_readings = time_calls(calls, rounds)
            reference_s = statistics.median(readings)
            warm_reference_s = statistics.median(warm_readings)
            secs = {key: statistics.median(v) * (warm_reference_s if _is_warm(key)
                                                 else reference_s)
                    for key, v in passes.items()}
            ew_calls = {k: c for k, c in calls.items() if isinstance(k, tuple)
                        and isinstance(k[0], str) and k[0] != "warm"}
            table = _with_factors(OperatorTable(
                source=source, threads=threads, **_grids(secs), cache_bytes=cache,
                ew=_bandwidths(ew_calls, secs), view_s=secs["view"] / 3,
                reference_s=reference_s, warm_reference_s=warm_reference_s,
                gauge=GAUGE_NAME))
    finally:
        torch.set_num_threads(callers)
    spread = statistics.median(max(v) / min(v) - 1 for v in passes.values())
    return table, spread
