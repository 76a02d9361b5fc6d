"""The per-device timeline a sweep draws: one point (the scenario's ``timeline:``
choice) simulated again with spans recorded, saved as ``timeline.json`` so the plots
can be redrawn without simulating."""

from __future__ import annotations

import json
from pathlib import Path

from prismsim.scenario.grid import Point
from prismsim.scenario.load import LoadedScenario
from prismsim.sim import Span, simulate
from prismsim.userfiles import UserFileError, read_text
from prismsim.workload import Workload

Timeline = tuple[list[Span], str]  # spans, and the title naming the point
# a generation's timeline holds every step of every token (128 tokens of a 30-block
# model on 3 devices: 5.5 MB); larger than any hand-written file, still bounded
TIMELINE_MAX_BYTES = 256 * 2**20


def timeline_point(s: LoadedScenario) -> Point | None:
    """The first grid point matching the scenario's ``timeline:`` choice."""
    t = s.file.timeline
    for p in s.grid():
        if p.strategy == t.strategy and (t.devices is None or p.devices == t.devices) and (
                t.bandwidth_mbps is None or p.bandwidth_mbps == t.bandwidth_mbps):
            return p
    return None


def record_timeline(s: LoadedScenario, p: Point, wl: Workload, out: Path) -> Timeline:
    """Simulate point ``p`` (of workload ``wl``) once more with spans recorded; saved to
    ``timeline.json`` for re-plotting."""
    spans = simulate(wl, s.device_specs(p), s.link_for(p), record=True, host=s.host,
                     events=s.events_for(p)).spans
    title = (f"{p.latency_model} {p.strategy} P={p.devices} {p.options() or ''} on "
             f"{p.device_profile}, {p.bandwidth_mbps:g} Mbit/s")
    (out / "timeline.json").write_text(json.dumps({"title": title, "spans": spans}))
    return spans, title


def load_timeline(out: Path) -> Timeline | None:
    """The saved timeline of a results folder; None if there is none. A damaged file is
    an error naming it."""
    path = out / "timeline.json"
    if not path.exists():
        return None
    try:
        data = json.loads(read_text(path, max_bytes=TIMELINE_MAX_BYTES))
        return [Span(*x) for x in data["spans"]], str(data["title"])
    except (ValueError, KeyError, TypeError, RecursionError) as err:
        if isinstance(err, UserFileError):
            raise
        raise UserFileError(f"{path}: not a timeline prismsim wrote ({err})") from None
