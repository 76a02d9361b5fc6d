"""The Workload: what every device computes and sends, in program order (a task graph).

Produced by tracing a strategy's per-device programs (``prismsim.cost.trace``), replayed
by the simulator. Plain data, no torch: the simulator imports only this.

Per device, ``tasks`` is the program order: ``compute`` (FLOPs), ``send`` (one message,
which may go to several devices), ``post`` (receives posted early: the listed messages,
which later ``recv`` tasks wait for, may be sent from now on) and ``recv`` (waits until
the listed messages arrived).

JSON: ``FORMAT`` is written with each workload; a file without one is format 1 (no
``post`` tasks, otherwise the same) and still loads; a newer format is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

FORMAT = 2  # 2: ``post`` tasks
_LAYER = re.compile(r"^L(\d+)(?:\.|$)")


def layer_of(label: str) -> int | None:
    """Block index of a task label ("L3.block" -> 3); None for input/output steps."""
    m = _LAYER.match(label)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Message:
    id: int
    src: int
    dst: tuple[int, ...]
    broadcast: bool  # sent to every other device: a broadcast-capable medium sends it once
    tag: str
    shape: tuple[int, ...]
    bytes: int  # payload of one copy, in the wire dtype

    @property
    def layer(self) -> int | None:
        return layer_of(self.tag)


@dataclass(frozen=True)
class Task:
    kind: Literal["compute", "send", "post", "recv"]
    label: str = ""
    flops: int = 0
    messages: tuple[int, ...] = ()  # send: the one message; post, recv: those it waits for
    bytes: int = 0  # compute: memory traffic of its ops, unfused (for a roofline)

    @property
    def layer(self) -> int | None:
        return layer_of(self.label)


@dataclass
class Workload:
    meta: dict[str, Any]
    tasks: list[list[Task]]  # per device, program order
    messages: list[Message] = field(default_factory=list)
    # the simulator's per-device-spec preparation, kept with the workload it belongs to
    compiled: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_devices(self) -> int:
        return len(self.tasks)

    def flops_per_device(self) -> list[int]:
        return [sum(t.flops for t in ts if t.kind == "compute") for ts in self.tasks]

    def bytes_sent_per_device(self) -> list[int]:
        """Unicast accounting: one copy per recipient."""
        out = [0] * self.n_devices
        for m in self.messages:
            out[m.src] += m.bytes * len(m.dst)
        return out

    def bytes_received_per_device(self, layered_only: bool = False) -> list[int]:
        out = [0] * self.n_devices
        for m in self.messages:
            if layered_only and m.layer is None:
                continue
            for d in m.dst:
                out[d] += m.bytes
        return out

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "meta": self.meta,
                           "tasks": [[_task_row(t) for t in ts] for ts in self.tasks],
                           "messages": [asdict(m) for m in self.messages]})

    @classmethod
    def from_json(cls, text: str) -> Workload:
        raw = json.loads(text)
        if raw.get("format", 1) > FORMAT:
            raise ValueError(f"workload format {raw['format']} is newer than this prismsim's "
                             f"({FORMAT})")
        tasks = [[Task(kind=r[0], label=r[1], flops=r[2], messages=tuple(r[3]), bytes=r[4])
                  for r in ts] for ts in raw["tasks"]]
        messages = [Message(**{**m, "dst": tuple(m["dst"]), "shape": tuple(m["shape"])})
                    for m in raw["messages"]]
        return cls(meta=raw["meta"], tasks=tasks, messages=messages)

    def save(self, path: Path) -> None:
        path.write_text(self.to_json())

    @classmethod
    def load(cls, path: Path) -> Workload:
        return cls.from_json(path.read_text())


def _task_row(t: Task) -> list[Any]:
    return [t.kind, t.label, t.flops, list(t.messages), t.bytes]
