"""One point (``prismsim simulate``): a cached workload replayed on devices and a link;
tables of the result."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from prismsim.executors.trace_cache import WorkloadCache
from prismsim.sim import DeviceSpec, HostSpec, LinkSpec, SimResult, simulate
from prismsim.sim.device_events import DeviceEvent
from prismsim.sim.memory import DeviceMemory
from prismsim.sim.precision import at_precision, check_precision, spec_at
from prismsim.sim.specs import speed_weights
from prismsim.sim.tokens import decode_summary
from prismsim.workload import Workload


def simulate_point(model: str, strategy: str, devices: int,
                   device: DeviceSpec | Sequence[DeviceSpec], link: LinkSpec, *,
                   batch: int = 1, tokens: int | None = None, wire: str = "fp32",
                   record: bool = False, cache: WorkloadCache | None = None,
                   split: str = "equal", host: HostSpec | None = None,
                   generate: int | None = None, events: Sequence[DeviceEvent] = (),
                   dtype: str = "fp32", **options: Any) -> tuple[Workload, SimResult]:
    """One inference. ``device``: one spec for all, or one per device; ``split="speed"``
    sizes token partitions (and galaxy's heads and columns) in proportion to their
    speeds instead of equally. ``generate``: prefill the ``tokens`` prompt, then generate
    that many tokens (the timeline is recorded: token times come from it). ``events``:
    devices that slow down or leave (``sim/device_events.py``). ``dtype``: the weights'
    precision (``sim/precision.py``; the workload is traced at fp32 either way)."""
    specs = [device] * devices if isinstance(device, DeviceSpec) else list(device)
    if len(specs) != devices:
        raise ValueError(f"{len(specs)} device profiles for {devices} devices: give one, "
                         f"or one per device")
    weights = None
    if split == "speed" and devices > 1:
        weights = speed_weights(specs)
        if strategy == "galaxy":
            options = {**options, "speeds": weights}
    elif split != "equal":
        raise ValueError(f"split must be 'equal' or 'speed', got {split!r}")
    cache = cache or WorkloadCache()
    wl = cache.get(model, strategy, devices, tokens=tokens, batch=batch, wire=wire,
                   weights=weights, generate=generate, **options)
    check_precision(dtype, wl, specs)
    wl, specs = at_precision(wl, dtype), [spec_at(s, dtype) for s in specs]
    record = record or generate is not None
    return wl, simulate(wl, specs, link, record=record, host=host, events=events)


def device_table(result: SimResult, memory: Sequence[DeviceMemory] = ()) -> pd.DataFrame:
    """One row a device: where its time and energy went; with ``memory``, what it holds
    at its fullest (``sim/memory.py``)."""
    rows = []
    for p, d in enumerate(result.devices):
        rows.append({
            "device": p, "compute_s": d.compute_s, "comm_s": d.comm_s, "idle_s": result.idle_s(p),
            "staging_s": d.staging_s, "tx_s": d.tx_s, "rx_s": d.rx_s,
            "bytes_sent": d.bytes_sent, "bytes_received": d.bytes_received,
            "energy_j": d.energy_j,
        })
    for row, m in zip(rows, memory, strict=False):
        row |= {"weights_bytes": m.weights_bytes, "live_bytes": m.live_bytes,
                "kv_cache_bytes": m.kv_cache_bytes, "buffers_bytes": m.buffers_bytes,
                "memory_peak_bytes": m.peak_bytes, "fits": m.fits}
    return pd.DataFrame(rows)



def summary(wl: Workload, result: SimResult) -> dict[str, Any]:
    """What one point gave; a generation adds its per-token figures (``decode_summary``)."""
    flops = wl.flops_per_device()
    decode = decode_summary(wl, result) if wl.meta.get("generate") and not result.lost \
        else {}
    return {**decode,
        "model": wl.meta["model"], "strategy": wl.meta["strategy"],
        "devices": wl.meta["devices"], "tokens": wl.meta["tokens"],
        "latency_s": result.latency_s, "energy_j": result.energy_j,
        "bytes_on_air": result.bytes_on_air,
        "gflops_total": sum(flops) / 1e9, "gflops_per_device": max(flops) / 1e9,
    }
