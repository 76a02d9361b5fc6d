"""Export a simulated timeline as Chrome / Perfetto trace JSON (open it in
ui.perfetto.dev or chrome://tracing): one process per device, one track per lane."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prismsim.cost.units import s_to_us
from prismsim.sim.results import LANES, SimResult


def chrome_trace(result: SimResult, device_names: list[str] | None = None) -> dict[str, Any]:
    """Complete ("X") events with microsecond timestamps, plus process/thread names."""
    n = len(result.devices)
    names = device_names or [f"device {p}" + (" (master)" if p == 0 else "") for p in range(n)]
    events: list[dict[str, Any]] = []
    for p in range(n):
        events.append({"ph": "M", "name": "process_name", "pid": p, "args": {"name": names[p]}})
        for tid, lane in enumerate(LANES):
            events.append({"ph": "M", "name": "thread_name", "pid": p, "tid": tid,
                           "args": {"name": lane}})
    for span in result.spans:
        events.append({"ph": "X", "name": span.label, "cat": span.lane, "pid": span.device,
                       "tid": LANES.index(span.lane), "ts": s_to_us(span.start_s),
                       "dur": s_to_us(span.end_s - span.start_s)})
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def write_chrome_trace(result: SimResult, path: Path) -> None:
    if not result.spans:
        raise ValueError("this result has no timeline: simulate with record=True")
    Path(path).write_text(json.dumps(chrome_trace(result)))
