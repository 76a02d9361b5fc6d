"""A configuration: a strategy on P devices with its PRISM setting, and the fine-tuning
its weights had (none, or a ``prismsim finetune`` mode run under this very setting). It
decides the per-device programs and their weights, hence the workload and the accuracy,
but not the hardware; every
grid (scenarios, plans, the adaptive chooser, the ``flops``, ``numerics`` and
``accuracy`` commands) is built from these, and every table and plot names them with
:meth:`Configuration.label`. A configuration the model cannot run (tensor_parallel on
more devices than KV heads) is a row of its own saying why, in the ``skipped`` column."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from prismsim.strategies import SKIPPED, STRATEGIES

SINGLE = "single"  # the one strategy that runs on one device, and only there
ADAPTIVE = "adaptive"  # rows whose configuration the adaptive chooser picked
P2P = "p2p"  # the default exchange of strategies that have one: a unicast copy per receiver
NO_FINETUNE = "none"  # the model's own weights


def _given(x: Any) -> bool:
    """A value that is there: not None, not NaN (as a table's empty cell reads)."""
    return x is not None and not (isinstance(x, float) and math.isnan(x))


@dataclass(frozen=True)
class Configuration:
    strategy: str
    devices: int
    cr: float | None = None  # prism: compression rate CR = n_p / L ...
    segments: int | None = None  # ... or L, Segment Means per partition
    exchange: str = P2P  # voltage, prism: p2p, broadcast or ring (strategies.rowwise)
    # prism: the weights fine-tuned under this configuration (head, last:K, all) or not
    finetune: str = NO_FINETUNE

    @classmethod
    def of(cls, strategy: str, devices: Any, cr: Any = None, segments: Any = None,
           exchange: Any = None, finetune: Any = None) -> Configuration:
        """From table cells: NaN is "not given", numbers come back to int and float."""
        return cls(str(strategy), int(devices), float(cr) if _given(cr) else None,
                   int(segments) if _given(segments) else None,
                   str(exchange) if _given(exchange) else P2P,
                   str(finetune) if _given(finetune) else NO_FINETUNE)

    @classmethod
    def of_row(cls, row: Any) -> Configuration:
        """From a table row (a named tuple or a mapping); absent columns: not given."""
        get = row.get if isinstance(row, Mapping) else lambda k: getattr(row, k, None)
        return cls.of(get("strategy"), get("devices"), get("cr"), get("segments"),
                      get("exchange"), get("finetune"))

    def options(self) -> dict[str, float | int | str]:
        """The strategy's keyword options this configuration sets."""
        out: dict[str, float | int | str] = {
            k: v for k, v in (("cr", self.cr), ("segments", self.segments)) if v is not None}
        if self.exchange != P2P:
            out["exchange"] = self.exchange
        return out

    def label(self, with_strategy: bool = True) -> str:
        """"single", "voltage P=2", "prism P=3 CR=4.95", "prism P=2 L=10", "prism P=3
        L=10 ft:head" (fine-tuned); "adaptive" whatever it picked."""
        if self.strategy in (SINGLE, ADAPTIVE):
            return self.strategy
        parts = [self.strategy] if with_strategy else []
        parts.append(f"P={self.devices}")
        if self.cr is not None:
            parts.append(f"CR={self.cr:g}")
        if self.segments is not None:
            parts.append(f"L={self.segments}")
        if self.exchange != P2P:
            parts.append(self.exchange)
        if self.finetune != NO_FINETUNE:
            parts.append(f"ft:{self.finetune}")
        return " ".join(parts)


def prism_settings(crs: Iterable[float] = (), segments: Iterable[int] = ()
                   ) -> list[dict[str, Any]]:
    """PRISM's options of a grid: each CR, then each number of means."""
    return [{"cr": float(c)} for c in crs] + [{"segments": int(s)} for s in segments]


def configurations(strategies: Iterable[str], counts: Iterable[int],
                   prism: Iterable[Mapping[str, Any]] = (),
                   exchanges: Iterable[str] = (P2P,),
                   finetunes: Iterable[str] = (NO_FINETUNE,)) -> list[Configuration]:
    """single on one device (when 1 is among ``counts``), every other strategy at every
    count above 1, prism at each of its settings and fine-tunings, the strategies with an
    exchange option (voltage, prism) with each exchange; strategies in the order given,
    then counts, settings, fine-tunings, exchanges. Whether a strategy can run on a given
    model at P is the grid's question (``strategies.why_not``)."""
    counts, prism, exchanges = list(counts), [dict(p) for p in prism], list(exchanges)
    finetunes = list(finetunes)
    out = []
    for name in strategies:
        for p in counts:
            if (name == SINGLE) != (p == 1):
                continue
            settings = prism if name == "prism" else [{}]
            tunings = finetunes if name == "prism" else [NO_FINETUNE]
            patterns = _patterns(name, exchanges)
            out += [Configuration(name, p, **s, exchange=e, finetune=f)
                    for s in settings for f in tunings for e in patterns]
    return out


def _patterns(strategy: str, exchanges: list[str]) -> list[str]:
    """The exchange patterns of ``exchanges`` the strategy has (its declaration); one
    without an exchange option is configured once, with the default."""
    entry = STRATEGIES.get(strategy)
    if entry is None or not entry.exchanges:
        return [P2P]
    return [e for e in exchanges if e in entry.exchanges]


def command_configurations(strategies: Iterable[str], counts: Iterable[int],
                           prism: Iterable[Mapping[str, Any]] = (),
                           exchanges: Iterable[str] = (P2P,)) -> list[Configuration]:
    """As the ``numerics``, ``flops`` and ``accuracy`` commands take their options:
    single once whatever the counts, every other strategy at each count above 1."""
    return configurations(strategies, [1, *(p for p in counts if p > 1)], prism, exchanges)


def grid_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A grid's rows as a table. When any configuration was skipped (its row has only
    the configuration's columns and ``skipped``, the reason), the column is last and the
    skipped rows' numbers are empty, integer columns staying integer."""
    table = pd.DataFrame(rows)
    if SKIPPED not in table:
        return table
    ran = pd.DataFrame([r for r in rows if not r.get(SKIPPED)])
    for column in ran.columns:
        if pd.api.types.is_integer_dtype(ran[column]) and column in table:
            table[column] = table[column].astype("Int64")
    return table[[c for c in table.columns if c != SKIPPED] + [SKIPPED]]
