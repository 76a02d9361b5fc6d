"""Generation on the testbed (a validation file's ``decode:``): each round prefills a
prompt and generates tokens greedily over GLOO, and the time to first token and time per
output token the devices measured stand beside the held-out prediction's.

A token is there when the owning device (the last one for row-wise strategies, the master
for tensor_parallel) ends its ``t{i}.head`` step; times count from the master's start of
the round, as the simulator's do (each device's steps count from its own start, and the
last device starts as it leaves the barrier, up to a one-way delay and the others'
"ready" before the master: its clock is moved to the master's by their starts on the
host's monotonic clock, ``t0_s``, which every process shares).
A generation's latency (``measured_ms`` and each prediction's ``ms``) is its last token's.
"""

from __future__ import annotations

import statistics
from typing import Any

from prismsim.sim.tokens import HEAD_TAG
from prismsim.validation.report import error_pct
from prismsim.workload import MASTER

FIGURES = ("ttft", "tpot")  # <name>_<figure>_ms, <name>_<figure>_error_pct


def token_ends_s(steps: list[list]) -> list[float]:
    """When each token's head step ended, in token order; steps are (label, layer,
    start, end); [] on a device that does not own decoding."""
    ends = {int(m.group(1)): end for label, _, _, end in steps
            if (m := HEAD_TAG.match(label))}
    return [ends[i] for i in sorted(ends)]


def measured_tokens(records: list[dict], config: int) -> dict[str, float]:
    """One config's rounds as the device that owns decoding read them (ms, from the
    master's start): the median time to first token and per output token, and when the
    last token was there (the request's latency, in place of the master's own end: the
    master may be done long before) with its spread."""
    ttft, tpot, last = [], [], []
    for r in records:
        ends = token_ends_s(r["steps"]) if r["config"] == config else []
        if len(ends) >= 2:
            ends = [end + _behind_master_s(r, records) for end in ends]
            ttft.append(ends[0])
            tpot.append((ends[-1] - ends[0]) / (len(ends) - 1))
            last.append(ends[-1])
    if not ttft:
        raise ValueError(f"config {config}: no device recorded two or more tokens")
    return {"measured_ttft_ms": statistics.median(ttft) * 1e3,
            "measured_tpot_ms": statistics.median(tpot) * 1e3,
            "measured_ms": statistics.median(last) * 1e3,
            "measured_min_ms": min(last) * 1e3, "measured_max_ms": max(last) * 1e3}


def _behind_master_s(record: dict, records: list[dict]) -> float:
    """How much earlier than the master this record's device started the same round
    (negative: it started first); 0 where a record lacks its start (older runs)."""
    if record.get("t0_s") is None:
        return 0.0
    for r in records:
        if (r["device"] == MASTER and r["config"] == record["config"]
                and r.get("rep") == record.get("rep") and r.get("t0_s") is not None):
            return record["t0_s"] - r["t0_s"]
    return 0.0


def token_columns(measured: dict[str, Any], outs: dict[str, dict]) -> dict[str, float]:
    """Each prediction's time to first token and per output token, and its error."""
    row = {}
    for name, out in outs.items():
        for fig in FIGURES:
            if f"{fig}_ms" in out:
                row[f"{name}_{fig}_ms"] = out[f"{fig}_ms"]
                row[f"{name}_{fig}_error_pct"] = error_pct(out[f"{fig}_ms"],
                                                           measured[f"measured_{fig}_ms"])
    return row
