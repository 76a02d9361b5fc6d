"""Calibration of this host: how fast one torch thread runs a model's forward while k
such processes compute at once (``busy_rates``: interleaved windows, spread checked),
the operator table (``operators``), what waking after a wait costs (``wake``) and the
cost of one GLOO message (``message_costs`` on loopback).

``prismsim profile-device`` writes the result, a :class:`HostProfile`, as YAML
(``save_profile``) that ``prismsim validate`` reads back (``load_profile``); its catalog
entries (``catalog_entries``) are what a scenario's device catalog takes.
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_serializer

from prismsim.cost.op_table import OperatorTable
from prismsim.executors.trace import trace_workload
from prismsim.profiling.busy_rates import busy_rates, run_schedule
from prismsim.profiling.message_costs import (
    DELAY_BYTES,
    DELAY_REPS,
    RUNTIME_BYTES,
    MessageCosts,
    fit_message_cost,
    loopback_message_costs,
)
from prismsim.profiling.operators import measure_operator_table
from prismsim.profiling.speed_variability import WINDOW_S, measure_speed_variability
from prismsim.profiling.wake import wake_penalties
from prismsim.sim.variability import SpeedVariability
from prismsim.userfiles import UserFileError, load_model_file


class HostLoad(BaseModel):
    """What else kept the host busy while it was measured."""

    model_config = ConfigDict(extra="allow", frozen=True)
    load_average_before: float  # the 1-minute load average as measuring began ...
    load_average_after: float  # ... and as it ended
    cpu_stolen_share: float  # of the host's CPU time, taken by other virtual machines


class HostProfile(BaseModel):
    """What ``prismsim profile-device`` measured of this host, as its profile file holds
    it. A file written by an older version may lack a field (it reads as the default the
    prediction used then) or hold keys no longer written (kept, and written back)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    model: str | None = None  # the model whose forward the k-busy rates time
    batch: int | None = None  # inputs of that forward
    cores: int | None = None  # the host's CPUs (None: those of the host reading it)
    model_gflops: float | None = None  # that forward's GFLOP (fvcore)
    # k processes computing at once -> GFLOP/s of each (the median window)
    concurrent_gflops: dict[int, PositiveFloat] = Field(min_length=1)
    # k -> the spread of its windows (slowest over fastest, less 1)
    concurrent_spread: dict[int, float] = Field(default_factory=dict)
    attempts: int = 1  # measurements of the k-busy rates (2: the first was not trusted)
    load: HostLoad | None = None  # what else ran meanwhile
    warnings: list[str] = Field(default_factory=list)  # why the kept one may not be trusted
    # per k = 1, 2, ...: the rate with k busy over what sharing the cores predicts
    corun: list[float] = Field(default_factory=list)
    gloo_one_way_us: dict[int, float] = Field(default_factory=dict)  # loopback, by bytes
    gloo_fixed_us: float = Field(ge=0)  # fixed cost of one GLOO message (least squares)
    gloo_loopback_gbps: float | None = None  # its rate, Gbit/s (None: no per-byte cost)
    operators: OperatorTable | None = None  # the operator table (None: an older profile)
    operators_spread: float | None = None  # the table's passes: median spread
    # [idle ms, extra us]: what the first compute step after a wait that long costs
    wake_us_by_idle_ms: list[tuple[float, float]] = Field(default_factory=list)
    # CPU the real runs' runtime adds to each end of a small message beyond send/recv
    runtime_overhead_us: float = 0.0
    measured_at: str | None = None  # local time, "YYYY-MM-DD HH:MM:SS"
    # how its speed moves: the probe stack timed back to back (None: an older profile)
    speed_variability: SpeedVariability | None = None
    # GLOO on loopback: a small message's one-way delay beyond the least, [q, us] pairs
    # (message_costs.delay_quantiles_us; empty: an older profile)
    gloo_delay_us: list[tuple[float, float]] = Field(default_factory=list)

    @field_serializer("operators", "speed_variability")
    def _as_written(self, part: BaseModel | None) -> dict[str, Any] | None:
        """The table or distribution whole, as plain YAML values (as it was measured)."""
        return None if part is None else part.model_dump(mode="json")


class ProfileFileError(UserFileError):
    """A profile file that cannot be used; names the file and the key."""


def load_profile(path: Path) -> HostProfile:
    """A saved profile, checked: a damaged or foreign file is one error naming it (and
    the key)."""
    return load_model_file(path, HostProfile, "profile fields", ProfileFileError)


def write_yaml(data: dict[str, Any], path: Path) -> None:
    """``data`` as YAML at ``path`` (its folder made), keys in their order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def save_profile(profile: HostProfile, path: Path) -> None:
    """``profile`` as ``load_profile`` reads it: the keys it was given, in field order."""
    write_yaml(profile.model_dump(exclude_unset=True), path)


def catalog_entries(profile: HostProfile) -> dict[str, Any]:
    """The profile as catalog entries (``devices:``, ``links:``) that ``--catalog`` and a
    scenario's ``catalog:`` accept: this host with k processes busy (FLOP rate on the
    profiled model's shapes), this host by its operator table (any shapes), and GLOO
    on loopback."""
    when = profile.measured_at
    devices = {
        f"host-measured-{k}-busy": {
            "source": f"prismsim profile-device {when}: {profile.model} batch "
                      f"{profile.batch}, one torch thread, {k} process(es) computing at once",
            "peak_gflops": round(float(rate), 3), "efficiency": 1.0}
        for k, rate in profile.concurrent_gflops.items()}
    if profile.operators is not None:
        devices["host-operators"] = {
            "source": f"prismsim profile-device {when}: operator table, one torch thread",
            "peak_gflops": round(float(profile.concurrent_gflops[1]), 3),
            "efficiency": 1.0, "operators": profile.operators.model_dump(mode="json")}
        if profile.speed_variability is not None:
            devices["host-operators"]["variability"] = \
                profile.speed_variability.model_dump(mode="json")
    link = {"source": f"prismsim profile-device {when}: GLOO ping-pong on loopback",
            "medium": "switched", "latency_ms": round(profile.gloo_fixed_us / 1e3, 4),
            "bandwidth_mbps": round((profile.gloo_loopback_gbps or 1e3) * 1e3, 1),
            "rendezvous": True}
    if profile.gloo_delay_us:
        link["variability"] = {
            "source": f"prismsim profile-device {when}: {DELAY_REPS} round trips of a "
                      f"{DELAY_BYTES}-byte GLOO message on loopback, each one's excess over "
                      f"the fastest halved",
            "delay_us": [list(pair) for pair in profile.gloo_delay_us]}
    return {"devices": devices, "links": {"host-loopback-gloo": link}}


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
    """The k-busy rates (``HostProfile``'s fields of that name), measured again once if
    the first measurement is not to be trusted; what was wrong with the kept one stays in
    ``warnings``."""
    flops, attempts = model_flops(model, batch), 0
    while True:
        attempts += 1
        windows, results, host_load = run_schedule(model, batch, max_procs, rounds, window_s)
        rates, spread = busy_rates(flops, windows, results)
        problems = _problems(rates, spread)
        if not problems or attempts == 2:
            break
    return {"model_gflops": flops / 1e9, "concurrent_gflops": rates,
            "concurrent_spread": spread, "attempts": attempts, "load": host_load,
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


def _loopback_fields() -> dict[str, Any]:
    """GLOO on loopback (``HostProfile``'s ``gloo_*`` and ``runtime_overhead_us``)."""
    loopback = [loopback_message_costs() for _ in range(RUNTIME_RUNS)]
    one_way_s = loopback[0].wall_s
    fixed_s, per_byte_s = fit_message_cost(one_way_s)
    return {"gloo_one_way_us": {k: v * 1e6 for k, v in one_way_s.items()},
            "gloo_fixed_us": fixed_s * 1e6,
            "gloo_loopback_gbps": 8e-9 / per_byte_s if per_byte_s else None,
            "runtime_overhead_us": runtime_overhead_us(loopback),
            # the least disturbed of the ping-pongs' delay distributions
            "gloo_delay_us": functools.reduce(MessageCosts.least, loopback).delay_us}


def profile_host(model: str, batch: int = 1, max_procs: int = 3, window_s: float = 3.0,
                 rounds: int = 3, variability_s: float = WINDOW_S) -> HostProfile:
    """Everything ``validate`` needs about this host: the k-busy rates on ``model``'s
    forward, the operator table, what waking costs, GLOO's message cost; and how its
    speed moves, timed for ``variability_s`` (0: not measured)."""
    busy = measure_busy_rates(model, batch, max_procs, rounds, window_s)
    table, table_spread = measure_operator_table(
        f"prismsim profile-device {time.strftime('%Y-%m-%d %H:%M:%S')}, one torch thread",
        rounds=rounds)
    if table_spread > SPREAD_LIMIT:
        busy["warnings"].append(f"operator table: passes spread {100 * table_spread:.0f} % "
                                f"(median over operators)")
    wake = wake_penalties()
    gloo = _loopback_fields()
    cores = os.cpu_count() or 1
    return HostProfile(
        model=model, batch=batch, cores=cores, **busy,
        corun=corun_factors(busy["concurrent_gflops"], cores),
        gloo_one_way_us=gloo["gloo_one_way_us"], gloo_fixed_us=gloo["gloo_fixed_us"],
        gloo_loopback_gbps=gloo["gloo_loopback_gbps"], operators=table,
        operators_spread=table_spread, wake_us_by_idle_ms=wake,
        runtime_overhead_us=gloo["runtime_overhead_us"], gloo_delay_us=gloo["gloo_delay_us"],
        measured_at=time.strftime("%Y-%m-%d %H:%M:%S"),
        speed_variability=measure_speed_variability(variability_s) if variability_s else None)
