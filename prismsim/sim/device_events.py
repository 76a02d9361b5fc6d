"""Devices whose speed changes over simulated time: a device slows down by a factor over
an interval (thermal throttling, background load), or leaves at a time and returns at a
later one, or never.

A device's events make its clock (``DeviceClock``, as ``TraceClock`` for a link): it
works at speed 1 / the product of the factors of the slowdowns in force, and at none
while it is away. A step of ``d`` seconds started at ``t`` ends at ``finish_s(t, d)``;
a step under way when the device leaves waits for its return and then goes on. Events
are read from YAML: a list of mappings, or a mapping whose one key is ``events:``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, model_validator

from prismsim.userfiles import StrictModel, UserFileError, parse_yaml, read_text, validate


class DeviceEvent(StrictModel):
    """One change of one device's speed over an interval of simulated time (the
    inference starts at 0)."""

    device: NonNegativeInt  # index among the point's devices; 0 is the master
    kind: Literal["slowdown", "leave"]
    start_s: NonNegativeFloat  # when it begins
    # slowdown: when it ends; leave: when the device returns; None: never (to the end)
    end_s: PositiveFloat | None = None
    # slowdown only (required there): each step takes this many times its time
    factor: float | None = Field(None, ge=1)
    source: str = ""  # where it comes from (a measurement, a note); "" when not said

    @model_validator(mode="after")
    def _consistent(self) -> DeviceEvent:
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s: {self.end_s:g} is not after start_s {self.start_s:g}")
        if self.kind == "slowdown" and self.factor is None:
            raise ValueError("factor: a slowdown needs one (each step takes this many "
                             "times its time)")
        if self.kind == "leave" and self.factor is not None:
            raise ValueError("factor: only a slowdown has one; a device away does no work")
        return self

    def covers(self, t: float) -> bool:
        """Whether the event is in force at time ``t``."""
        return self.start_s <= t < (math.inf if self.end_s is None else self.end_s)

    def describe(self) -> str:
        """One line, e.g. "device 1 slowed x2 from 10 ms to 30 ms"."""
        start, end = _ms(self.start_s), None if self.end_s is None else _ms(self.end_s)
        if self.kind == "slowdown":
            until = "on" if end is None else f"to {end}"
            return f"device {self.device} slowed x{self.factor:g} from {start} {until}"
        back = "never returns" if end is None else f"returns at {end}"
        return f"device {self.device} leaves at {start} and {back}"


def _ms(t_s: float) -> str:
    return f"{t_s * 1e3:g} ms"


def check_events(events: Sequence[DeviceEvent], n_devices: int, where: str,
                 what: str = "the point has") -> None:
    """Every event names a device there is; else one line naming ``where`` and the key,
    e.g. "ev.yaml: events[2].device: 5, but the point has 3 devices (0..2)"."""
    for i, e in enumerate(events):
        if e.device >= n_devices:
            raise UserFileError(f"{where}: events[{i}].device: {e.device}, but {what} "
                                f"{n_devices} devices (0..{n_devices - 1})")


class DeviceClock:
    """One device's speed over simulated time, from its events: piecewise constant,
    1 / the product of the factors of the slowdowns in force, 0 while it is away."""

    def __init__(self, events: Sequence[DeviceEvent]):
        cuts = {0.0, *(e.start_s for e in events)}
        cuts |= {e.end_s for e in events if e.end_s is not None}
        self.times = sorted(cuts)  # each step's start; the last holds for ever
        self.speed = [_speed(events, t) for t in self.times]

    def _end(self, i: int) -> float:
        return self.times[i + 1] if i + 1 < len(self.times) else math.inf

    def finish_s(self, start_s: float, work_s: float) -> float:
        """When ``work_s`` seconds of work (at full speed) started at ``start_s`` are
        done; inf if the device leaves before and never returns."""
        if work_s <= 0:
            return start_s
        i, at, left = bisect.bisect_right(self.times, start_s) - 1, start_s, work_s
        while True:
            speed, end = self.speed[i], self._end(i)
            if speed > 0 and (end == math.inf or speed * (end - at) >= left):
                return at + left / speed
            if end == math.inf:
                return math.inf
            left -= speed * (end - at)
            at, i = end, i + 1

    def present_s(self, t: float) -> float:
        """The first time at or after ``t`` the device is present; inf if never."""
        i = bisect.bisect_right(self.times, t) - 1
        while self.speed[i] == 0:
            if i + 1 == len(self.times):
                return math.inf
            i += 1
            t = self.times[i]
        return t

    def away_s(self, start_s: float, end_s: float) -> float:
        """How long the device is away between ``start_s`` and ``end_s``."""
        return sum(max(0.0, min(end_s, self._end(i)) - max(start_s, t))
                   for i, t in enumerate(self.times) if self.speed[i] == 0)

    @property
    def gone_s(self) -> float | None:
        """When the device left for good; None if it is present in the end."""
        i = len(self.times) - 1
        if self.speed[i] > 0:
            return None
        while i > 0 and self.speed[i - 1] == 0:
            i -= 1
        return self.times[i]


def _speed(events: Sequence[DeviceEvent], t: float) -> float:
    """The device's speed at ``t``: 0 while away, else 1 / the slowdowns' factors."""
    factor = 1.0
    for e in events:
        if e.covers(t):
            if e.kind == "leave":
                return 0.0
            factor *= e.factor or 1.0
    return 1.0 / factor


def device_clocks(events: Sequence[DeviceEvent], n_devices: int, where: str = "events"
                  ) -> dict[int, DeviceClock]:
    """The clock of each device that has events (checked against ``n_devices``)."""
    check_events(events, n_devices, where)
    devices = sorted({e.device for e in events})
    return {p: DeviceClock([e for e in events if e.device == p]) for p in devices}


def parse_events(items: Any, where: str, prefix: str = "events") -> list[DeviceEvent]:
    """A list of event mappings; any mistake is one line naming ``where`` and the key."""
    if not isinstance(items, list):
        raise UserFileError(f"{where}: {prefix}: expected a list of events (mappings of "
                            f"device, kind, start_s, end_s, factor)")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise UserFileError(f"{where}: {prefix}[{i}]: expected a mapping of fields "
                                f"(device, kind, start_s, end_s, factor)")
        out.append(validate(DeviceEvent, item, where, f"{prefix}[{i}]"))
    return out


def read_events(path: Path | str) -> list[DeviceEvent]:
    """Events from a YAML file: a list of mappings, or ``events:`` and that list."""
    where = str(path)
    data = parse_yaml(read_text(Path(path), where), where)
    if isinstance(data, dict):
        unknown = sorted(map(str, set(data) - {"events"}))
        if unknown:
            raise UserFileError(f"{where}: {unknown[0]}: unknown key; give a list of "
                                f"events, or events: and that list")
        data = data.get("events")
    return parse_events([] if data is None else data, where)
