"""Units in one place: every conversion between FLOPs, bytes and bits happens here."""

from __future__ import annotations

import math

FLOPS_PER_MAC = 2  # FLOPs = 2 x multiply-accumulates (the convention of the paper's tables)
BITS_PER_BYTE = 8
MIB_BYTES = 1 << 20  # a mebibyte
GIB_BYTES = 1 << 30  # a gibibyte: memory is sized in them ("8 GB" of LPDDR5 is 8 GiB)

# Bytes per element of a tensor on the wire.
WIRE_BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "int8": 1}
# int8 is symmetric per token vector: each row of the last dimension also carries one
# float32 scale (4 bytes).
INT8_SCALE_BYTES = 4


def gflops(flops: float) -> float:
    return flops / 1e9


def wire_bytes(shape: tuple[int, ...], wire: str) -> int:
    """Payload bytes of a tensor of ``shape`` sent as ``wire`` (fp32 / fp16 / int8)."""
    if wire not in WIRE_BYTES_PER_ELEMENT:
        raise ValueError(f"wire dtype must be one of {sorted(WIRE_BYTES_PER_ELEMENT)}, "
                         f"got {wire!r}")
    numel = math.prod(shape)
    size = numel * WIRE_BYTES_PER_ELEMENT[wire]
    if wire == "int8" and shape:
        size += (numel // shape[-1]) * INT8_SCALE_BYTES
    return size


def bytes_to_bits(n_bytes: float) -> float:
    return n_bytes * BITS_PER_BYTE


def mbps_to_bits_per_s(mbps: float) -> float:
    """Mbit/s (10^6 bits per second, as network rates are quoted) to bit/s."""
    return mbps * 1e6


def gflops_per_s_to_flops_per_s(gflops_per_s: float) -> float:
    return gflops_per_s * 1e9


def gbytes_per_s_to_bytes_per_s(gbytes_per_s: float) -> float:
    return gbytes_per_s * 1e9


def ms_to_s(ms: float) -> float:
    return ms / 1e3


def us_to_s(us: float) -> float:
    return us / 1e6


def s_to_us(seconds: float) -> float:
    return seconds * 1e6
