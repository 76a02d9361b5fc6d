"""Scenario files: strict YAML -> a grid of points.

A list in a field makes a grid axis. Every error names the file, the key path and what
was expected, e.g. ``vit_200mbps.yaml: network.bandwidth_mbps[2]: Input should be
greater than 0, got -5``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError

from prismsim.sim.catalog import load_catalog_data, validation_message
from prismsim.sim.specs import DeviceSpec, LinkSpec

MIX_SEPARATOR = "+"  # a mixed set's device_profile: its profiles joined, in device order


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names file and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _listed(v: Any) -> list:
    return list(v) if isinstance(v, list | tuple) else [v]


class ModelSection(_Strict):
    name: str  # built-in name, HF hub name or local directory: accuracy comes from it
    # the model whose FLOPs, bytes and latency are simulated, if not ``name``: the
    # built-in architecture of a checkpoint that cannot be loaded offline, or the paper's
    # model when ``name`` is an offline stand-in for its accuracy (rows say both)
    architecture: str | None = None
    tokens: PositiveInt | None = None  # text models: sequence length for latency points


class DatasetSection(_Strict):
    name: str
    split: str = "test"  # held-out split: accuracy is never measured on training data
    limit: PositiveInt | None = 1000  # examples evaluated (byte data: 256-byte windows)
    batch: PositiveInt = 32  # examples per forward while evaluating (not the latency batch)


class DevicesSection(_Strict):
    count: PositiveInt | list[PositiveInt]  # P values
    profile: str | list[str] = "cpu-2core-2.1ghz"  # device catalog names (paper's CPU)
    # heterogeneous sets, one catalog profile per device (e.g. [[orin, nano, nano]]): each
    # set is one more grid value, run by every strategy but single at P = its size
    mix: list[list[str]] | None = None
    # token partitions of a mixed set: equal sizes, or in proportion to device speed
    split: Literal["equal", "speed"] = "equal"


class PrismSection(_Strict):
    cr: PositiveFloat | list[PositiveFloat] | None = None  # compression rates (>= 1)
    segments: PositiveInt | list[PositiveInt] | None = None  # or means per partition


class NetworkSection(_Strict):
    link: str | list[str] = "ethernet-1g"  # link catalog names; fields below override
    medium: Literal["switched", "shared", "mesh"] | None = None
    bandwidth_mbps: PositiveFloat | list[PositiveFloat] | None = None
    latency_ms: float | list[float] | None = Field(None)
    broadcast: bool | None = None
    # GLOO-style rendezvous (data leaves once the receiver posted its receive); None:
    # the link's own setting. A property of the software stack, not of the medium.
    rendezvous: bool | None = None


class AdaptiveSection(_Strict):
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


class TimelineSection(_Strict):
    """The point whose per-device timeline is drawn (first matching point)."""

    strategy: str = "prism"
    devices: PositiveInt | None = None
    bandwidth_mbps: PositiveFloat | None = None


class Scenario(_Strict):
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
    output: str | None = None  # results folder (default results/<name>)
    timeline: TimelineSection = TimelineSection()
    catalog: dict[str, Any] | None = None  # extra devices: / links: entries, inline
    adaptive: AdaptiveSection | None = None  # None: no adaptive rows


@dataclass(frozen=True)
class Point:
    """One grid point: everything that decides its latency and accuracy."""

    model: str
    architecture: str | None
    tokens: int | None
    strategy: str
    devices: int
    cr: float | None
    segments: int | None
    device_profile: str
    link: str
    medium: str
    bandwidth_mbps: float
    latency_ms: float
    broadcast: bool
    batch: int
    wire: str
    rendezvous: bool = False  # the link's GLOO-style rendezvous (last: older keys unchanged)
    split: str = "equal"  # token partitions of a mixed set ("a+b+c" profiles): or "speed"

    @property
    def mixed(self) -> bool:
        return MIX_SEPARATOR in self.device_profile

    def options(self) -> dict[str, Any]:
        return {k: v for k, v in (("cr", self.cr), ("segments", self.segments)) if v is not None}

    def key(self) -> str:
        """Stable id of the point (resuming a sweep matches rows by it)."""
        fields = asdict(self)
        for name, default in (("rendezvous", False), ("split", "equal")):
            if fields[name] == default:  # keys of points from before the field stay valid
                del fields[name]
        blob = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class LoadedScenario:
    path: Path
    spec: Scenario
    devices: dict[str, DeviceSpec]
    links: dict[str, LinkSpec]

    @property
    def output(self) -> Path:
        return Path(self.spec.output or f"results/{self.spec.name}")

    def device_specs(self, point: Point) -> DeviceSpec | list[DeviceSpec]:
        """The point's device profile, or one per device for a mixed set."""
        if not point.mixed:
            return self.devices[point.device_profile]
        return [self.devices[n] for n in point.device_profile.split(MIX_SEPARATOR)]

    def weights(self, point: Point) -> list[float] | None:
        """Token partition weights: device speeds for a mixed set split by speed."""
        if not (point.mixed and point.split == "speed"):
            return None
        from prismsim.point import speed_weights

        return list(speed_weights(self.device_specs(point)))  # type: ignore[arg-type]

    def link_for(self, point: Point) -> LinkSpec:
        return self.links[point.link].model_copy(update={
            "medium": point.medium, "bandwidth_mbps": point.bandwidth_mbps,
            "latency_ms": point.latency_ms, "broadcast": point.broadcast,
            "rendezvous": point.rendezvous})

    def grid(self) -> list[Point]:
        return expand(self.spec, self.links)

    @property
    def map_csv(self) -> Path | None:
        """The measured performance map named by ``adaptive.map_csv``, if any."""
        a = self.spec.adaptive
        return self.path.parent / a.map_csv if a and a.map_csv else None


def _prism_options(s: Scenario) -> list[tuple[float | None, int | None]]:
    crs = [(c, None) for c in _listed(s.prism.cr)] if s.prism.cr is not None else []
    segs = [(None, g) for g in _listed(s.prism.segments)] if s.prism.segments is not None else []
    return crs + segs


Config = tuple[str, int, float | None, int | None]  # strategy, P, CR, segments


def _strategy_points(s: Scenario) -> list[Config]:
    """single on one device; every other strategy on every P > 1; prism at each CR."""
    out = []
    for name, p in product(s.strategies, _listed(s.devices.count)):
        if (name == "single") != (p == 1):
            continue
        opts = _prism_options(s) if name == "prism" else [(None, None)]
        out += [(name, p, cr, seg) for cr, seg in opts]
    return out


def adaptive_configs(s: Scenario) -> list[Config]:
    """The configurations the adaptive chooser may pick (empty without ``adaptive:``)."""
    if s.adaptive is None:
        return []
    return [c for c in _strategy_points(s) if c[0] in s.adaptive.candidates]


def _mixed_points(s: Scenario) -> list[tuple[Config, str]]:
    """Every strategy but single on each heterogeneous set, at P = the set's size."""
    out = []
    for names in s.devices.mix or []:
        for name in (n for n in s.strategies if n != "single"):
            opts = _prism_options(s) if name == "prism" else [(None, None)]
            out += [((name, len(names), cr, seg), MIX_SEPARATOR.join(names))
                    for cr, seg in opts]
    return out


def expand(s: Scenario, links: dict[str, LinkSpec]) -> list[Point]:
    points = []
    net = s.network
    systems = list(product(_strategy_points(s), _listed(s.devices.profile))) + _mixed_points(s)
    for ((name, p, cr, seg), profile), link_name, batch in product(
            systems, _listed(net.link), _listed(s.batch)):
        base = links[link_name]
        for bw, lat in product(_listed(net.bandwidth_mbps or base.bandwidth_mbps),
                               _listed(base.latency_ms if net.latency_ms is None
                                       else net.latency_ms)):
            points.append(Point(
                s.model.name, s.model.architecture, s.model.tokens, name, p, cr, seg, profile,
                link_name, net.medium or base.medium, float(bw), float(lat),
                base.broadcast if net.broadcast is None else net.broadcast, batch, s.wire,
                base.rendezvous if net.rendezvous is None else net.rendezvous,
                s.devices.split if MIX_SEPARATOR in profile else "equal"))
    return points


def read_mapping(path: Path, error: type[ValueError] = ScenarioError,
                 what: str = "scenario") -> dict[str, Any]:
    """A YAML file that must hold a mapping; failures raise ``error`` naming the file."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except yaml.YAMLError as err:
        raise error(f"{path.name}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise error(f"{path.name}: expected a mapping of {what} fields")
    return data


def _check_names(spec: Scenario, where: str, devices: dict, links: dict) -> None:
    from prismsim.models.builtin import BUILTINS
    from prismsim.models.pretrained import PRETRAINED
    from prismsim.strategies import STRATEGIES

    for i, name in enumerate(spec.strategies):
        if name not in STRATEGIES:
            raise ScenarioError(f"{where}: strategies[{i}]: unknown strategy {name!r}; "
                                f"known: {', '.join(STRATEGIES)}")
    known = set(BUILTINS) | set(PRETRAINED)
    for key, name in (("model.name", spec.model.name), ("model.architecture",
                                                        spec.model.architecture)):
        if name and name not in known and "/" not in name and not Path(name).is_dir():
            raise ScenarioError(f"{where}: {key}: unknown model {name!r}; built-in: "
                                f"{', '.join(sorted(known))}, or a hub name / local directory")
    for key, value, catalog, kind in (("devices.profile", spec.devices.profile, devices, "device"),
                                      ("network.link", spec.network.link, links, "link")):
        for i, name in enumerate(_listed(value)):
            at = f"{key}[{i}]" if isinstance(value, list) else key
            _known(name, catalog, f"{where}: {at}", kind)
    for i, names in enumerate(spec.devices.mix or []):
        if len(names) < 2:
            raise ScenarioError(f"{where}: devices.mix[{i}]: a mixed set needs 2 or more "
                                f"devices, got {names}")
        for j, name in enumerate(names):
            _known(name, devices, f"{where}: devices.mix[{i}][{j}]", "device")
    if spec.devices.mix and spec.adaptive is not None:
        raise ScenarioError(f"{where}: devices.mix: adaptive rows need one device kind per "
                            f"system; leave out mix or adaptive")


def _known(name: str, catalog: dict, at: str, kind: str) -> None:
    if name not in catalog:
        raise ScenarioError(f"{at}: unknown {kind} {name!r}; known: {', '.join(sorted(catalog))}")


def _check_adaptive(spec: Scenario, path: Path) -> None:
    a, where = spec.adaptive, path.name
    if a is None:
        return
    for i, name in enumerate(a.candidates):
        if name not in spec.strategies:
            raise ScenarioError(f"{where}: adaptive.candidates[{i}]: {name!r} is not one of "
                                f"the scenario's strategies ({', '.join(spec.strategies)})")
    if not adaptive_configs(spec):
        raise ScenarioError(f"{where}: adaptive.candidates: no grid configuration uses them")
    if a.accuracy_floor is not None and spec.dataset is None:
        raise ScenarioError(f"{where}: adaptive.accuracy_floor: needs a dataset: section "
                            f"(the accuracy of each candidate)")
    if a.map_csv is not None:
        _check_map_csv(spec, path.parent / a.map_csv, where)


def _check_map_csv(spec: Scenario, csv: Path, where: str) -> None:
    import pandas as pd

    from prismsim.adaptive import SYSTEM_COLUMNS, Candidate, PerformanceMap

    try:
        df = pd.read_csv(csv)
        system = [c for c in SYSTEM_COLUMNS if c in df]  # a file may hold several systems
        maps = [PerformanceMap.from_frame(g) for _, g in df.groupby(system)] if system else [
            PerformanceMap.from_frame(df)]
    except (OSError, ValueError, KeyError) as err:
        raise ScenarioError(f"{where}: adaptive.map_csv: {csv}: {err}") from None
    known = {Candidate(*c) for c in adaptive_configs(spec)}
    for cand in (c for pmap in maps for c in pmap.candidates):
        if cand not in known:
            raise ScenarioError(f"{where}: adaptive.map_csv: {cand.label} is not a candidate "
                                f"configuration of this scenario")


def load_scenario(path: str | Path) -> LoadedScenario:
    """Read, validate and check a scenario; raise ScenarioError with file and key."""
    path = Path(path)
    data, where = read_mapping(path), path.name
    try:
        spec = Scenario(**data)
    except ValidationError as err:
        raise ScenarioError(validation_message(err, where, "")) from None
    devices, links = load_catalog_data(spec.catalog or {}, f"{where}: catalog")
    _check_names(spec, where, devices, links)
    _check_adaptive(spec, path)
    loaded = LoadedScenario(path, spec, devices, links)
    if not loaded.grid():
        raise ScenarioError(f"{where}: empty grid: no strategy has a matching device count "
                            f"(single needs devices.count 1, the others counts above 1)")
    return loaded


def is_nan(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))
