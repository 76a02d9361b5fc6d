"""Straggler-aware re-split: a fixed group that splits each request's tokens across its
devices watches how long each device's compute takes against its mean time; when, over
the last ``window_s`` of parts, the devices' measured speeds call for shares that differ
from the current ones by more than ``threshold`` (either way; checked once a whole window
has passed with the current split), the group splits the
tokens of its next requests in proportion to those speeds (rounded to ``step``), as a
system would after a detection window. A slowed device (thermal throttling, background
work) then holds the group up less; once it recovers, the next window splits back.

Speeds are the mean-time compute of a device's parts over their measured compute (what
its clock and draws made of them), so the group reacts to what happened, not to what it
was told."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prismsim.sim.ops import Compute, device_ops
from prismsim.sim.specs import DeviceSpec
from prismsim.workload import Workload

Weights = tuple[float, ...]


@dataclass(frozen=True)
class Resplit:
    """When and how a fixed group splits its tokens again."""

    # the workloads (by batch size) of a split with these relative speeds (the fastest 1)
    workloads: Callable[[Weights], dict[int, Workload]]
    window_s: float = 2.0  # the parts of the last this many seconds make the speeds
    threshold: float = 1.2  # split again when a share would change by more than this
    step: float = 0.05  # relative speeds rounded to this (fewer splits to trace)


@dataclass(frozen=True)
class Switch:
    """A group began splitting in proportion to ``weights`` at ``at_s``."""

    group: int
    at_s: float
    weights: Weights


class Resplitter:
    """Each group's current split and what its devices' last parts measured."""

    def __init__(self, rule: Resplit, specs: Sequence[DeviceSpec], n: int, groups: int,
                 first: dict[int, Workload]):
        self.rule, self.specs, self.n = rule, specs, n
        self.current = [first] * groups
        self.weights: list[Weights] = [(1.0,) * n] * groups
        self.seen: list[deque[tuple[float, int, float, float]]] = [deque() for _ in
                                                                 range(groups)]
        self.switches: list[Switch] = []
        self.since_s = [0.0] * groups  # when the group's current split began
        self._mean_s: dict[tuple[int, int, int], float] = {}

    def workloads(self, group: int) -> dict[int, Workload]:
        return self.current[group]

    def mean_s(self, wl: Workload, p: int, d: int) -> float:
        """Device d's mean-time compute of program p of ``wl``."""
        key = (id(wl), p, d)
        if key not in self._mean_s:
            self._mean_s[key] = sum(op.seconds for op in device_ops(wl, p, self.specs[d], True)
                                    if isinstance(op, Compute))
        return self._mean_s[key]

    def observe(self, group: int, p: int, d: int, wl: Workload, measured_s: float,
                now_s: float) -> None:
        """Device d (program p of ``wl``) took ``measured_s`` of compute on its part."""
        if measured_s > 0:
            self.seen[group].append((now_s, p, self.mean_s(wl, p, d), measured_s))

    def speeds(self, group: int, now_s: float) -> Weights | None:
        """Each device's speed over the window, relative to the fastest (None: a device
        without a part in it)."""
        seen = self.seen[group]
        while seen and seen[0][0] < now_s - self.rule.window_s:
            seen.popleft()
        mean, measured = [0.0] * self.n, [0.0] * self.n
        for _, p, m, x in seen:
            mean[p] += m
            measured[p] += x
        if not all(measured):
            return None
        speed = [m / x for m, x in zip(mean, measured, strict=True)]
        return tuple(s / max(speed) for s in speed)

    def check(self, group: int, now_s: float) -> None:
        """Split the group's next requests anew if its speeds call for it."""
        if now_s - self.since_s[group] < self.rule.window_s:
            return  # not a whole window with this split yet
        speed = self.speeds(group, now_s)
        if speed is None:
            return
        step = self.rule.step
        want = tuple(max(step, round(s / step) * step) for s in speed)
        current = self.weights[group]
        share_now = [w / sum(current) for w in current]
        share_want = [w / sum(want) for w in want]
        change = max(max(a / b, b / a) for a, b in zip(share_now, share_want, strict=True))
        if change > self.rule.threshold:
            self.current[group] = self.rule.workloads(want)
            self.weights[group] = want
            self.seen[group].clear()
            self.since_s[group] = now_s
            self.switches.append(Switch(group, now_s, want))
