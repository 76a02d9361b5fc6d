"""A scenario's grid: every point (configuration x device profile x link x batch x
lengths x weight precision x bandwidth x latency) it asks for, in a fixed order."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cached_property
from itertools import product
from typing import Any

from prismsim.configuration import (
    NO_FINETUNE,
    P2P,
    Configuration,
    configurations,
    prism_settings,
)
from prismsim.names import model_heads
from prismsim.scenario.schema import MIX_SEPARATOR, ScenarioFile, as_list
from prismsim.sim.specs import LinkSpec
from prismsim.strategies import Heads, why_not


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
    exchange: str = P2P  # voltage and prism's pattern (last: older keys unchanged)
    host: str = ""  # the shared host's spec as JSON; "": each device its own hardware
    finetune: str = NO_FINETUNE  # prism: weights fine-tuned under the configuration, or not
    generate: int | None = None  # tokens generated after the prompt of ``tokens``; None: none
    # the world it runs in, a digest of the scenario's device events and link trace
    # (LoadedScenario.world); "": devices that keep their speed, the link's nominal figures
    world: str = ""
    dtype: str = "fp32"  # the weights' precision (sim/precision.py)

    @property
    def mixed(self) -> bool:
        return MIX_SEPARATOR in self.device_profile

    @property
    def configuration(self) -> Configuration:
        return Configuration(self.strategy, self.devices, self.cr, self.segments,
                             self.exchange, self.finetune)

    def options(self) -> dict[str, Any]:
        return self.configuration.options()

    @property
    def latency_model(self) -> str:
        """The model whose FLOPs, bytes and latency are simulated."""
        return self.architecture or self.model

    def key(self) -> str:
        """Stable id of the point (resuming a sweep matches rows by it)."""
        return self._key

    @cached_property
    def _key(self) -> str:
        fields = asdict(self)
        for name, default in (("rendezvous", False), ("split", "equal"), ("exchange", P2P),
                              ("host", ""), ("finetune", NO_FINETUNE), ("generate", None),
                              ("world", ""), ("dtype", "fp32")):
            if fields[name] == default:  # keys of points from before the field stay valid
                del fields[name]
        blob = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def scenario_configurations(s: ScenarioFile) -> list[Configuration]:
    """single on one device; every other strategy on every P > 1; prism at each CR and
    fine-tuning."""
    return configurations(s.strategies, as_list(s.devices.count), _prism(s),
                          as_list(s.exchange), s.finetune.modes)


def latency_heads(s: ScenarioFile) -> Heads | None:
    """The heads of the model whose latency is simulated, where known without loading
    it (``names.model_heads``): what bounds P for strategies that split heads."""
    return model_heads(s.model.architecture or s.model.name)


def adaptive_configurations(s: ScenarioFile) -> list[Configuration]:
    """The configurations the adaptive chooser may pick (none without ``adaptive:``),
    fine-tuned ones among them; not those the model cannot run."""
    if s.adaptive is None:
        return []
    heads = latency_heads(s)
    return [c for c in scenario_configurations(s) if c.strategy in s.adaptive.candidates
            and not why_not(c.strategy, c.devices, heads)]


def _mixed_systems(s: ScenarioFile) -> list[tuple[Configuration, str]]:
    """Every strategy but single on each heterogeneous set, at P = the set's size."""
    out = []
    for names in s.devices.mix or []:
        others = [n for n in s.strategies if n != "single"]
        for c in configurations(others, [len(names)], _prism(s), as_list(s.exchange),
                                s.finetune.modes):
            out.append((c, MIX_SEPARATOR.join(names)))
    return out


def _prism(s: ScenarioFile) -> list[dict[str, Any]]:
    crs = as_list(s.prism.cr) if s.prism.cr is not None else []
    segs = as_list(s.prism.segments) if s.prism.segments is not None else []
    return prism_settings(crs, segs)


def _lengths(s: ScenarioFile) -> list[tuple[int | None, int | None]]:
    """(tokens, generate) of each point: the model's tokens alone, or every prompt
    length with every generation length."""
    if s.decode is None:
        return [(s.model.tokens, None)]
    return list(product(as_list(s.decode.prompt_tokens), as_list(s.decode.generate)))


def expand(s: ScenarioFile, links: dict[str, LinkSpec], world: str = "") -> list[Point]:
    """Every point, in order: systems (configurations x profiles, then mixed sets),
    links, batches, prompt and generation lengths, bandwidths, latencies; ``world``: the
    digest of the events and the trace every point runs under."""
    net, points = s.network, []
    systems = list(product(scenario_configurations(s), as_list(s.devices.profile)))
    for (c, profile), link_name, batch, (tokens, generate), dtype in product(
            systems + _mixed_systems(s), as_list(net.link), as_list(s.batch), _lengths(s),
            as_list(s.dtype)):
        base = links[link_name]
        lat_values = base.latency_ms if net.latency_ms is None else net.latency_ms
        for bw, lat in product(as_list(net.bandwidth_mbps or base.bandwidth_mbps),
                               as_list(lat_values)):
            points.append(Point(
                s.model.name, s.model.architecture, tokens, c.strategy, c.devices,
                c.cr, c.segments, profile, link_name, net.medium or base.medium, float(bw),
                float(lat), base.broadcast if net.broadcast is None else net.broadcast,
                batch, s.wire, base.rendezvous if net.rendezvous is None else net.rendezvous,
                s.devices.split if MIX_SEPARATOR in profile else "equal", c.exchange,
                s.host.model_dump_json() if s.host else "", c.finetune, generate, world,
                dtype))
    return points
