"""What a sweep computes once and shares between points: the workload of each distinct
(model, configuration, tokens, batch, wire, split), the fine-tuned weights of each
distinct (model, prism setting, mode, data) and the accuracy of each distinct (model or
fine-tuned model, dataset, configuration, split). Plain data, no torch: ``prismsim
check`` counts them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from prismsim.configuration import NO_FINETUNE
from prismsim.models.catalog import PRETRAINED
from prismsim.models.tuned import FinetuneRun, tuned_name
from prismsim.scenario.grid import Point
from prismsim.scenario.load import LoadedScenario

Options = tuple[tuple[str, Any], ...]  # a strategy's options, sorted: hashable


@dataclass(frozen=True)
class WorkloadNeed:
    """What decides a point's workload (not the hardware): shared across bandwidths."""

    model: str  # the latency model (architecture)
    strategy: str
    devices: int
    options: Options
    tokens: int | None
    batch: int
    wire: str
    weights: tuple[float, ...] | None  # token partition weights (a speed split)
    generate: int | None = None  # tokens generated after the prompt; None: one forward

    def label(self) -> str:
        return f"trace {self.model} {self.strategy} P={self.devices} {dict(self.options)}"


@dataclass(frozen=True)
class AccuracyNeed:
    """What decides a point's accuracy: shared across hardware and network."""

    model: str
    dataset: str
    split: str
    limit: int | None
    batch: int  # examples per forward while evaluating
    strategy: str
    devices: int
    options: Options
    weights: tuple[float, ...] | None
    decode: tuple[int, int] | None = None  # (prompt, generated) tokens: scored as decoded

    def label(self) -> str:
        return f"accuracy {self.model} {self.strategy} P={self.devices} {dict(self.options)}"

    def keywords(self) -> dict[str, Any]:
        """The strategy's keyword options, and the partition weights when given."""
        return {**dict(self.options), **({"weights": list(self.weights)} if self.weights
                                         else {})}


@dataclass(frozen=True)
class FinetuneNeed:
    """Weights a fine-tuned point's accuracy needs: trained once, cached."""

    run: FinetuneRun

    def label(self) -> str:
        return f"finetune {tuned_name(self.run)}"


def _options(p: Point, exchange: bool = True) -> Options:
    """The point's strategy options; without the exchange pattern for accuracy (how
    summaries travel does not change what arrives: the outputs are the same)."""
    return tuple(sorted((k, v) for k, v in p.options().items() if exchange or k != "exchange"))


def _weights(s: LoadedScenario, p: Point) -> tuple[float, ...] | None:
    w = s.weights(p)
    return tuple(w) if w else None


def workload_need(s: LoadedScenario, p: Point) -> WorkloadNeed:
    return WorkloadNeed(p.latency_model, p.strategy, p.devices, _options(p), p.tokens,
                        p.batch, p.wire, _weights(s, p), p.generate)


def finetune_need(s: LoadedScenario, p: Point) -> FinetuneNeed | None:
    """The fine-tuning under p's prism setting, on the scenario's data (the base model's
    own dataset is not named again), with the scenario's settings."""
    d = s.file.dataset
    if p.finetune == NO_FINETUNE or d is None:
        return None
    own = PRETRAINED[p.model].dataset if p.model in PRETRAINED else None
    return FinetuneNeed(FinetuneRun(
        p.model, p.strategy, p.devices, p.cr, p.segments, p.finetune,
        dataset=None if d.name == own else d.name, **s.file.finetune.settings()))


def accuracy_need(s: LoadedScenario, p: Point) -> AccuracyNeed | None:
    """What p's accuracy depends on; a fine-tuned point's model is the fine-tuned one; a
    decoding point's is scored as it decodes (its prompt, then its generated tokens)."""
    d = s.file.dataset
    if d is None:
        return None
    tuned = finetune_need(s, p)
    model = tuned_name(tuned.run) if tuned else p.model
    decode = (p.tokens, p.generate) if p.generate is not None and p.tokens else None
    return AccuracyNeed(model, d.name, d.split, d.limit, d.batch, p.strategy, p.devices,
                        _options(p, exchange=False), _weights(s, p), decode)


def distinct(needs: Any) -> list:
    """Needs without repeats and without None, in a stable order."""
    return sorted({n for n in needs if n is not None}, key=lambda n: json.dumps(
        n.__dict__, default=str, sort_keys=True))
