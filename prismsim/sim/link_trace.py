"""A link whose rate changes over time: a trace of its bandwidth (and, if given, its
one-way latency and packet loss), replayed under simulated time.

Each step of a trace holds from its time until the next one's; after the last, the last
holds on, or the whole trace repeats (``loop_s``, as Mahimahi's ``mm-link`` replays its
traces). Simulated time 0 is the trace's ``start_s``. A transmission in flight sees the
changes: its bits go at the trace's rate of each moment (the link's goodput applied to
it, times one less the loss), so a message sent just before a drop takes longer than the
rate at its start says; at no bandwidth it waits. Two formats are read:

- CSV with a header: ``time_s, bandwidth_mbps[, latency_ms, loss]``;
- Mahimahi's packet-delivery trace: one line per 1,500-byte packet the link can deliver,
  the line's number the millisecond it can (lines may repeat a millisecond), read here
  as the rate of each ``bin_s`` interval.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import math
from collections import Counter
from pathlib import Path

from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from prismsim.userfiles import StrictModel, UserFileError, validate

MAHIMAHI_PACKET_BYTES = 1500  # an MTU-sized packet, what one line of a trace delivers
MAHIMAHI_BIN_S = 0.01  # the interval a Mahimahi trace's rate is read over
CSV_COLUMNS = ("time_s", "bandwidth_mbps", "latency_ms", "loss")


class LinkTrace(StrictModel):
    """A link's bandwidth over time (Mbit/s, as the link's ``bandwidth_mbps``), and its
    one-way latency (ms, replacing ``latency_ms``) and packet loss where given."""

    source: str = ""  # where the trace comes from (a file, a measurement)
    times_s: tuple[NonNegativeFloat, ...] = Field(min_length=1)  # each step's start
    bandwidth_mbps: tuple[NonNegativeFloat, ...]  # from each step's start on
    latency_ms: tuple[NonNegativeFloat, ...] | None = None  # None: the link's own
    loss: tuple[float, ...] | None = None  # share of packets lost, in [0, 1); None: 0
    loop_s: PositiveFloat | None = None  # the trace repeats with this period; None: no
    start_s: NonNegativeFloat = 0.0  # the trace's time at simulated time 0

    @model_validator(mode="after")
    def _consistent(self) -> LinkTrace:
        times = self.times_s
        if times[0] != 0:
            raise ValueError("times_s: a trace starts at time 0")
        if any(a >= b for a, b in itertools.pairwise(times)):
            raise ValueError("times_s: time must increase from each step to the next")
        for name in ("bandwidth_mbps", "latency_ms", "loss"):
            values = getattr(self, name)
            if values is not None and len(values) != len(times):
                raise ValueError(f"{name}: {len(values)} values for {len(times)} times")
        if self.loss is not None and any(not 0 <= x < 1 for x in self.loss):
            raise ValueError("loss: a share of packets in [0, 1)")
        if self.loop_s is not None and self.loop_s <= times[-1]:
            raise ValueError("loop_s: the period must be after the last step")
        if (self.bandwidth_mbps[-1] == 0 and self.loop_s is None) or \
                not any(self.bandwidth_mbps):
            raise ValueError("bandwidth_mbps: the trace leaves the link with no bandwidth "
                             "for ever")
        return self


class TraceClock:
    """A trace read for the replay: when a transmission ends, what latency holds."""

    def __init__(self, trace: LinkTrace, nominal_mbps: float):
        self.trace, self.times = trace, list(trace.times_s)
        self.nominal_mbps = nominal_mbps
        loss = trace.loss or (0.0,) * len(self.times)
        # progress a second of each step makes on work timed at the nominal bandwidth
        self.speed = [b / nominal_mbps * (1 - x)
                      for b, x in zip(trace.bandwidth_mbps, loss, strict=True)]

    def _step(self, t: float) -> tuple[int, float]:
        """(step index, start of the trace's repeat it is in) at simulated time ``t``."""
        at, period = t + self.trace.start_s, self.trace.loop_s
        base = math.floor(at / period) * period if period else 0.0
        return bisect.bisect_right(self.times, at - base) - 1, base

    def _end(self, i: int, base: float) -> float:
        """When step ``i`` of the repeat starting at ``base`` ends (trace time)."""
        if i + 1 < len(self.times):
            return base + self.times[i + 1]
        return base + self.trace.loop_s if self.trace.loop_s else math.inf

    def finish_s(self, start_s: float, work_s: float) -> float:
        """When a transmission that takes ``work_s`` at the nominal bandwidth, started at
        ``start_s``, ends under the trace's bandwidth (step by step, in trace time)."""
        if work_s <= 0:
            return start_s
        i, base = self._step(start_s)
        at, left = start_s + self.trace.start_s, work_s
        while self.speed[i] * (self._end(i, base) - at) < left:
            left -= self.speed[i] * (self._end(i, base) - at)
            at = self._end(i, base)
            i += 1
            if i == len(self.times):  # the next repeat (only a looping trace gets here)
                i, base = 0, at
        return at + left / self.speed[i] - self.trace.start_s

    def bandwidth_mbps(self, t: float) -> float:
        """The link's rate at simulated time ``t`` after loss (Mbit/s, as the link's
        ``bandwidth_mbps``)."""
        return self.speed[self._step(t)[0]] * self.nominal_mbps

    def latency_s(self, t: float) -> float | None:
        """The trace's one-way latency at simulated time ``t`` (None: not given)."""
        if self.trace.latency_ms is None:
            return None
        return self.trace.latency_ms[self._step(t)[0]] * 1e-3


def read_csv_trace(path: Path) -> LinkTrace:
    """A CSV trace (``time_s, bandwidth_mbps[, latency_ms, loss]``); any mistake is one
    line naming the file and the row."""
    where = str(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise UserFileError(f"{where}: cannot read the link trace: {e}") from None
    if not rows or any(c not in rows[0] for c in CSV_COLUMNS[:2]):
        raise UserFileError(f"{where}: a link trace needs a header with time_s and "
                            f"bandwidth_mbps (and optionally latency_ms, loss) and a row "
                            f"per step")
    columns = [c for c in CSV_COLUMNS if c in rows[0]]
    values = {c: [_number(r[c], where, i + 2, c) for i, r in enumerate(rows)]
              for c in columns}
    return _trace(values, where)


def _number(text: str | None, where: str, line: int, column: str) -> float:
    try:
        return float(text or "")
    except ValueError:
        raise UserFileError(f"{where}: row {line}: {column} {text!r} is not a number") \
            from None


def _trace(fields: dict, where: str, **more: object) -> LinkTrace:
    """The trace of these columns (``time_s`` is the field ``times_s``), or one line
    naming the file and the field."""
    data = {("times_s" if k == "time_s" else k): tuple(v) for k, v in fields.items()}
    return validate(LinkTrace, {"source": where, **data, **more}, where)


def read_mahimahi(path: Path, bin_s: float = MAHIMAHI_BIN_S) -> LinkTrace:
    """A Mahimahi packet-delivery trace as the rate of each ``bin_s``; it repeats with
    its length (its last millisecond), as mm-link replays it."""
    where = str(path)
    try:
        lines = path.read_text().split()
        ms = [int(x) for x in lines]
    except (OSError, UnicodeDecodeError) as e:
        raise UserFileError(f"{where}: cannot read the Mahimahi trace: {e}") from None
    except ValueError:
        raise UserFileError(f"{where}: a Mahimahi trace is one integer millisecond a "
                            f"line") from None
    if not ms or any(a > b for a, b in itertools.pairwise(ms)) or ms[0] < 0:
        raise UserFileError(f"{where}: a Mahimahi trace's milliseconds start at 0 or "
                            f"after and never go back")
    bins = math.ceil(max(ms[-1], 1) * 1e-3 / bin_s)
    counts = Counter(min(int(t * 1e-3 / bin_s), bins - 1) for t in ms)
    mbps = [counts[b] * MAHIMAHI_PACKET_BYTES * 8 / bin_s / 1e6 for b in range(bins)]
    return _trace({"time_s": [b * bin_s for b in range(bins)], "bandwidth_mbps": mbps},
                  where, loop_s=bins * bin_s)


def read_link_trace(path: Path, start_s: float = 0.0) -> LinkTrace:
    """The link trace a file holds (a CSV by its name, ``.csv``, else Mahimahi's format),
    its time ``start_s`` at simulated time 0."""
    trace = read_csv_trace(path) if path.suffix == ".csv" else read_mahimahi(path)
    return trace.model_copy(update={"start_s": start_s})


def trace_steps(trace: LinkTrace, until_s: float) -> list[tuple[float, float]]:
    """(simulated s, Mbit/s after loss) of every step of ``trace`` that begins before
    ``until_s``, each repeat of a looping trace unrolled; the step under way at time 0
    (``start_s``) first, at 0."""
    clock, out, base = TraceClock(trace, 1.0), [], -trace.start_s
    while base < until_s:
        out += [(base + t, rate) for t, rate in zip(trace.times_s, clock.speed, strict=True)
                if base + t < until_s]
        if trace.loop_s is None:
            break
        base += trace.loop_s
    before = [step for step in out if step[0] <= 0]
    return [(0.0, before[-1][1])] + [step for step in out if step[0] > 0]


def shortest_step_s(trace: LinkTrace) -> float:
    """The shortest step of ``trace`` (a last step that holds for ever: infinite)."""
    ends = [*trace.times_s[1:], trace.loop_s if trace.loop_s else math.inf]
    return min(b - a for a, b in zip(trace.times_s, ends, strict=True))
