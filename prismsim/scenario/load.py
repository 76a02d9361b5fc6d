"""Reading a scenario: strict YAML, names checked against the catalogs, and the
:class:`LoadedScenario` a sweep runs (its grid, less the points whose strategy cannot
run on the model: those are skipped rows, saying why). Every error is one line naming
the file and the key, e.g. ``vit_200mbps.yaml: network.bandwidth_mbps[2]: Input should
be greater than 0, got -5``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from prismsim.adaptive import SYSTEM_COLUMNS, PerformanceMap, read_map_frame
from prismsim.configuration import NO_FINETUNE
from prismsim.names import check_model, check_strategies
from prismsim.scenario.grid import Point, adaptive_configurations, expand, latency_heads
from prismsim.scenario.schema import MIX_SEPARATOR, ScenarioError, ScenarioFile, as_list
from prismsim.sim.catalog import CatalogError, load_catalog_data
from prismsim.sim.device_events import DeviceEvent, check_events
from prismsim.sim.link_trace import LinkTrace, read_link_trace
from prismsim.sim.precision import spec_at
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec, speed_weights
from prismsim.strategies import decoding_strategies, why_not
from prismsim.userfiles import UserFileError, load_model_file


@dataclass
class LoadedScenario:
    path: Path
    file: ScenarioFile
    devices: dict[str, DeviceSpec]
    links: dict[str, LinkSpec]
    trace: LinkTrace | None = None  # network.trace, read, from network.trace_start_s

    @property
    def output(self) -> Path:
        return Path(self.file.output or f"results/{self.file.name}")

    def device_specs(self, point: Point) -> DeviceSpec | list[DeviceSpec]:
        """The point's device profile, or one per device for a mixed set."""
        if not point.mixed:
            return spec_at(self.devices[point.device_profile], point.dtype)
        return [spec_at(self.devices[n], point.dtype)
                for n in point.device_profile.split(MIX_SEPARATOR)]

    def weights(self, point: Point) -> list[float] | None:
        """Token partition weights: device speeds for a mixed set split by speed."""
        if not (point.mixed and point.split == "speed"):
            return None
        return list(speed_weights(self.device_specs(point)))  # type: ignore[arg-type]

    def link_for(self, point: Point) -> LinkSpec:
        update = {"medium": point.medium, "bandwidth_mbps": point.bandwidth_mbps,
                  "latency_ms": point.latency_ms, "broadcast": point.broadcast,
                  "rendezvous": point.rendezvous}
        if self.trace is not None:
            update["trace"] = self.trace
        return self.links[point.link].model_copy(update=update)

    def events_for(self, point: Point) -> list[DeviceEvent]:
        """The scenario's events on devices the point has: a system of P devices uses
        devices 0..P-1, and an event on another one leaves it as it is."""
        return [e for e in self.file.events if e.device < point.devices]

    @property
    def moves(self) -> bool:
        """Whether devices slow down or leave, or the link follows a trace (rows then
        say so: ``sweep/rows.py`` WORLD)."""
        return bool(self.file.events) or self.trace is not None

    @cached_property
    def world(self) -> str:
        """A digest of the events and the trace (not their ``source`` notes): part of
        every point's key, so that rows of another world are not taken for these; ""
        when nothing moves (keys as before)."""
        if not self.moves:
            return ""
        blob = json.dumps({
            "events": [e.model_dump(mode="json", exclude={"source"}) for e in self.file.events],
            "trace": self.trace.model_dump(mode="json", exclude={"source"}) if self.trace
            else None}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def trace_label(self) -> str:
        """The trace as a row names it, e.g. "walk.csv from 0 s"; "" without one."""
        if self.trace is None:
            return ""
        return f"{Path(self.trace.source).name} from {self.trace.start_s:g} s"

    @property
    def host(self) -> HostSpec | None:
        """The machine all devices share, if the scenario names one."""
        return self.file.host

    def grid(self) -> list[Point]:
        """The points a sweep runs: every point but the skipped ones."""
        return [p for p in self._points if p not in self._skipped]

    def skipped(self) -> dict[Point, str]:
        """Points whose strategy cannot run on the latency model at their P, and why
        (known without loading the model: a built-in or a local directory)."""
        return dict(self._skipped)

    def every_point(self) -> list[Point]:
        """The whole grid in order, skipped points included: one results row each."""
        return list(self._points)

    @cached_property
    def _points(self) -> tuple[Point, ...]:
        return tuple(expand(self.file, self.links, self.world))

    @cached_property
    def _skipped(self) -> dict[Point, str]:
        heads = latency_heads(self.file)
        reasons = {p: why_not(p.strategy, p.devices, heads) for p in self._points}
        return {p: r for p, r in reasons.items() if r}

    @property
    def map_csv(self) -> Path | None:
        """The measured performance map named by ``adaptive.map_csv``, if any."""
        a = self.file.adaptive
        return self.path.parent / a.map_csv if a and a.map_csv else None


def _check_names(scenario: ScenarioFile, where: str, devices: dict, links: dict) -> None:
    check_strategies(scenario.strategies, f"{where}: strategies", ScenarioError)
    check_model(scenario.model.name, f"{where}: model.name", ScenarioError)
    check_model(scenario.model.architecture, f"{where}: model.architecture", ScenarioError)
    for key, value, catalog, kind in (
            ("devices.profile", scenario.devices.profile, devices, "device"),
            ("network.link", scenario.network.link, links, "link")):
        for i, name in enumerate(as_list(value)):
            at = f"{key}[{i}]" if isinstance(value, list) else key
            _known(name, catalog, f"{where}: {at}", kind)
    for i, names in enumerate(scenario.devices.mix or []):
        if len(names) < 2:
            raise ScenarioError(f"{where}: devices.mix[{i}]: a mixed set needs 2 or more "
                                f"devices, got {names}")
        for j, name in enumerate(names):
            _known(name, devices, f"{where}: devices.mix[{i}][{j}]", "device")
    if scenario.devices.mix and scenario.adaptive is not None:
        raise ScenarioError(f"{where}: devices.mix: adaptive rows need one device kind per "
                            f"system; leave out mix or adaptive")


def _known(name: str, catalog: dict, at: str, kind: str) -> None:
    if name not in catalog:
        raise ScenarioError(f"{at}: unknown {kind} {name!r}; known: {', '.join(sorted(catalog))}")


def _check_finetune(scenario: ScenarioFile, where: str) -> None:
    """Fine-tuned rows are prism rows with an accuracy measured on data never trained on."""
    if all(m == NO_FINETUNE for m in scenario.finetune.modes):
        return
    at = f"{where}: finetune.modes"
    if "prism" not in scenario.strategies:
        raise ScenarioError(f"{at}: fine-tuning is an axis of prism rows; strategies has no "
                            f"prism")
    if scenario.dataset is None:
        raise ScenarioError(f"{at}: needs a dataset: section (trained on its train split)")
    if scenario.dataset.split == "train":
        raise ScenarioError(f"{where}: dataset.split: fine-tuned models train on the train "
                            f"split; measure them on a held-out one (e.g. test)")


def _check_decode(scenario: ScenarioFile, where: str) -> None:
    """A decode: section asks every strategy to decode: one that cannot is named (it
    would be every row of that strategy, not a corner of the grid)."""
    if scenario.decode is None:
        return
    if scenario.model.tokens is not None:
        raise ScenarioError(f"{where}: model.tokens: with a decode: section the prompt's "
                            f"length is decode.prompt_tokens; leave model.tokens out")
    for i, name in enumerate(scenario.strategies):
        if why_not(name, decode=True):
            raise ScenarioError(f"{where}: strategies[{i}]: {name!r} has no decoding; "
                                f"with decode: use {', '.join(decoding_strategies())}")
    if scenario.adaptive is not None:
        raise ScenarioError(f"{where}: decode: adaptive rows choose by one forward's "
                            f"latency; leave out decode or adaptive")


def _check_adaptive(scenario: ScenarioFile, path: Path) -> None:
    a, where = scenario.adaptive, path.name
    if a is None:
        return
    for i, name in enumerate(a.candidates):
        if name not in scenario.strategies:
            raise ScenarioError(f"{where}: adaptive.candidates[{i}]: {name!r} is not one of "
                                f"the scenario's strategies ({', '.join(scenario.strategies)})")
    if not adaptive_configurations(scenario):
        raise ScenarioError(f"{where}: adaptive.candidates: no grid configuration uses them")
    if a.accuracy_floor is not None and scenario.dataset is None:
        raise ScenarioError(f"{where}: adaptive.accuracy_floor: needs a dataset: section "
                            f"(the accuracy of each candidate)")
    if a.map_csv is not None:
        _check_map_csv(scenario, path.parent / a.map_csv, where)


def _check_map_csv(scenario: ScenarioFile, csv: Path, where: str) -> None:
    """Every configuration of a measured map must be one the chooser may pick."""
    try:
        df = read_map_frame(csv)
        system = [c for c in SYSTEM_COLUMNS if c in df]  # a file may hold several systems
        maps = [PerformanceMap.from_frame(g) for _, g in df.groupby(system)] if system else [
            PerformanceMap.from_frame(df)]
    except ValueError as err:
        raise ScenarioError(f"{where}: adaptive.map_csv: {err}") from None
    known = set(adaptive_configurations(scenario))
    for config in (c for pmap in maps for c in pmap.configurations):
        if config not in known:
            raise ScenarioError(f"{where}: adaptive.map_csv: {config.label()} is not a "
                                f"candidate configuration of this scenario")


def load_scenario(path: str | Path) -> LoadedScenario:
    """Read, validate and check a scenario; raise ScenarioError with file and key."""
    path = Path(path)
    scenario = load_model_file(path, ScenarioFile, "scenario fields", ScenarioError)
    where = path.name
    try:
        devices, links = load_catalog_data(scenario.catalog or {}, f"{where}: catalog",
                                           path.parent)
    except CatalogError as err:
        raise ScenarioError(str(err)) from None
    _check_names(scenario, where, devices, links)
    _check_finetune(scenario, where)
    _check_decode(scenario, where)
    _check_adaptive(scenario, path)
    loaded = LoadedScenario(path, scenario, devices, links, _read_trace(scenario, path))
    _check_grid(loaded, where)
    _check_events(loaded, where)
    _check_dtype(loaded, where)
    return loaded


def _check_dtype(loaded: LoadedScenario, where: str) -> None:
    """A precision other than fp32 on a device with an operator table (measured at fp32)
    cannot be applied: say which (``sim/precision.py``)."""
    for point in [p for p in loaded.grid() if p.dtype != "fp32"]:
        specs = loaded.device_specs(point)
        for spec in specs if isinstance(specs, list) else [specs]:
            if spec.operators is not None:
                raise ScenarioError(f"{where}: dtype: {point.dtype} weights on "
                                    f"{spec.name}, which its fp32 operator table times; "
                                    f"other precisions need a roofline device")


def _read_trace(scenario: ScenarioFile, path: Path) -> LinkTrace | None:
    """``network.trace``, a file beside the scenario (CSV by its name, else Mahimahi),
    from ``network.trace_start_s``."""
    net, where = scenario.network, path.name
    if net.trace is None:
        if net.trace_start_s:
            raise ScenarioError(f"{where}: network.trace_start_s: goes with network.trace "
                                f"(a link trace file)")
        return None
    if len(as_list(net.bandwidth_mbps or [])) > 1:
        raise ScenarioError(f"{where}: network.bandwidth_mbps: under network.trace the "
                            f"bandwidth of each moment is the trace's; give one value or none")
    file = path.parent / net.trace
    try:
        return read_link_trace(file, net.trace_start_s)
    except UserFileError as err:
        raise ScenarioError(f"{where}: network.trace: {err}") from None


def _check_events(loaded: LoadedScenario, where: str) -> None:
    """Each event names a device of the largest system (smaller ones run without it);
    not on a shared host."""
    events = loaded.file.events
    if not events:
        return
    if loaded.host is not None:
        raise ScenarioError(f"{where}: events: device events on a shared host are not "
                            f"modelled; leave out host or events")
    largest = max(p.devices for p in loaded.every_point())
    try:
        check_events(events, largest, where, "the largest system of the grid has")
    except UserFileError as err:
        raise ScenarioError(str(err)) from None


def _check_grid(loaded: LoadedScenario, where: str) -> None:
    """A grid with points to run: a point the model cannot run is a skipped row, but a
    grid of nothing else is a mistake."""
    if loaded.grid():
        return
    if loaded.skipped():
        reason = next(iter(loaded.skipped().values()))
        raise ScenarioError(f"{where}: devices.count: no point can run ({reason})")
    raise ScenarioError(f"{where}: empty grid: no strategy has a matching device count "
                        f"(single needs devices.count 1, the others counts above 1)")
