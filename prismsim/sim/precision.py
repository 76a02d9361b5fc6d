"""Weight precision (``dtype``): the model's weights stored at fp32, fp16, bf16, int8 or
int4, its activations, KV cache and messages kept as traced (fp32; ``wire`` sets the
messages'). Workloads are traced once at fp32; a precision is applied to the traced
workload, so no dtype traces again:

- memory: each device's weights take bits / 32 of their fp32 bytes (int8 a quarter,
  int4 an eighth; the scales of a block-quantized format are not counted: Q8_0's add
  2 bytes a block of 32 weights, 6 %);
- bytes read: each compute step's ``memory_bytes`` (the roofline's bytes moved) less
  what its operators read of the weights (``Task.weight_bytes``) times 1 - bits / 32,
  so decoding, bound by the weights it reads, speeds up;
- compute rate: the device's ``peak_gflops_by_dtype`` for the dtype where the catalog
  gives one; int8 and int4 weights are widened to fp16 to compute (weight-only
  quantization) and take its fp16 rate if there is one; else its fp32 ``peak_gflops``.

A device timed by an operator table (measured at fp32, ``cost/op_table.py``) has no
roofline to take fewer bytes: a dtype other than fp32 on it is refused.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import replace

from prismsim.sim.specs import DeviceSpec
from prismsim.workload import Workload

WEIGHT_BITS = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8, "int4": 4}
DTYPES = tuple(WEIGHT_BITS)
_WIDENED = {"int8": "fp16", "int4": "fp16"}  # weight-only formats compute at this rate

_AT: weakref.WeakKeyDictionary[Workload, dict[str, Workload]] = weakref.WeakKeyDictionary()
_SPECS: dict[tuple[int, str], tuple[DeviceSpec, DeviceSpec]] = {}


def weight_scale(dtype: str) -> float:
    """The share of its fp32 bytes a weight takes at ``dtype``."""
    if dtype not in WEIGHT_BITS:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    return WEIGHT_BITS[dtype] / 32


def at_precision(wl: Workload, dtype: str) -> Workload:
    """``wl`` with its weights at ``dtype`` (the same workload at fp32); made once per
    workload and dtype, so the simulator's preparations of it are reused."""
    scale = weight_scale(dtype)
    if scale == 1:
        return wl
    per_workload = _AT.setdefault(wl, {})
    if dtype not in per_workload:
        tasks = [[replace(t, memory_bytes=t.memory_bytes - round(t.weight_bytes * (1 - scale)),
                          weight_bytes=round(t.weight_bytes * scale))
                  if t.kind == "compute" else t for t in ts] for ts in wl.tasks]
        per_workload[dtype] = Workload({**wl.meta, "dtype": dtype}, tasks, wl.messages,
                                       [round(b * scale) for b in wl.resident_bytes],
                                       list(wl.kv_cache_bytes))
    return per_workload[dtype]


def rate_gflops(spec: DeviceSpec, dtype: str) -> tuple[float, str]:
    """The peak the device computes ``dtype`` weights at, and which rate it is."""
    rates = spec.peak_gflops_by_dtype
    for name in (dtype, _WIDENED.get(dtype)):
        if name is not None and name in rates:
            return rates[name], name
    return spec.peak_gflops, "fp32"


def spec_at(spec: DeviceSpec, dtype: str) -> DeviceSpec:
    """The device computing at ``dtype``'s rate (the same spec where that is fp32's)."""
    rate, _ = rate_gflops(spec, dtype)
    if rate == spec.peak_gflops:
        return spec
    hit = _SPECS.get((id(spec), dtype))
    if hit is None or hit[0] is not spec:
        hit = _SPECS[(id(spec), dtype)] = (spec, spec.model_copy(update={"peak_gflops": rate}))
    return hit[1]


def check_precision(dtype: str, wl: Workload, specs: Sequence[DeviceSpec]) -> None:
    """Raise ValueError (one line) where ``dtype`` cannot be applied: an unknown dtype, a
    device timed by its fp32 operator table, a workload without its weights' reads."""
    weight_scale(dtype)
    if dtype == "fp32":
        return
    for spec in specs:
        if spec.operators is not None:
            raise ValueError(f"dtype {dtype}: {spec.name} is timed by an operator table "
                             f"measured at fp32; other weight precisions need a roofline "
                             f"device (peak_gflops, mem_bandwidth_gbytes_per_s)")
    if wl.resident_bytes and not any(t.weight_bytes for ts in wl.tasks for t in ts):
        raise ValueError(f"dtype {dtype}: the workload records no weight reads (traced "
                         f"before workload format 9, or built by hand)")


def precision_note(dtype: str, specs: Sequence[DeviceSpec]) -> str:
    """What ``dtype`` changes, in words, for the output."""
    bits = WEIGHT_BITS[dtype]
    rates = sorted({f"{s.name} at its {rate_gflops(s, dtype)[1]} rate" for s in specs})
    return (f"weights {dtype} ({bits} bits: {bits / 32:g} x the fp32 bytes, held and read); "
            f"activations and KV cache fp32; compute: {', '.join(rates)}")
