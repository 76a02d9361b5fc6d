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


class PrismSection(_Strict):
    cr: PositiveFloat | list[PositiveFloat] | None = None  # compression rates (>= 1)
    segments: PositiveInt | list[PositiveInt] | None = None  # or means per partition


class NetworkSection(_Strict):
    link: str | list[str] = "ethernet-1g"  # link catalog names; fields below override
    medium: Literal["switched", "shared", "mesh"] | None = None
    bandwidth_mbps: PositiveFloat | list[PositiveFloat] | None = None
    latency_ms: float | list[float] | None = Field(None)
    broadcast: bool | None = None


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

    def options(self) -> dict[str, Any]:
        return {k: v for k, v in (("cr", self.cr), ("segments", self.segments)) if v is not None}

    def key(self) -> str:
        """Stable id of the point (resuming a sweep matches rows by it)."""
        blob = json.dumps(asdict(self), sort_keys=True)
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

    def link_for(self, point: Point) -> LinkSpec:
        return self.links[point.link].model_copy(update={
            "medium": point.medium, "bandwidth_mbps": point.bandwidth_mbps,
            "latency_ms": point.latency_ms, "broadcast": point.broadcast})

    def grid(self) -> list[Point]:
        return expand(self.spec, self.links)


def _prism_options(s: Scenario) -> list[tuple[float | None, int | None]]:
    crs = [(c, None) for c in _listed(s.prism.cr)] if s.prism.cr is not None else []
    segs = [(None, g) for g in _listed(s.prism.segments)] if s.prism.segments is not None else []
    return crs + segs


def _strategy_points(s: Scenario) -> list[tuple[str, int, float | None, int | None]]:
    """single on one device; every other strategy on every P > 1; prism at each CR."""
    out = []
    for name, p in product(s.strategies, _listed(s.devices.count)):
        if (name == "single") != (p == 1):
            continue
        opts = _prism_options(s) if name == "prism" else [(None, None)]
        out += [(name, p, cr, seg) for cr, seg in opts]
    return out


def expand(s: Scenario, links: dict[str, LinkSpec]) -> list[Point]:
    points = []
    net = s.network
    for (name, p, cr, seg), profile, link_name, batch in product(
            _strategy_points(s), _listed(s.devices.profile), _listed(net.link), _listed(s.batch)):
        base = links[link_name]
        for bw, lat in product(_listed(net.bandwidth_mbps or base.bandwidth_mbps),
                               _listed(base.latency_ms if net.latency_ms is None
                                       else net.latency_ms)):
            points.append(Point(
                s.model.name, s.model.architecture, s.model.tokens, name, p, cr, seg, profile,
                link_name, net.medium or base.medium, float(bw), float(lat),
                base.broadcast if net.broadcast is None else net.broadcast, batch, s.wire))
    return points


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such file") from None
    except yaml.YAMLError as err:
        raise ScenarioError(f"{path.name}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path.name}: expected a mapping of scenario fields")
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
            if name not in catalog:
                at = f"{key}[{i}]" if isinstance(value, list) else key
                raise ScenarioError(f"{where}: {at}: unknown {kind} {name!r}; "
                                    f"known: {', '.join(sorted(catalog))}")


def load_scenario(path: str | Path) -> LoadedScenario:
    """Read, validate and check a scenario; raise ScenarioError with file and key."""
    path = Path(path)
    data, where = _read(path), path.name
    try:
        spec = Scenario(**data)
    except ValidationError as err:
        raise ScenarioError(validation_message(err, where, "")) from None
    devices, links = load_catalog_data(spec.catalog or {}, f"{where}: catalog")
    _check_names(spec, where, devices, links)
    loaded = LoadedScenario(path, spec, devices, links)
    if not loaded.grid():
        raise ScenarioError(f"{where}: empty grid: no strategy has a matching device count "
                            f"(single needs devices.count 1, the others counts above 1)")
    return loaded


def is_nan(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))
