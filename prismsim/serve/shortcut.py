"""A request alone on idle devices runs exactly as one inference does: its timeline is
the one-inference timeline moved to its start, so it need not be replayed task by task.

It holds when, as the group's master takes the request (a batch): every earlier request
of the group has left every one of its devices (so all their messages have arrived),
each device's first receive of it was posted before that moment (as in one inference,
where a device waiting for its input has posted it long before), no device shares a host
(``host``), no other group shares the medium (a shared channel with one group only), and
no request arrives anywhere before the last device is done with this one. Then nothing
can differ from ``simulate``: the replay is deterministic, the medium's ports are free
(their free times lie in the past, and booking takes the later of the two), and nothing
else is booked until it ends. The open loop knows the next arrival in advance; a closed
loop does not, so it never takes the shortcut. ``tests/test_serve_engine.py`` checks that
per-request times and device totals equal the full replay's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from prismsim.sim import simulate
from prismsim.sim.results import SimResult
from prismsim.sim.specs import DeviceSpec, LinkSpec
from prismsim.workload import Workload


class IdleShortcut:
    """One-inference timelines per (group, batch size), and the test whether a request
    may use one. The replay tells it when a group's job starts and finishes and when the
    next request arrives."""

    def __init__(self, specs: Sequence[DeviceSpec], n: int, link: LinkSpec, groups: int,
                 usable: bool):
        self.specs, self.n, self.link = specs, n, link
        self._usable = usable and (groups == 1 or link.medium != "shared")
        self.timelines: dict[tuple[int, int], SimResult] = {}
        self._next_arrival_s = math.inf  # open loop: when the next request comes
        self._active = [0] * groups  # jobs of each group some device still runs

    def started(self, group: int) -> None:
        """A job of ``group`` started."""
        self._active[group] += 1

    def finished(self, group: int) -> None:
        """A job of ``group`` is done on every device."""
        self._active[group] -= 1

    def next_arrival(self, at_s: float) -> None:
        """The next request arrives at ``at_s`` (open loop; inf: none comes)."""
        self._next_arrival_s = at_s

    def disable(self) -> None:
        """No request may take the shortcut (a closed loop: the next arrival is not known
        in advance)."""
        self._usable = False

    def timeline(self, wl: Workload, group: int, batch: int) -> SimResult:
        key = (group, batch)
        if key not in self.timelines:
            first = group * self.n
            self.timelines[key] = simulate(wl, list(self.specs[first:first + self.n]),
                                           self.link)
        return self.timelines[key]

    def applies(self, wl: Workload, group: int, batch: int, now_s: float,
                idle_since_s: Sequence[float], queued: int) -> SimResult | None:
        """The timeline to use for a batch the master takes at ``now_s``, or None."""
        if not self._usable or self._active[group] or queued:
            return None
        first = group * self.n
        if any(t > now_s for t in idle_since_s[first + 1:first + self.n]):
            return None
        r = self.timeline(wl, group, batch)
        assert r.makespan_s is not None
        return r if self._next_arrival_s >= now_s + r.makespan_s else None
