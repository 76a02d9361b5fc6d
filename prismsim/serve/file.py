"""The serving file (``prismsim serve``): configurations of devices serving a request
stream, and the stream (strict YAML: unknown keys are errors naming file and key)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from prismsim.names import check_model, model_heads
from prismsim.scenario.schema import Exchange, ModelSection
from prismsim.serve.arrivals import read_trace
from prismsim.serve.requests import DISPATCH
from prismsim.sim.catalog import load_catalog_data, pick
from prismsim.sim.device_events import DeviceEvent, check_events
from prismsim.sim.link_trace import read_link_trace
from prismsim.sim.specs import DeviceSpec, LinkSpec
from prismsim.strategies import STRATEGIES, Heads, why_not
from prismsim.userfiles import StrictModel, UserFileError, load_model_file


class ServeError(UserFileError):
    """A serving file that cannot run; the message names file and key."""


ADAPTIVE = "adaptive"  # a configuration's strategy: each request picks a candidate


class CandidateSection(StrictModel):
    """adaptive: one way to serve a request, single on one device or a strategy on all
    (or, with ``devices``, on that many: re-planned for a group with some gone)."""

    strategy: str
    cr: PositiveFloat | None = None  # prism: compression rate ...
    segments: PositiveInt | None = None  # ... or Segment Means per partition
    exchange: Exchange | None = None  # voltage, prism: how blocks exchange (None: p2p)
    # a split on fewer devices than the group's, used only while exactly that many of
    # them are known up (the others left); None: single on 1, the others on all
    devices: PositiveInt | None = None

    def options(self) -> dict[str, Any]:
        return {k: v for k, v in (("cr", self.cr), ("segments", self.segments),
                                  ("exchange", self.exchange)) if v is not None}

    def on(self, group_devices: int) -> int:
        """The devices it runs on in a group of ``group_devices``."""
        return self.devices or (1 if self.strategy == "single" else group_devices)

    def label(self) -> str:
        words = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                 for k, v in self.options().items()]
        return " ".join([self.strategy, *words, *([f"on {self.devices}"]
                                                  if self.devices else [])])


class ResplitSection(StrictModel):
    """A fixed split group's straggler-aware re-split (serve/resplit.py)."""

    window_ms: PositiveFloat = 2000.0  # the parts of the last this long give the speeds
    threshold: float = Field(1.2, gt=1)  # split again when a share would change this much


class ServingConfiguration(StrictModel):
    """Devices serving the stream: ``groups`` groups of ``devices`` devices each."""

    label: str | None = None  # name in tables and plots; None: made from the fields
    strategy: str  # a strategy, or adaptive (then candidates)
    candidates: list[CandidateSection] | None = None  # adaptive: single and 1+ on all
    devices: PositiveInt = 1  # P: devices one request is split across
    groups: PositiveInt = 1  # independent groups behind the dispatcher
    profile: str = "cpu-2core-2.1ghz"  # device catalog name (the paper's CPU)
    cr: PositiveFloat | None = None  # prism: compression rate ...
    segments: PositiveInt | None = None  # ... or Segment Means per partition
    exchange: Exchange | None = None  # voltage, prism: how blocks exchange (None: p2p)
    dispatch: Literal["round_robin", "shortest_queue"] = "round_robin"
    max_batch: PositiveInt = 1  # dynamic batching: most requests served as one batch
    max_wait_ms: NonNegativeFloat = 0.0  # longest the master waits for a fuller batch
    queue_limit: PositiveInt | None = None  # waiting requests per group; None: no limit
    # adaptive: what each candidate is believed to take (serve/policies.py): at the
    # link's nominal rate, at the rate estimated from the group's transfers, or at the
    # link trace's rate of the moment (an oracle)
    policy: Literal["nominal", "estimated", "oracle"] = "nominal"
    # adaptive: how long after a device leaves (or returns) its group knows (missed
    # heartbeats); it then starts the requests the device held again on devices still
    # there; groups of other strategies wait for the device (or lose the requests)
    detect_ms: PositiveFloat = 1000.0
    # a split group's tokens moved to its faster devices after a window of slow parts;
    # None: the split stays as it is
    resplit: ResplitSection | None = None


class StreamSection(StrictModel):
    """The requests: open loop (a pattern at each rate) or a replayed trace or a closed
    loop of clients."""

    arrivals: Literal["poisson", "constant", "onoff", "trace", "closed"] = "poisson"
    rates_per_s: list[PositiveFloat] = Field(default_factory=list)  # offered loads
    on_s: PositiveFloat = 1.0  # onoff: length of a burst
    off_s: PositiveFloat = 1.0  # onoff: quiet time between bursts
    trace: str | None = None  # trace: CSV with a time_s column, relative to this file
    clients: list[PositiveInt] = Field(default_factory=list)  # closed: users (a grid)
    think_ms: PositiveFloat = 1000.0  # closed: mean think time (exponential)
    requests: PositiveInt = 2000  # per replication (a trace: its own length)
    warmup: int = Field(200, ge=0)  # first requests left out of every figure
    replications: PositiveInt = 5  # independent seeds per offered load: intervals need >= 2
    seed: int = 0  # replication r uses seed + r
    # each request's steps and messages drawn from the devices' and the link's
    # variability (the catalog's variability:), seeded by the replication's seed;
    # false: every one at its mean time
    variability: bool = False
    slo_p99_ms: PositiveFloat | None = None  # capacity: highest rate with p99 within it
    max_drop_share: float = Field(0.01, ge=0, le=1)  # capacity: drops allowed at it


class ServingFile(StrictModel):
    name: str
    description: str = ""  # free text for the reader of the file
    model: ModelSection  # the model whose workloads are simulated (architecture if given)
    link: str | LinkSpec = "ethernet-1g"  # catalog name or LinkSpec fields
    # the link's bandwidth over time: a CSV (time_s, bandwidth_mbps[, latency_ms, loss])
    # or a Mahimahi trace (any other name), relative to this file; None: the nominal rate
    link_trace: str | None = None
    link_trace_start_s: NonNegativeFloat = 0.0  # the trace's time when serving starts
    # devices that slow down or leave (sim/device_events.py), numbered over each
    # configuration's boards, group by group (0 ... groups x devices - 1); a configuration
    # with fewer boards than an event names runs without it
    events: list[DeviceEvent] = Field(default_factory=list)
    rendezvous: bool | None = None  # GLOO-style rendezvous; None: the link's own
    catalog: dict[str, Any] | None = None  # extra devices: / links: entries, inline
    configurations: list[ServingConfiguration] = Field(min_length=1)
    serving: StreamSection
    output: str | None = None  # results folder (default results/<name>)


@dataclass
class LoadedServe:
    path: Path
    file: ServingFile
    devices: dict[str, DeviceSpec]
    link: LinkSpec
    trace_s: np.ndarray | None  # a trace's arrival times

    @property
    def output(self) -> Path:
        return Path(self.file.output or f"results/{self.file.name}")

    @property
    def model(self) -> str:
        return self.file.model.architecture or self.file.model.name

    def events_for(self, c: ServingConfiguration) -> list[DeviceEvent]:
        """The file's events on boards the configuration has."""
        return [e for e in self.file.events if e.device < c.groups * c.devices]

    def oracle_label(self) -> str | None:
        """The label of the adaptive configuration that knows the link trace, if any."""
        return next((self.label(i) for i, c in enumerate(self.file.configurations)
                     if c.policy == "oracle"), None)

    def label(self, i: int) -> str:
        c = self.file.configurations[i]
        return c.label or configuration_label(c)


def configuration_label(c: ServingConfiguration) -> str:
    parts = [c.strategy, f"P={c.devices}"]
    if c.candidates:
        parts += ["(" + " | ".join(k.label() for k in c.candidates) + ")"]
    parts += [f"CR={c.cr:g}"] if c.cr else []
    parts += [f"means={c.segments}"] if c.segments else []
    parts += [f"x{c.groups}"] if c.groups > 1 else []
    parts += [f"batch<={c.max_batch}"] if c.max_batch > 1 else []
    return " ".join(parts)


def _check_configuration(c: ServingConfiguration, devices: dict[str, DeviceSpec],
                         key: str) -> None:
    if c.strategy == ADAPTIVE:
        _check_adaptive(c, key)
    elif c.candidates is not None:
        raise ServeError(f"{key}.candidates: only an adaptive configuration has "
                         f"candidates (strategy is {c.strategy})")
    elif c.strategy not in STRATEGIES:
        raise ServeError(f"{key}.strategy: unknown strategy {c.strategy!r}; known: "
                         f"{', '.join(STRATEGIES)}")
    if c.profile not in devices:
        raise ServeError(f"{key}.profile: unknown device {c.profile!r}; known: "
                         f"{', '.join(sorted(devices))}")
    if c.strategy != ADAPTIVE and (c.strategy == "single") != (c.devices == 1):
        raise ServeError(f"{key}.devices: single runs on 1 device, the other strategies "
                         f"on 2 or more (got {c.strategy} on {c.devices})")
    if c.dispatch not in DISPATCH:  # the Literal already says so; kept in step
        raise ServeError(f"{key}.dispatch: one of {', '.join(DISPATCH)}")


def _check_adaptive(c: ServingConfiguration, key: str) -> None:
    if not c.candidates or len(c.candidates) < 2:
        raise ServeError(f"{key}.candidates: adaptive chooses among 2 or more, e.g. "
                         f"[{{strategy: single}}, {{strategy: prism, cr: 4}}]")
    for j, k in enumerate(c.candidates):
        if k.strategy not in STRATEGIES:
            raise ServeError(f"{key}.candidates[{j}].strategy: unknown strategy "
                             f"{k.strategy!r}; known: {', '.join(STRATEGIES)}")
        if k.devices is not None and (k.strategy == "single" or not 2 <= k.devices
                                      < c.devices):
            span = (f"runs on 2 to {c.devices - 1} of its {c.devices}" if c.devices > 2
                    else f"needs a group of 3 or more (this one has {c.devices})")
            raise ServeError(f"{key}.candidates[{j}].devices: a split re-planned for a "
                             f"group with devices gone {span} (got {k.strategy} on "
                             f"{k.devices})")
    if all(k.strategy == "single" for k in c.candidates) or c.devices < 2:
        raise ServeError(f"{key}: adaptive needs devices >= 2 and a candidate other than "
                         f"single (it runs on all of them)")
    if c.max_batch > 1:
        raise ServeError(f"{key}.max_batch: adaptive serves one request at a time (1)")


def _check_policy(c: ServingConfiguration, key: str) -> None:
    if c.policy != "nominal" and c.strategy != ADAPTIVE:
        raise ServeError(f"{key}.policy: only an adaptive configuration chooses by a "
                         f"policy (strategy is {c.strategy})")
    if c.resplit is not None and (c.strategy == ADAPTIVE or c.devices < 2):
        raise ServeError(f"{key}.resplit: only a fixed group of 2 or more devices splits "
                         f"its tokens (strategy {c.strategy}, devices {c.devices})")


def _check_runs(c: ServingConfiguration, heads: Heads | None, key: str) -> None:
    """Each configuration named explicitly must run on the model (its heads, where known
    without loading it; else tracing says so, in one line too)."""
    runs = [(key, c.strategy, c.devices)] if c.strategy != ADAPTIVE else [
        (f"{key}.candidates[{j}]", k.strategy, k.on(c.devices))
        for j, k in enumerate(c.candidates or [])]
    for at, strategy, devices in runs:
        reason = why_not(strategy, devices, heads)
        if reason:
            raise ServeError(f"{at}: {reason}")


def _check_stream(s: StreamSection, where: str) -> None:
    needs = {"trace": (s.trace, "trace: a CSV file"), "closed": (s.clients, "clients: [N, ...]")}
    if s.arrivals in needs and not needs[s.arrivals][0]:
        raise ServeError(f"{where}: serving.{needs[s.arrivals][1].split(':')[0]}: "
                         f"{s.arrivals} arrivals need {needs[s.arrivals][1]}")
    if s.arrivals not in needs and not s.rates_per_s and s.slo_p99_ms is None:
        raise ServeError(f"{where}: serving.rates_per_s: give the offered loads "
                         f"(requests per second), or slo_p99_ms for the capacity")
    if s.slo_p99_ms is not None and s.arrivals in needs:
        raise ServeError(f"{where}: serving.slo_p99_ms: the capacity is found over "
                         f"arrival rates: give arrivals poisson, constant or onoff")
    if s.warmup >= s.requests and s.arrivals != "trace":
        raise ServeError(f"{where}: serving.warmup: {s.warmup} leaves none of the "
                         f"{s.requests} requests to measure")


def load_serve(path: str | Path) -> LoadedServe:
    path = Path(path)
    where = path.name
    file = load_model_file(path, ServingFile, "serving sections (model:, configurations:, "
                           "serving:)", ServeError)
    check_model(file.model.name, f"{where}: model.name", ServeError)
    check_model(file.model.architecture, f"{where}: model.architecture", ServeError)
    try:
        devices, links = load_catalog_data(file.catalog or {}, f"{where}: catalog",
                                           path.parent)
    except ValueError as e:
        raise ServeError(str(e)) from None
    heads = model_heads(file.model.architecture or file.model.name)
    for i, c in enumerate(file.configurations):
        _check_configuration(c, devices, f"{where}: configurations[{i}]")
        _check_runs(c, heads, f"{where}: configurations[{i}]")
        _check_policy(c, f"{where}: configurations[{i}]")
    _check_stream(file.serving, where)
    if file.events:
        most = max(c.groups * c.devices for c in file.configurations)
        check_events(file.events, most, where, "the largest configuration has")
    link = _link(file, links, path)
    trace = read_trace(path.parent / file.serving.trace) if (
        file.serving.arrivals == "trace" and file.serving.trace) else None
    return LoadedServe(path, file, devices, link, trace)


def _link(file: ServingFile, links: dict[str, LinkSpec], path: Path) -> LinkSpec:
    where = path.name
    if isinstance(file.link, LinkSpec):
        link = file.link
    else:
        try:
            link = pick(links, file.link, "link")
        except ValueError as e:
            raise ServeError(f"{where}: link: {e}") from None
    if file.rendezvous is not None:
        link = link.model_copy(update={"rendezvous": file.rendezvous})
    if file.link_trace is not None:
        trace = read_link_trace(path.parent / file.link_trace, file.link_trace_start_s)
        link = link.model_copy(update={"trace": trace})
    return link
