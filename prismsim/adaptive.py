"""Adaptive PRISM (the Jetson follow-up, Qazi et al., arXiv 2605.25682): an offline
performance map over batch size x bandwidth picks, per request, local execution or
prism(P, CR).

The map holds each candidate configuration's ``latency_s`` and ``energy_j`` at each
(batch, bandwidth_mbps) grid point: built here by the simulator, or loaded from a CSV
of measured profiles with the same columns. A request is looked up at the nearest map
bandwidth *at or below* its own (conservative: the link is never assumed better than it
is) and at the nearest map batch; among the candidates meeting an optional accuracy
floor, the one with the lowest objective (latency or energy) is chosen, and the request
itself is then simulated at its actual batch and bandwidth.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from prismsim.configuration import Configuration
from prismsim.sim import DeviceSpec, HostSpec, LinkSpec, SimResult, simulate
from prismsim.userfiles import UserFileError, read_text
from prismsim.workload import Workload

Objective = Literal["latency", "energy"]
CANDIDATE_COLUMNS = ["strategy", "devices", "cr", "segments", "exchange", "finetune"]
# optional columns of a map file: the system (boards, network) each row was measured on
SYSTEM_COLUMNS = ("device_profile", "link", "medium", "latency_ms", "broadcast", "rendezvous")
MAP_COLUMNS = [*CANDIDATE_COLUMNS, "batch", "bandwidth_mbps", "latency_s", "energy_j",
               "accuracy"]


@dataclass(frozen=True)
class MapEntry:
    """One candidate at one (batch, bandwidth) grid point of the map."""

    configuration: Configuration
    batch: int
    bandwidth_mbps: float
    latency_s: float
    energy_j: float
    accuracy: float = math.nan  # the candidate's task metric; NaN: not known

    def objective(self, name: Objective) -> float:
        return self.latency_s if name == "latency" else self.energy_j


@dataclass(frozen=True)
class PerformanceMap:
    entries: tuple[MapEntry, ...]

    @property
    def batches(self) -> list[int]:
        return sorted({e.batch for e in self.entries})

    @property
    def bandwidths_mbps(self) -> list[float]:
        return sorted({e.bandwidth_mbps for e in self.entries})

    @property
    def configurations(self) -> list[Configuration]:
        return list(dict.fromkeys(e.configuration for e in self.entries))

    def at(self, batch: int, bandwidth_mbps: float) -> list[MapEntry]:
        return [e for e in self.entries if e.batch == batch and e.bandwidth_mbps == bandwidth_mbps]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([_entry_row(e) for e in self.entries], columns=MAP_COLUMNS)

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> PerformanceMap:
        """Rows with MAP_COLUMNS (``cr``, ``segments``, ``exchange``, ``finetune``,
        ``accuracy`` may be missing or empty); other columns are ignored. A (candidate,
        batch, bandwidth) given twice is an error."""
        optional = ("cr", "segments", "exchange", "finetune", "accuracy")
        missing = [c for c in MAP_COLUMNS if c not in df and c not in optional]
        if missing:
            raise ValueError(f"performance map: missing column(s) {missing}")
        entries = tuple(_row_entry(r) for r in df.to_dict("records"))
        keys = [(e.configuration, e.batch, e.bandwidth_mbps) for e in entries]
        if len(set(keys)) != len(keys):
            raise ValueError("performance map: a candidate appears twice at one "
                             "(batch, bandwidth_mbps)")
        return cls(entries)

    def to_csv(self, path: Path) -> None:
        self.to_frame().to_csv(path, index=False)

    @classmethod
    def from_csv(cls, path: Path) -> PerformanceMap:
        return cls.from_frame(read_map_frame(path))


def read_map_frame(path: Path) -> pd.DataFrame:
    """A map CSV (a user's file: bounded, and any failure one ValueError naming it)."""
    try:
        return pd.read_csv(io.StringIO(read_text(Path(path))))
    except UserFileError:
        raise
    except (ValueError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: not a readable CSV: {str(err).splitlines()[0]}") from None


def _entry_row(e: MapEntry) -> dict[str, object]:
    c = e.configuration
    return {"strategy": c.strategy, "devices": c.devices, "cr": c.cr, "segments": c.segments,
            "exchange": c.exchange, "finetune": c.finetune,
            "batch": e.batch, "bandwidth_mbps": e.bandwidth_mbps, "latency_s": e.latency_s,
            "energy_j": e.energy_j, "accuracy": e.accuracy}


def _row_entry(r: Mapping[str, Any]) -> MapEntry:
    try:
        config = Configuration.of_row(r)
        acc = r.get("accuracy")
        return MapEntry(config, int(r["batch"]), float(r["bandwidth_mbps"]),
                        float(r["latency_s"]), float(r["energy_j"]),
                        math.nan if acc is None else float(acc))
    except (TypeError, ValueError) as err:
        raise ValueError(f"performance map: a row's values do not read as numbers: {err}") \
            from None


# ---------------------------------------------------------------- choosing

def map_bandwidth(bandwidths_mbps: Sequence[float], request_mbps: float) -> float:
    """The nearest map bandwidth at or below the request's: a request is never planned
    for a better link than it has. Below the map's lowest, the lowest (the worst the map
    knows)."""
    below = [b for b in bandwidths_mbps if b <= request_mbps]
    return max(below) if below else min(bandwidths_mbps)


def map_batch(batches: Sequence[int], request: int) -> int:
    """The nearest map batch; a tie goes to the larger (the heavier load)."""
    return min(batches, key=lambda b: (abs(b - request), -b))


def meets_floor(accuracy: float, floor: float | None, lower_is_better: bool = False) -> bool:
    """Whether a candidate's metric reaches ``floor`` (at most ``floor`` for metrics such
    as bits per byte). An unknown metric (NaN) cannot be shown to reach any floor."""
    if floor is None:
        return True
    if math.isnan(accuracy):
        return False
    return accuracy <= floor if lower_is_better else accuracy >= floor


def choose(pmap: PerformanceMap, batch: int, bandwidth_mbps: float,
           objective: Objective = "latency", accuracy_floor: float | None = None,
           lower_is_better: bool = False) -> MapEntry:
    """The map entry to run a request with: lowest objective at the request's map cell
    among candidates meeting the floor; ties go to the other objective, then map order."""
    cell_batch = map_batch(pmap.batches, batch)
    cell_bw = map_bandwidth(pmap.bandwidths_mbps, bandwidth_mbps)
    ok = [e for e in pmap.at(cell_batch, cell_bw)
          if meets_floor(e.accuracy, accuracy_floor, lower_is_better)]
    if not ok:
        raise ValueError(f"no candidate of the performance map meets the accuracy floor "
                         f"{accuracy_floor} at batch {cell_batch}, {cell_bw:g} Mbit/s")
    other: Objective = "energy" if objective == "latency" else "latency"
    return min(ok, key=lambda e: (e.objective(objective), e.objective(other)))


# ---------------------------------------------------------------- building, serving

WorkloadOf = Callable[[Configuration, int], Workload]  # (configuration, batch) -> workload


def build_map(workload_of: WorkloadOf, configurations: Sequence[Configuration], device: DeviceSpec,
              link: LinkSpec, batches: Sequence[int], bandwidths_mbps: Sequence[float],
              accuracy: Mapping[Configuration, float] | None = None,
              host: HostSpec | None = None) -> PerformanceMap:
    """The simulator's map: every candidate at every batch and bandwidth on ``device``
    boards joined by ``link`` (its bandwidth replaced by each grid value)."""
    accuracy = accuracy or {}
    entries = []
    for config in configurations:
        for batch in batches:
            wl = workload_of(config, batch)
            for bw in bandwidths_mbps:
                r = simulate(wl, device, at_bandwidth(link, bw), host=host)
                entries.append(MapEntry(config, batch, float(bw), r.latency_s, r.energy_j,
                                        accuracy.get(config, math.nan)))
    return PerformanceMap(tuple(entries))


def at_bandwidth(link: LinkSpec, bandwidth_mbps: float) -> LinkSpec:
    return link.model_copy(update={"bandwidth_mbps": float(bandwidth_mbps)})


def serve(pmap: PerformanceMap, workload_of: WorkloadOf, device: DeviceSpec, link: LinkSpec,
          batch: int, bandwidth_mbps: float, objective: Objective = "latency",
          accuracy_floor: float | None = None,
          lower_is_better: bool = False) -> tuple[MapEntry, SimResult]:
    """One request: the map's choice, then that candidate simulated at the request's
    actual batch and bandwidth (which the map only approximates)."""
    entry = choose(pmap, batch, bandwidth_mbps, objective, accuracy_floor, lower_is_better)
    wl = workload_of(entry.configuration, batch)
    return entry, simulate(wl, device, at_bandwidth(link, bandwidth_mbps))
