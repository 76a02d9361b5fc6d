"""The Workload: what every device computes and sends, in program order (a task graph).

Produced by tracing a strategy's per-device programs (``prismsim.executors.trace``), replayed
by the simulator. Plain data, no torch: the simulator imports only this.

Per device, ``tasks`` is the program order: ``compute`` (FLOPs), ``send`` (one message,
which may go to several devices), ``post`` (receives posted early: the listed messages,
which later ``recv`` tasks wait for, may be sent from now on) and ``recv`` (waits until
the listed messages arrived). Tasks and messages carry the block they belong to
(``layer``; None for input and output steps) as a field of their own.

Memory, from the traced programs: ``resident_bytes`` per device (the weights its compute
steps read, each tensor once) and each compute task's ``live_bytes`` (the most bytes of
its arguments and temporaries live at once); a device needs about its resident bytes plus
its largest live bytes. Decoding programs also say what they keep between steps, their
KV caches: ``kv_cache_bytes`` per device (the most it held at once) and each compute
task's ``held_bytes`` (the cache held while it runs, less what it takes as arguments,
which its live bytes count).

JSON: ``FORMAT`` is written with each workload; files of another format are refused
(the workload cache traces them again).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

# the device that holds the input when a request comes, sends the first partitions and
# collects the output (the others wait for their input)
MASTER = 0
# a decoding program's tags: decode step i's steps and messages are [L<layer>.]t<i>.<name>
# (t0.head: the prefill's last step)
_TOKEN_TAG = re.compile(r"^(L\d+\.)?t(\d+)\.")


def token_step(tag: str) -> int | None:
    """The decode step a task's label or a message's tag belongs to; None: not one."""
    match = _TOKEN_TAG.match(tag)
    return int(match.group(2)) if match else None

FORMAT = 9  # 2: ``post`` tasks; 3: ``layer``, ``payload_bytes``, ``memory_bytes``; 4: ``ops``;
# 5: convolutions keyed ``conv``; 6: ``output_device`` in meta; 7: ``resident_bytes``,
# ``live_bytes``; 8: ``kv_cache_bytes``, ``held_bytes``; 9: ``weight_bytes``


@dataclass(frozen=True)
class Message:
    id: int
    src: int
    dst: tuple[int, ...]
    broadcast: bool  # sent to every other device: a broadcast-capable medium sends it once
    tag: str  # the program's tag as text ("L3.rows", "input.from2")
    shape: tuple[int, ...]
    payload_bytes: int  # of one copy, in the wire dtype
    layer: int | None = None  # the block it belongs to; None: input or output


@dataclass(frozen=True)
class Task:
    kind: Literal["compute", "send", "post", "recv"]
    label: str = ""
    flops: int = 0
    messages: tuple[int, ...] = ()  # send: the one message; post, recv: those it waits for
    memory_bytes: int = 0  # compute: bytes its ops read and write, unfused (a roofline)
    layer: int | None = None  # the block it belongs to; None: input, head or output
    # compute: each aten operator it runs and how often (cost/op_record.py), for
    # shape-aware compute times
    ops: tuple[tuple[tuple, int], ...] = ()
    live_bytes: int = 0  # compute: the most bytes of arguments and temporaries live at once
    # compute: the KV cache its device holds while it runs, less what are its arguments
    held_bytes: int = 0
    # compute: of ``memory_bytes``, what its operators read of the weights (resident
    # tensors); a weight precision below fp32 reads less (``sim/precision.py``)
    weight_bytes: int = 0


@dataclass(eq=False)  # compared and hashed by identity: the simulator caches per workload
class Workload:
    meta: dict[str, Any]
    tasks: list[list[Task]]  # per device, program order
    messages: list[Message] = field(default_factory=list)
    # per device: bytes of the weights its compute steps read (each tensor once); empty
    # for a workload built by hand
    resident_bytes: list[int] = field(default_factory=list)
    # per device: the most bytes of KV cache it held at once; empty for a workload built
    # by hand
    kv_cache_bytes: list[int] = field(default_factory=list)

    @property
    def n_devices(self) -> int:
        return len(self.tasks)

    def flops_per_device(self) -> list[int]:
        return [sum(t.flops for t in ts if t.kind == "compute") for ts in self.tasks]

    def bytes_sent_per_device(self) -> list[int]:
        """Unicast accounting: one copy per recipient."""
        out = [0] * self.n_devices
        for m in self.messages:
            out[m.src] += m.payload_bytes * len(m.dst)
        return out

    def bytes_received_per_device(self, layered_only: bool = False) -> list[int]:
        out = [0] * self.n_devices
        for m in self.messages:
            if layered_only and m.layer is None:
                continue
            for d in m.dst:
                out[d] += m.payload_bytes
        return out

    def received_per_layer(self, per_message: Callable[[Message], float]) -> float:
        """The busiest receiver's per-layer average of ``per_message`` over the messages
        of the blocks (input and output transfers left out)."""
        layers = {m.layer for m in self.messages if m.layer is not None}
        if not layers:
            return 0.0
        per_device = [0.0] * self.n_devices
        for m in self.messages:
            if m.layer is not None:
                for d in m.dst:
                    per_device[d] += per_message(m)
        return max(per_device) / len(layers)

    def comm_bytes_per_layer(self) -> float:
        """Bytes the busiest device receives per layer."""
        return self.received_per_layer(lambda m: m.payload_bytes)

    def pdplc_tokens(self) -> float:
        """Token vectors the busiest device receives per layer (the paper's PDPLC)."""
        batch = self.meta["batch"]
        return self.received_per_layer(lambda m: math.prod(m.shape[:-1]) / batch)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "meta": self.meta,
                           "tasks": [[_task_row(t) for t in ts] for ts in self.tasks],
                           "messages": [asdict(m) for m in self.messages],
                           "resident_bytes": self.resident_bytes,
                           "kv_cache_bytes": self.kv_cache_bytes})

    @classmethod
    def from_json(cls, text: str) -> Workload:
        raw = json.loads(text)
        if raw.get("format", 1) != FORMAT:
            raise ValueError(f"workload format {raw.get('format', 1)}, this prismsim reads "
                             f"{FORMAT}: trace it again")
        tasks = [[Task(kind=r[0], label=r[1], layer=r[2], flops=r[3], messages=tuple(r[4]),
                       memory_bytes=r[5], ops=tuple((tuple(k), n) for k, n in r[6]),
                       live_bytes=r[7], held_bytes=r[8], weight_bytes=r[9])
                  for r in ts] for ts in raw["tasks"]]
        messages = [Message(**{**m, "dst": tuple(m["dst"]), "shape": tuple(m["shape"])})
                    for m in raw["messages"]]
        return cls(meta=raw["meta"], tasks=tasks, messages=messages,
                   resident_bytes=list(raw["resident_bytes"]),
                   kv_cache_bytes=list(raw["kv_cache_bytes"]))

    def save(self, path: Path) -> None:
        path.write_text(self.to_json())

    @classmethod
    def load(cls, path: Path) -> Workload:
        return cls.from_json(path.read_text())


def _task_row(t: Task) -> list[Any]:
    return [t.kind, t.label, t.layer, t.flops, list(t.messages), t.memory_bytes,
            [[list(k), n] for k, n in t.ops], t.live_bytes, t.held_bytes, t.weight_bytes]
