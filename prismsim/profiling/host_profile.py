"""Calibration of this host: how fast one torch thread runs a model's forward while k
such processes compute at once (``busy_rates``: interleaved windows, spread checked),
the operator table (``op_profile``) and the cost of one GLOO message (``pingpong`` on
loopback).

``prismsim profile-device`` writes the result as YAML that ``prismsim validate`` (and a
scenario's device catalog, through its ``device`` part) can use.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from prismsim.executors.trace import trace_workload
from prismsim.profiling.busy_rates import busy_rates, run_schedule
from prismsim.profiling.message_costs import (
    RUNTIME_BYTES,
    MessageCosts,
    fit_message_cost,
    loopback_message_costs,
)
from prismsim.profiling.operators import measure_operator_table
from prismsim.profiling.wake import wake_penalties


def model_flops(model: str, batch: int = 1) -> int:
    """FLOPs of the single-device program (fvcore, as the simulator counts them)."""
    wl = trace_workload(model, "single", 1, batch=batch)
    return sum(t.flops for t in wl.tasks[0])


SPREAD_LIMIT = 0.10  # windows of one k further apart than this: measured again, once


def _problems(rates: dict[int, float], spread: dict[int, float]) -> list[str]:
    """Why a measurement of the k-busy rates cannot be trusted (empty: it can)."""
    out = [f"{k} busy: its windows spread {100 * s:.0f} % (over {100 * SPREAD_LIMIT:.0f} %)"
           for k, s in spread.items() if s > SPREAD_LIMIT]
    out += [f"{k} busy ran faster per process ({rates[k]:.1f} GFLOP/s) than 1 busy "
            f"({rates[1]:.1f})" for k in rates if k > 1 and rates[k] > rates[1]]
    return out


def measure_busy_rates(model: str, batch: int, max_procs: int, rounds: int, window_s: float
                       ) -> dict[str, Any]:
    """The k-busy rates, measured again once if the first measurement is not to be
    trusted; what was wrong with the kept one stays in ``warnings``."""
    flops, attempts = model_flops(model, batch), 0
    while True:
        attempts += 1
        windows, results, load = run_schedule(model, batch, max_procs, rounds, window_s)
        rates, spread = busy_rates(flops, windows, results)
        problems = _problems(rates, spread)
        if not problems or attempts == 2:
            break
    return {"model_gflops": flops / 1e9, "concurrent_gflops": rates,
            "concurrent_spread": spread, "attempts": attempts, "load": load,
            "warnings": problems}


def corun_factors(rates: dict[int, float], cores: int) -> list[float]:
    """Per k: the rate with k busy over what sharing ``cores`` predicts from 1 busy."""
    return [rates[k] / (rates[1] * min(1.0, cores / k)) for k in sorted(rates)]


RUNTIME_RUNS = 3  # loopback ping-pongs; the median of their runtime overheads counts


def runtime_overhead_us(loopback: list[MessageCosts]) -> float:
    """What the real runs' runtime (driver loop, GLOO transport) adds to each end of a
    small message beyond plain send/recv: the median over the loopback ping-pongs."""
    return statistics.median(max(0.0, (c.runtime_cpu_s or 0.0) - c.cpu_s[RUNTIME_BYTES]) * 1e6
                             for c in loopback)


def profile_host(model: str, batch: int = 1, max_procs: int = 3, window_s: float = 3.0,
                 rounds: int = 3) -> dict[str, Any]:
    """Everything ``validate`` needs about this host, as a plain dict (YAML-ready): the
    k-busy rates on ``model``'s forward, the operator table, GLOO's message cost."""
    busy = measure_busy_rates(model, batch, max_procs, rounds, window_s)
    table, table_spread = measure_operator_table(
        f"prismsim profile-device {time.strftime('%Y-%m-%d %H:%M:%S')}, one torch thread",
        rounds=rounds)
    if table_spread > SPREAD_LIMIT:
        busy["warnings"].append(f"operator table: passes spread {100 * table_spread:.0f} % "
                                f"(median over operators)")
    wake = wake_penalties()
    loopback = [loopback_message_costs() for _ in range(RUNTIME_RUNS)]
    one_way = loopback[0].wall_s
    fixed_s, per_byte_s = fit_message_cost(one_way)
    cores = os.cpu_count() or 1
    return {
        "model": model, "batch": batch, "cores": cores, **busy,
        "corun": corun_factors(busy["concurrent_gflops"], cores),
        "gloo_one_way_us": {k: v * 1e6 for k, v in one_way.items()},
        "gloo_fixed_us": fixed_s * 1e6, "gloo_loopback_gbps": 8e-9 / per_byte_s
        if per_byte_s else None,
        "operators": table.model_dump(mode="json"), "operators_spread": table_spread,
        "wake_us_by_idle_ms": wake, "runtime_overhead_us": runtime_overhead_us(loopback),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def save_profile(profile: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(profile, sort_keys=False))


def catalog_entries(profile: dict[str, Any]) -> dict[str, Any]:
    """The profile as catalog entries (``devices:``, ``links:``) that ``--catalog`` and a
    scenario's ``catalog:`` accept: this host with k processes busy (FLOP rate on the
    profiled model's shapes), this host by its operator table (any shapes), and GLOO
    on loopback."""
    when = profile["measured_at"]
    devices = {
        f"host-measured-{k}-busy": {
            "source": f"prismsim profile-device {when}: {profile['model']} batch "
                      f"{profile['batch']}, one torch thread, {k} process(es) computing at once",
            "peak_gflops": round(float(rate), 3), "efficiency": 1.0}
        for k, rate in profile["concurrent_gflops"].items()}
    if "operators" in profile:
        devices["host-operators"] = {
            "source": f"prismsim profile-device {when}: operator table, one torch thread",
            "peak_gflops": round(float(profile["concurrent_gflops"][1]), 3),
            "efficiency": 1.0, "operators": profile["operators"]}
    link = {"source": f"prismsim profile-device {when}: GLOO ping-pong on loopback",
            "medium": "switched", "latency_ms": round(profile["gloo_fixed_us"] / 1e3, 4),
            "bandwidth_mbps": round((profile["gloo_loopback_gbps"] or 1e3) * 1e3, 1),
            "rendezvous": True}
    return {"devices": devices, "links": {"host-loopback-gloo": link}}
