"""Serving under load, measured against predicted (``prismsim validate FILE --load``):
a seeded Poisson trace replayed against the GLOO processes in the testbed (the master
queues the requests and serves them in turn; the same per-device programs run them),
and the same trace served by the simulator from the held-out prediction of
``predict.py`` (operator table, host model, the measured link: nothing of the strategy
timed). Offered loads are set relative to each configuration's predicted idle latency
L: ``load_factors`` x 1 / L requests a second, below, near and above the knee. Each
load is served ``repeats`` times on the same trace, so the measurement's own spread is
known; the prediction serves it in PREDICTED_WORLDS worlds drawn from what was measured
of how the host and the link move (``tails.varying``: the profile's speed variability,
the ping-pong's delays), its figures their mean: a queue's tail grows with the spread
of its service times, which one world at the mean times would not have.

Run again on the same folder, it goes on: the points (configuration and network point)
whose every offered load has its row are skipped before anything is built or measured.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from prismsim.profiling.gauge import gauge_s
from prismsim.profiling.host_profile import HostProfile
from prismsim.profiling.hoststat import CpuTimes, stolen_share_since
from prismsim.profiling.message_costs import testbed_message_costs
from prismsim.serve.arrivals import arrivals_s
from prismsim.serve.engine import serve
from prismsim.serve.requests import ServingSetup
from prismsim.serve.stats import latency_figures, request_table
from prismsim.sim import simulate
from prismsim.testbed.network import Testbed
from prismsim.testbed.runner import RealConfig, run_configs
from prismsim.validation import predict
from prismsim.validation.file import OfferedLoadSection, ValidationFile
from prismsim.validation.report import error_pct, options_text
from prismsim.validation.tails import varying

FIGURES = ("throughput_per_s", "latency_p50_s", "latency_p99_s")
LOAD = ("strategy", "options", "devices", "bandwidth_mbps", "latency_ms", "load_factor")
KEY = (*LOAD, "repeat")  # one row: a load served once
PREDICTED_WORLDS = 5  # seeded worlds whose figures the prediction of a load averages
P99_LIMIT_PCT = 20.0  # a predicted p99 this close to the measured one counts as met
THROUGHPUT_LIMIT_PCT = 5.0  # and a predicted throughput this close


@dataclass(frozen=True)
class PendingPoint:
    """One configuration at one network point, with the runs it still lacks: (offered
    load as a factor of 1 / its predicted idle latency, repeat)."""

    config: RealConfig
    devices: int
    bandwidth_mbps: float
    latency_ms: float
    loads: tuple[tuple[float, int], ...]

    def row_base(self, factor: float, repeat: int) -> dict[str, Any]:
        """The columns that name one of its rows (``KEY``)."""
        return {"strategy": self.config.strategy, "options": options_text(self.config.options),
                "devices": self.devices, "bandwidth_mbps": self.bandwidth_mbps,
                "latency_ms": self.latency_ms, "load_factor": factor, "repeat": repeat}


def offered_load(validation: ValidationFile) -> OfferedLoadSection:
    """The file's ``offered_load:`` section, which ``--load`` needs."""
    if validation.offered_load is None:
        raise ValueError("validate --load needs an offered_load: section")
    return validation.offered_load


def pending_points(validation: ValidationFile, configs: list[RealConfig], done: set[tuple]
                   ) -> list[PendingPoint]:
    """Every point of the grid (repeat, device count, bandwidth, latency, configuration,
    in the order they are run: a load's repeats lie a whole grid apart) with an offered
    load whose row (``KEY``) is not in ``done``."""
    section, out = offered_load(validation), []
    for repeat, devices, bw, lat, cfg in itertools.product(
            range(section.repeats), validation.devices, validation.bandwidth_mbps,
            validation.latency_ms, configs):
        point = PendingPoint(cfg, devices, bw, lat, ())
        loads = tuple((f, repeat) for f in section.load_factors
                      if tuple(point.row_base(f, repeat)[k] for k in KEY) not in done)
        if loads:
            out.append(PendingPoint(cfg, devices, bw, lat, loads))
    return out


def _measured(records: list[dict], warmup: int) -> dict[str, Any]:
    df = pd.DataFrame(records).sort_values("request")
    df["latency_s"] = df["finish_s"] - df["arrival_s"]
    df["warmup"], df["dropped"] = df["request"] < warmup, False
    return latency_figures(df)


def _run_point(validation: ValidationFile, tb: Testbed, profile: HostProfile,
               point: PendingPoint) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
    """The runs ``point`` lacks, each served for real and predicted: their rows and
    each one's requests."""
    offered, cfg = offered_load(validation), point.config
    costs = testbed_message_costs(tb)
    host, link = predict.host_spec(profile, costs, validation.shares(tb.n_devices)), \
        predict.measured_link(point.bandwidth_mbps, costs)
    wl = predict.workload(validation.model, cfg.strategy, cfg.options, tb.n_devices,
                          validation.batch)
    table, gflops = predict.operator_table(profile), profile.concurrent_gflops[1]
    idle_s = simulate(wl, predict.table_device(table, gauge_s(), gflops), link,
                      host=host).latency_s
    rows, requests = [], []
    for factor, repeat in point.loads:
        base = point.row_base(factor, repeat)
        times = arrivals_s("poisson", factor / idle_s, offered.requests, offered.seed)
        cpu0 = CpuTimes.now()
        records = run_configs(tb, validation.model, [cfg], batch=validation.batch,
                              cpu_share=validation.shares(tb.n_devices),
                              warmup=validation.warmup, arrivals_s=[float(t) for t in times])
        base["stolen_cpu_pct"] = 100 * stolen_share_since(cpu0)  # other machines' share
        # the host's speed over the stream: the median of the master's idle readings
        device = predict.table_device(table, predict.round_gauge_s(records), gflops)
        predicted, result = _predicted(wl, times, (device, link, host), (profile, costs),
                                       offered)
        rows.append(_row(base, 1 / idle_s * factor, _measured(records, offered.warmup),
                         predicted))
        requests.append(_request_rows(base, records, result))
    return rows, requests


def _predicted(wl: Any, times: Any, specs: tuple[Any, Any, Any],
               measured: tuple[HostProfile, Any], offered: OfferedLoadSection
               ) -> tuple[dict[str, float], Any]:
    """The figures of the trace served in PREDICTED_WORLDS seeded worlds (one at the mean
    times where nothing was measured of how things move), each their mean; and the
    first world's result."""
    device, link, host = specs
    worlds = varying(device, link, *measured)
    seeds = range(offered.seed, offered.seed + PREDICTED_WORLDS) if worlds else (None,)
    device, link = worlds or (device, link)
    results = [serve(ServingSetup({1: wl}, seed=seed), times, device, link, host)
               for seed in seeds]
    figures = [_figures(r, offered.warmup) for r in results]
    return {f: float(np.mean([fig[f] for fig in figures])) for f in FIGURES}, results[0]


def _request_rows(base: dict[str, Any], records: list[dict], result: Any) -> pd.DataFrame:
    """Each request's measured and predicted start and finish, beside its arrival."""
    measured = pd.DataFrame(records).sort_values("request").reset_index(drop=True)
    return pd.DataFrame({
        **base, "request": measured["request"], "arrival_s": measured["arrival_s"],
        "measured_start_s": measured["start_s"], "measured_finish_s": measured["finish_s"],
        "predicted_start_s": [r.start_s for r in result.requests],
        "predicted_finish_s": [r.finish_s for r in result.requests]})


def _figures(result: Any, warmup: int) -> dict[str, Any]:
    return latency_figures(request_table(result, warmup))


def _row(base: dict[str, Any], rate: float, measured: dict[str, Any],
         predicted: dict[str, Any]) -> dict[str, Any]:
    row = {**base, "rate_per_s": rate}
    for f in FIGURES:
        row[f"measured_{f}"], row[f"predicted_{f}"] = measured[f], predicted[f]
        row[f"{f}_error_pct"] = error_pct(predicted[f], measured[f])
    return row


def run_load_validation(validation: ValidationFile, out_dir: Path, profile: HostProfile,
                        configs: list[RealConfig], progress: Any = None) -> pd.DataFrame:
    """Every configuration at every offered load, device count and network point of
    ``validation``; ``validation_load.csv`` (and each request's times,
    ``validation_load_requests.csv``) are written after each point and read back by a
    later call, which runs only what they lack (a device count with nothing left builds
    no testbed)."""
    path, per_request = out_dir / "validation_load.csv", out_dir / "validation_load_requests.csv"
    rows, requests = _earlier(path, per_request)
    todo = pending_points(validation, configs, {tuple(r[k] for k in KEY) for r in rows})
    for devices, points in itertools.groupby(todo, key=lambda p: p.devices):
        predict.require_current_gauge(profile)
        mine = list(points)
        with Testbed(devices, mine[0].bandwidth_mbps * 1e6) as tb:
            for point in mine:
                if (tb.rate_bits_per_s, tb.delay_s) != (point.bandwidth_mbps * 1e6,
                                                        point.latency_ms / 1e3):
                    tb.shape(point.bandwidth_mbps * 1e6, point.latency_ms / 1e3)
                new, new_requests = _run_point(validation, tb, profile, point)
                rows, requests = rows + new, requests + new_requests
                _save(path, per_request, rows, requests)
                if progress:
                    progress(f"{point.config.strategy} P={devices} "
                             f"{point.bandwidth_mbps:g} Mbit/s {point.latency_ms:g} ms")
    return _save(path, per_request, rows, requests)


def _earlier(path: Path, per_request: Path) -> tuple[list[dict], list[pd.DataFrame]]:
    """The rows and requests of an earlier run of this folder, their options in the
    validation tables' text (folders written before it was shared held "cr=4")."""
    if not path.exists():
        return [], []
    table = _with_options_text(pd.read_csv(path))
    if "repeat" not in table:  # written before loads were repeated: each served once
        table["repeat"] = 0
    rows = table.to_dict("records")
    requests = [_with_options_text(pd.read_csv(per_request))] if (
        rows and per_request.exists()) else []
    for earlier in requests:
        if "repeat" not in earlier:
            earlier["repeat"] = 0
    return rows, requests  # type: ignore[return-value]


def _with_options_text(table: pd.DataFrame) -> pd.DataFrame:
    if "options" in table:
        table["options"] = [options_text(_options_of(v)) for v in table["options"]]
    return table


def _options_of(text: Any) -> dict[str, Any]:
    """Options from their text: YAML flow ("{cr: 4}") or the earlier "cr=4,exchange=ring"
    (none: "" or a missing value)."""
    if not isinstance(text, str) or not text.strip():
        return {}
    if text.lstrip().startswith("{"):
        return yaml.safe_load(text) or {}
    return {k: yaml.safe_load(v) for k, v in (part.split("=", 1) for part in text.split(","))}


def _save(path: Path, per_request: Path, rows: list[dict], requests: list[pd.DataFrame]
          ) -> pd.DataFrame:
    """Both tables written; the rows' returned."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_csv(path, index=False)
    if requests:
        pd.concat(requests).to_csv(per_request, index=False)
    return df


def load_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Each offered load over its repeats: the measured figures' median, lowest and
    highest, the predicted ones' mean, and the prediction's error against the median."""
    out = []
    for key, runs in table.groupby(list(LOAD), sort=False):
        row = {**dict(zip(LOAD, key, strict=True)), "repeats": len(runs),
               "stolen_cpu_max_pct": runs["stolen_cpu_pct"].max()}
        for f in FIGURES:
            measured = runs[f"measured_{f}"]
            row |= {f"measured_{f}": measured.median(), f"measured_{f}_low": measured.min(),
                    f"measured_{f}_high": measured.max(),
                    f"predicted_{f}": runs[f"predicted_{f}"].mean()}
            row[f"{f}_error_pct"] = error_pct(row[f"predicted_{f}"], row[f"measured_{f}"])
        out.append(row)
    return pd.DataFrame(out)


def summary_lines(summary: pd.DataFrame) -> list[str]:
    """How close the predicted p99 and throughput are below the knee (load factor < 1):
    against the measured median (P99_LIMIT_PCT, THROUGHPUT_LIMIT_PCT), and how many lie
    inside the repeats' measured range widened by 5 % on each side."""
    below, lines = summary[summary["load_factor"] < 1], []
    fewest, most = below["repeats"].min(), below["repeats"].max()
    runs = f"{fewest}" if fewest == most else f"{fewest}-{most}"
    for f, limit in (("latency_p99_s", P99_LIMIT_PCT), ("throughput_per_s",
                                                        THROUGHPUT_LIMIT_PCT)):
        err = below[f"{f}_error_pct"].abs()
        inside = below[f"predicted_{f}"].between(below[f"measured_{f}_low"] / 1.05,
                                                 below[f"measured_{f}_high"] * 1.05)
        lines.append(f"{f} below the knee: mean |error| {err.mean():.1f} % against the "
                     f"median of {runs} runs, "
                     f"{int((err <= limit).sum())} of {len(err)} within {limit:g} %; "
                     f"{int(inside.sum())} inside the runs' range widened by 5 %")
    return lines


def count_points(validation: ValidationFile, configs: list[RealConfig]) -> int:
    """Configurations at network points, once a repeat (each served at every offered
    load)."""
    return (len(validation.devices) * len(validation.bandwidth_mbps)
            * len(validation.latency_ms) * len(configs) * offered_load(validation).repeats)
