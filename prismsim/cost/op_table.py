"""How long a compute step takes on a device, from its operators (``op_record``): the
shape-aware compute model. An :class:`OperatorTable` (measured on a host by ``prismsim
profile-device``, or carried by a catalog entry) gives matrix products their throughput
interpolated over a grid of measured sizes, and every other operator a fixed cost plus
its bytes over a bandwidth measured for its kind. Plain data and numpy: the simulator
uses it without torch."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, field_validator

from prismsim.userfiles import StrictModel

OpKey = tuple  # ("mm"|"conv", m, k, n) | ("bmm", b, m, k, n) | ("ew", kind, bytes) | ("view",)
OpCounts = tuple[tuple[OpKey, int], ...]  # each distinct operator and how often
EW_KINDS = ("layer_norm", "softmax", "unary", "binary", "reduce", "copy")  # op_record.KINDS


class Product(StrictModel):
    """One measured matrix product: sizes and seconds per call."""

    dims: tuple[int, ...]  # (m, k, n) or (b, m, k, n)
    seconds: PositiveFloat


class Bandwidth(StrictModel):
    """One kind of element-wise operator: seconds = fixed + bytes / bytes_per_s."""

    fixed_s: float = Field(ge=0)
    bytes_per_s: PositiveFloat


class OperatorTable(StrictModel):
    """Measured operator times of one host (or board) at one thread count."""

    source: str  # how and where it was measured
    threads: int = 1  # torch threads while measuring
    mm: tuple[Product, ...] = Field(min_length=1)  # a full grid of (m, k, n)
    bmm: tuple[Product, ...] = Field(min_length=1)  # a full grid of (b, m, k, n)
    ew: dict[str, Bandwidth]  # by kind (EW_KINDS)
    view_s: float = Field(ge=0)  # one view operator (dispatch only)
    # seconds of the gauge's reference (profiling/gauge.py) the entries are relative to:
    # at another moment the host runs them at reference_s / (the gauge read then) of this;
    # None: a table whose entries were not gauged (a board's published figures)
    reference_s: PositiveFloat | None = None
    # which reference reference_s times (profiling/gauge.GAUGE_NAME); None: the one of
    # older tables (the same stack, one copy read warm), which today's gauge does not read
    gauge: str | None = None
    # a step's operators in sequence over the sum of their times alone (block_probe.py)
    sequence_factor: PositiveFloat = 1.0
    # and what each operator of a step adds on top, seconds (the Python and dispatch
    # between them, that one operator called in a loop does not pay; block_probe.py) ...
    op_overhead_s: float = Field(0.0, ge=0)
    # ... and each view operator; None: op_overhead_s (tables fitted before views were
    # told apart)
    view_overhead_s: float | None = Field(None, ge=0)
    # a convolution over the matrix product it is, both timed (block_probe.py)
    conv_factor: PositiveFloat = 1.0
    # the host's last-level cache, bytes: a device whose working set fits it runs its
    # steps warm (``fits_cache``); None: unknown, every step runs cold
    cache_bytes: PositiveInt | None = None
    # the products again with their operands in that cache (up to 64 sets cycled, at
    # most half of it, where the cold ones cycle up to COLD_BYTES); empty: not measured
    mm_warm: tuple[Product, ...] = ()
    bmm_warm: tuple[Product, ...] = ()
    # seconds of the warm reference (profiling/gauge.WarmGauge) read beside reference_s
    # while profiling: what was timed warm is in these units (the same moment as
    # reference_s); None: not read (warm entries then taken against the cold gauge)
    warm_reference_s: PositiveFloat | None = None
    # (sequence factor, seconds a computing operator, seconds a view) of warm steps:
    # probes that fit the cache timed back to back (block_probe.py); None: not measured
    warm_terms: tuple[PositiveFloat, NonNegativeFloat, NonNegativeFloat] | None = None

    @field_validator("ew")
    @classmethod
    def _known_kinds(cls, ew: dict[str, Bandwidth]) -> dict[str, Bandwidth]:
        unknown = sorted(set(ew) - set(EW_KINDS))
        if unknown or "copy" not in ew:  # "copy" is every unlisted operator's fallback
            raise ValueError(f"kinds must be among {list(EW_KINDS)} and include 'copy'; "
                             f"got {sorted(ew)}")
        return ew

    def __hash__(self) -> int:  # device specs holding a table key the simulator's caches
        return hash((self.source, self.threads, self.mm, self.bmm, self.view_s,
                     self.reference_s, self.gauge, self.sequence_factor, self.op_overhead_s,
                     self.view_overhead_s, self.conv_factor, self.cache_bytes,
                     self.mm_warm, self.bmm_warm, self.warm_reference_s, self.warm_terms))

    def fits_cache(self, working_bytes: int) -> bool:
        """Whether a device whose steps touch this many bytes in all (weights, KV cache,
        live tensors) runs them warm: the table has warm terms and they fit the cache."""
        return (self.warm_terms is not None and self._warm_products()
                and self.cache_bytes is not None and working_bytes <= self.cache_bytes)

    def _warm_products(self) -> bool:
        """Whether both product grids were also timed warm."""
        return bool(self.mm_warm) and bool(self.bmm_warm)

    def seconds(self, ops: OpCounts, warm: bool = False) -> float:
        """Predicted seconds of a step made of these operators; ``warm``: on a device
        whose working set fits the cache (``fits_cache``)."""
        factor, per_op_s, per_view_s = self.terms(warm)
        alone_s = sum(count * self.op_s(key, warm) for key, count in ops)
        views = sum(c for key, c in ops if key[0] == "view")
        return (factor * alone_s + per_view_s * views
                + per_op_s * (sum(c for _, c in ops) - views))

    def terms(self, warm: bool = False) -> tuple[float, float, float]:
        """(sequence factor, seconds a computing operator, seconds a view) of a step."""
        if warm and self.warm_terms is not None:
            return self.warm_terms
        per_view_s = self.op_overhead_s if self.view_overhead_s is None else \
            self.view_overhead_s
        return self.sequence_factor, self.op_overhead_s, per_view_s

    def at_speed(self, gauge_s: float) -> OperatorTable:
        """This table at the moment the gauge's reference took ``gauge_s``."""
        if self.reference_s is None:
            raise ValueError("this operator table was not gauged: no reference_s")
        factor = gauge_s / self.reference_s
        warm = None if self.warm_terms is None else (
            self.warm_terms[0], self.warm_terms[1] * factor, self.warm_terms[2] * factor)
        return self.model_copy(update={
            **{grid: tuple(p.model_copy(update={"seconds": p.seconds * factor})
                           for p in getattr(self, grid))
               for grid in ("mm", "bmm", "mm_warm", "bmm_warm")}, "warm_terms": warm,
            "ew": {k: Bandwidth(fixed_s=b.fixed_s * factor, bytes_per_s=b.bytes_per_s / factor)
                   for k, b in self.ew.items()},
            "view_s": self.view_s * factor, "op_overhead_s": self.op_overhead_s * factor,
            "view_overhead_s": None if self.view_overhead_s is None
            else self.view_overhead_s * factor, "reference_s": gauge_s,
            "warm_reference_s": None if self.warm_reference_s is None
            else self.warm_reference_s * factor})

    def op_s(self, key: OpKey, warm: bool = False) -> float:
        """Seconds of one operator alone (``warm``: a product's operands in the cache)."""
        return _op_s(self, key, warm and self._warm_products())


@functools.lru_cache(maxsize=65536)
def _op_s(table: OperatorTable, key: OpKey, warm: bool) -> float:
    if key[0] == "view":
        return table.view_s
    if key[0] == "ew":
        bw = table.ew.get(key[1]) or table.ew["copy"]
        return bw.fixed_s + key[2] / bw.bytes_per_s
    if key[0] == "conv":
        return table.conv_factor * _grid(table, "mm").seconds(key[1:])
    return _grid(table, f"{key[0]}_warm" if warm else key[0]).seconds(key[1:])


@functools.lru_cache(maxsize=64)
def _grid(table: OperatorTable, grid: str) -> RateGrid:
    """The rate grid of ``grid``: "mm", "bmm", "mm_warm" or "bmm_warm"."""
    return RateGrid(getattr(table, grid))


class RateGrid:
    """Time of a matrix product over a grid of measured sizes, interpolated linearly in
    log(time) over log2 of every size. A product smaller than the grid in some size
    takes the time of the grid's smallest there (small products cost their call, not
    their FLOPs); one larger runs at the rate of the grid's largest (time grows with
    its FLOPs)."""

    def __init__(self, products: Sequence[Product]):
        dims = np.array([p.dims for p in products], dtype=float)
        self.axes = [np.unique(np.log2(dims[:, i])) for i in range(dims.shape[1])]
        shape = tuple(len(a) for a in self.axes)
        if math.prod(shape) != len(products):
            raise ValueError(f"operator table: {len(products)} products do not fill a grid "
                             f"of {shape}")
        self.log_s = np.empty(shape)
        for p in products:
            index = tuple(int(np.searchsorted(a, math.log2(d))) for a, d in
                          zip(self.axes, p.dims, strict=True))
            self.log_s[index] = math.log(p.seconds)

    def seconds(self, dims: Sequence[int]) -> float:
        """Seconds of one product of these sizes."""
        logs = [math.log2(max(d, 1)) for d in dims]
        corners = [self._bracket(a, x) for a, x in zip(self.axes, logs, strict=True)]
        total = 0.0
        for choice in np.ndindex(*(2,) * len(corners)):
            weight, index = 1.0, []
            for (lo, hi, w), c in zip(corners, choice, strict=True):
                weight *= w if c else 1 - w
                index.append(hi if c else lo)
            total += weight * self.log_s[tuple(index)]
        beyond = sum(max(0.0, x - a[-1]) for a, x in zip(self.axes, logs, strict=True))
        return math.exp(total) * 2.0 ** beyond  # larger than the grid: more FLOPs

    @staticmethod
    def _bracket(axis: np.ndarray, x: float) -> tuple[int, int, float]:
        """The grid points around x and x's weight toward the upper one (clamped)."""
        if x <= axis[0] or len(axis) == 1:
            return 0, 0, 0.0
        if x >= axis[-1]:
            return len(axis) - 1, len(axis) - 1, 0.0
        hi = int(np.searchsorted(axis, x))
        return hi - 1, hi, (x - axis[hi - 1]) / (axis[hi] - axis[hi - 1])
