"""What each device holds, from its traced program (not a formula per strategy): the
weights its compute steps read (replicated or sharded as its program reads them), the
most its steps hold at once (arguments, temporaries and outputs of one step, and the KV
cache the device keeps beside them while decoding: the cache a decode step attends over
is among its arguments, counted once), its message buffers, and the framework and
operating system its kind needs before any model (the catalog's ``runtime_gib``). A
device fits when the sum is within its ``memory_gib``. The largest KV cache it keeps is
reported on its own too (``kv_cache_bytes``, a part of the step figure, not added).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prismsim.cost.units import GIB_BYTES, MIB_BYTES
from prismsim.sim.specs import DeviceSpec
from prismsim.workload import Workload


@dataclass(frozen=True)
class DeviceMemory:
    """One device's memory at its fullest, by what holds it (bytes)."""

    weights_bytes: int  # the weights its program reads, resident throughout
    # the most one of its steps holds live at once, with the KV cache kept beside it
    live_bytes: int
    buffers_bytes: int  # its largest receive's messages and its largest send
    runtime_bytes: int  # framework and operating system (the catalog's runtime_gib)
    capacity_bytes: int | None  # its memory (None: the catalog gives none)
    kv_cache_bytes: int = 0  # the largest KV cache it keeps (within live_bytes)

    @property
    def peak_bytes(self) -> int:
        return self.weights_bytes + self.live_bytes + self.buffers_bytes + self.runtime_bytes

    @property
    def fits(self) -> bool | None:
        """Whether it fits its memory (None: no capacity to compare with)."""
        return None if self.capacity_bytes is None else self.peak_bytes <= self.capacity_bytes

    @property
    def over_bytes(self) -> int:
        """How far beyond its memory it goes (0 if it fits or has no capacity)."""
        return max(0, self.peak_bytes - (self.capacity_bytes or self.peak_bytes))


def buffers_bytes(wl: Workload, device: int, stages: bool) -> int:
    """The largest set of messages one receive (or post) of ``device`` takes at once,
    plus the largest message it sends; a device that stages messages through host memory
    (GLOO on a GPU) holds each twice."""
    received = [sum(wl.messages[m].payload_bytes for m in t.messages)
                for t in wl.tasks[device] if t.kind in ("recv", "post")]
    sent = [wl.messages[t.messages[0]].payload_bytes for t in wl.tasks[device]
            if t.kind == "send"]
    held = max(received, default=0) + max(sent, default=0)
    return 2 * held if stages else held


def device_memory(wl: Workload, devices: DeviceSpec | Sequence[DeviceSpec]
                  ) -> list[DeviceMemory]:
    """Each device's memory at its fullest (``devices``: one spec for all, or one a
    device). A workload built by hand, not traced, holds no weights."""
    specs = [devices] * wl.n_devices if isinstance(devices, DeviceSpec) else devices
    resident = wl.resident_bytes
    out = []
    for p, spec in enumerate(specs):
        live = max((t.live_bytes + t.held_bytes for t in wl.tasks[p]
                    if t.kind == "compute"), default=0)
        out.append(DeviceMemory(
            weights_bytes=resident[p] if resident else 0, live_bytes=live,
            buffers_bytes=buffers_bytes(wl, p, spec.stages),
            runtime_bytes=round(spec.runtime_gib * GIB_BYTES),
            capacity_bytes=None if spec.memory_gib is None
            else round(spec.memory_gib * GIB_BYTES),
            kv_cache_bytes=wl.kv_cache_bytes[p] if wl.kv_cache_bytes else 0))
    return out


def memory_columns(memory: Sequence[DeviceMemory]) -> dict[str, Any]:
    """The fullest device's memory at its fullest, and whether every device fits (None:
    a device's capacity is not known, and none is known not to fit)."""
    fits = [m.fits for m in memory]
    return {"memory_peak_bytes": max(m.peak_bytes for m in memory),
            "fits": False if False in fits else None if None in fits else True}


def overflow(memory: Sequence[DeviceMemory], specs: Sequence[DeviceSpec]) -> str | None:
    """Which devices do not fit, by how much, in one line (None: all fit, or no
    capacity is known)."""
    over = [f"device {p} ({spec.name}) needs {size(m.peak_bytes)} of its "
            f"{size(m.capacity_bytes or 0)} ({size(m.over_bytes)} over)"
            for p, (m, spec) in enumerate(zip(memory, specs, strict=True))
            if m.fits is False]
    return "; ".join(over) or None


def size(n_bytes: int) -> str:
    """A memory size in words: GiB, MiB or bytes, whichever reads best."""
    if n_bytes >= GIB_BYTES:
        return f"{n_bytes / GIB_BYTES:.2f} GiB"
    if n_bytes >= MIB_BYTES:
        return f"{n_bytes / MIB_BYTES:.1f} MiB"
    return f"{n_bytes:,} bytes"
