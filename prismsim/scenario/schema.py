"""The scenario file's schema: one strict model per section. A list in a field makes a
grid axis (``as_list`` reads either form)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from prismsim.configuration import NO_FINETUNE
from prismsim.models.tuned import MODE
from prismsim.sim.device_events import DeviceEvent
from prismsim.sim.specs import HostSpec
from prismsim.userfiles import StrictModel, UserFileError

Exchange = Literal["p2p", "broadcast", "ring"]
MIX_SEPARATOR = "+"  # a mixed set's device_profile: its profiles joined, in device order


class ScenarioError(UserFileError):
    """A scenario that cannot run; the message names file and key."""


def as_list(v: Any) -> list:
    """A grid field's values: the list given, or the one value."""
    return list(v) if isinstance(v, list | tuple) else [v]


class ModelSection(StrictModel):
    name: str  # built-in name, HF hub name or local directory: accuracy comes from it
    # the model whose FLOPs, bytes and latency are simulated, if not ``name``: the
    # built-in architecture of a checkpoint that cannot be loaded offline, or the paper's
    # model when ``name`` is an offline stand-in for its accuracy (rows say both)
    architecture: str | None = None
    tokens: PositiveInt | None = None  # text models: sequence length for latency points


class DatasetSection(StrictModel):
    name: str
    split: str = "test"  # held-out split: accuracy is never measured on training data
    limit: PositiveInt | None = 1000  # examples evaluated (byte data: 256-byte windows)
    batch: PositiveInt = 32  # examples per forward while evaluating (not the latency batch)


class DevicesSection(StrictModel):
    count: PositiveInt | list[PositiveInt]  # P values
    profile: str | list[str] = "cpu-2core-2.1ghz"  # device catalog names (paper's CPU)
    # heterogeneous sets, one catalog profile per device (e.g. [[orin, nano, nano]]): each
    # set is one more grid value, run by every strategy but single at P = its size
    mix: list[list[str]] | None = None
    # token partitions of a mixed set: equal sizes, or in proportion to device speed
    split: Literal["equal", "speed"] = "equal"


class PrismSection(StrictModel):
    cr: PositiveFloat | list[PositiveFloat] | None = None  # compression rates (>= 1)
    segments: PositiveInt | list[PositiveInt] | None = None  # or means per partition


class NetworkSection(StrictModel):
    link: str | list[str] = "ethernet-1g"  # link catalog names; fields below override
    medium: Literal["switched", "shared", "mesh"] | None = None
    bandwidth_mbps: PositiveFloat | list[PositiveFloat] | None = None
    latency_ms: float | list[float] | None = Field(None)
    broadcast: bool | None = None
    # GLOO-style rendezvous (data leaves once the receiver posted its receive); None:
    # the link's own setting. A property of the software stack, not of the medium.
    rendezvous: bool | None = None
    # the link's bandwidth over time, a file beside the scenario (sim/link_trace.py): a
    # CSV (time_s, bandwidth_mbps[, latency_ms, loss]) by its name, else a Mahimahi
    # packet-delivery trace; None: the link's nominal figures throughout
    trace: str | None = None
    trace_start_s: NonNegativeFloat = 0.0  # the trace's time when each inference starts


class AdaptiveSection(StrictModel):
    """Adaptive PRISM: at each (batch, bandwidth, link) point, the candidate an offline
    performance map picks; rows with strategy ``adaptive`` (prismsim.adaptive)."""

    objective: Literal["latency", "energy"] = "latency"  # the follow-up paper's first aim
    # lowest task metric a candidate must reach (highest, for bits per byte); None: any
    # candidate, as the paper's chooser trades accuracy for speed freely
    accuracy_floor: float | None = None
    # strategies of this scenario the chooser may pick; the paper: local or PRISM
    candidates: list[str] = Field(default_factory=lambda: ["single", "prism"], min_length=1)
    # map grid; None: the scenario's own batches / bandwidths, so the map is exact at
    # every point and adaptive matches the best candidate there
    map_batch: PositiveInt | list[PositiveInt] | None = None
    map_bandwidth_mbps: PositiveFloat | list[PositiveFloat] | None = None
    # a measured map (CSV with prismsim.adaptive.MAP_COLUMNS, path relative to the
    # scenario file) used instead of simulating one; None: the simulator builds it
    map_csv: str | None = None


class FinetuneSection(StrictModel):
    """Fine-tuning as a grid axis of prism rows: each prism configuration also with its
    weights fine-tuned under that very configuration (``prismsim finetune``, on the
    dataset's train split), once per distinct need, cached. A list (or one mode) alone
    stands for ``modes``."""

    modes: list[str] = Field(default_factory=lambda: [NO_FINETUNE], min_length=1)  # none,
    # head, last:K, all
    # None: prismsim finetune's own default (up to 5000 examples, 200 steps, lr 1e-5, 16 a
    # step)
    train_limit: PositiveInt | None = None  # training examples: the train split's first
    steps: PositiveInt | None = None  # last:K / all: optimiser steps
    lr: PositiveFloat | None = None  # last:K / all: learning rate
    batch: PositiveInt | None = None  # last:K / all: examples a step

    @model_validator(mode="before")
    @classmethod
    def _modes_alone(cls, v: Any) -> Any:
        return {"modes": as_list(v)} if isinstance(v, str | list) else v

    @field_validator("modes")
    @classmethod
    def _known_modes(cls, modes: list[str]) -> list[str]:
        for m in modes:
            if m != NO_FINETUNE and not MODE.match(m):
                raise ValueError(f"{m!r} is not none, head, last:K, all or lora:R")
        return modes

    def settings(self) -> dict[str, Any]:
        """The ``FinetuneRun`` fields this section sets."""
        return {k: v for k, v in (("train_limit", self.train_limit), ("steps", self.steps),
                                  ("lr", self.lr), ("batch", self.batch)) if v is not None}


class DecodeSection(StrictModel):
    """Generation after a prompt (causal LMs): each point prefills ``prompt_tokens`` and
    then generates ``generate`` tokens; rows add time to first token, time per output
    token, tokens per second, energy and bytes per token. Lists make axes."""

    prompt_tokens: PositiveInt | list[PositiveInt]  # the prompt's length (model.tokens unset)
    generate: PositiveInt | list[PositiveInt]  # tokens generated, the first from the prefill


class SamplesSection(StrictModel):
    """Each point also replayed ``n`` times, each in its own world drawn from the devices'
    and the link's variability (``variability:`` in the catalog), seeded: rows add the
    mean and the p50 / p95 / p99 of those latencies (``latency_s`` stays the replay of
    mean times)."""

    n: PositiveInt = 1000  # sampled inferences a point
    seed: int = 0  # the draws' seed: the same for every point (common random numbers)


class TimelineSection(StrictModel):
    """The point whose per-device timeline is drawn (first matching point)."""

    strategy: str = "prism"
    devices: PositiveInt | None = None
    bandwidth_mbps: PositiveFloat | None = None


WeightDtype = Literal["fp32", "fp16", "bf16", "int8", "int4"]  # sim/precision.py's DTYPES


class ScenarioFile(StrictModel):
    name: str
    description: str = ""
    model: ModelSection
    dataset: DatasetSection | None = None  # None: latency only, no accuracy column
    strategies: list[str] = Field(min_length=1)
    devices: DevicesSection
    prism: PrismSection = PrismSection()
    network: NetworkSection = NetworkSection()
    batch: PositiveInt | list[PositiveInt] = 1  # inference batch size for latency
    wire: Literal["fp32", "fp16", "int8"] = "fp32"  # element type on the wire
    # the weights' precision (sim/precision.py): their memory, the bytes each step reads,
    # the compute rate where the catalog gives one; a list makes an axis. fp32: as traced
    dtype: WeightDtype | list[WeightDtype] = "fp32"
    # how voltage and prism exchange after each block: one unicast copy per receiver
    # (p2p, the paper's), one broadcast, or an all_gather ring; a list makes an axis
    exchange: Exchange | list[Exchange] = "p2p"
    output: str | None = None  # results folder (default results/<name>)
    timeline: TimelineSection = TimelineSection()
    catalog: dict[str, Any] | None = None  # extra devices: / links: entries, inline
    # the machine every device of a point runs on, sharing its cores (processes on one
    # host, as a testbed on one computer); None: each device has its own hardware
    host: HostSpec | None = None
    adaptive: AdaptiveSection | None = None  # None: no adaptive rows
    finetune: FinetuneSection = FinetuneSection()  # default: the model's own weights only
    decode: DecodeSection | None = None  # None: one forward a point (no generation)
    samples: SamplesSection | None = None  # None: mean times only (no tail columns)
    # devices that slow down or leave (sim/device_events.py), the same at every point; a
    # point without the device an event names runs without that event (its system does
    # not use that device); empty: the devices keep their speed
    events: list[DeviceEvent] = Field(default_factory=list)
