"""Serving under load, measured against predicted (``prismsim validate FILE --load``):
a seeded Poisson trace replayed against the GLOO processes in the testbed (the master
queues the requests and serves them in turn; the same per-device programs run them),
and the same trace served by the simulator from the held-out prediction of
``predict.py`` (operator table, host model, the measured link: nothing of the strategy
timed). Loads are set relative to each configuration's predicted idle latency L:
``load_factors`` x 1 / L requests a second, below, near and above the knee.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from prismsim.profiling.gauge import gauge_s
from prismsim.profiling.hoststat import CpuTimes, stolen_share_since
from prismsim.profiling.message_costs import testbed_message_costs
from prismsim.serve.arrivals import arrivals_s
from prismsim.serve.engine import ServingSetup, serve
from prismsim.serve.stats import latency_figures, request_table
from prismsim.sim import simulate
from prismsim.testbed.network import Testbed
from prismsim.testbed.runner import RealConfig, run_configs
from prismsim.validation import predict

FIGURES = ("throughput_per_s", "latency_p50_s", "latency_p99_s")
KEY = ("strategy", "options", "devices", "bandwidth_mbps", "latency_ms", "load_factor")


def _measured(records: list[dict], warmup: int) -> dict[str, Any]:
    df = pd.DataFrame(records).sort_values("request")
    df["latency_s"] = df["finish_s"] - df["arrival_s"]
    df["warmup"], df["dropped"] = df["request"] < warmup, False
    return latency_figures(df)


def _rows_of_point(spec: Any, tb: Testbed, profile: dict[str, Any], cfg: RealConfig,
                   bw: float, lat: float, done: set[tuple], requests: list[pd.DataFrame]
                   ) -> list[dict[str, Any]]:
    """Every load of one configuration at one network point (those not done before);
    each load's requests are added to ``requests``."""
    load, costs = spec.load, testbed_message_costs(tb)
    host, link = predict.host_spec(profile, costs), predict.measured_link(bw, costs)
    wl = predict.workload(spec.model, cfg.strategy, cfg.options, tb.n_devices, spec.batch)
    table, gflops = predict.operator_table(profile), profile["concurrent_gflops"][1]
    idle_s = simulate(wl, predict.table_device(table, gauge_s(), gflops), link,
                      host=host).latency_s
    rows = []
    for factor in load.load_factors:
        base = {"strategy": cfg.strategy, "options": _options(cfg), "devices": tb.n_devices,
                "bandwidth_mbps": bw, "latency_ms": lat, "load_factor": factor}
        if tuple(base[k] for k in KEY) in done:  # type: ignore[index]
            continue
        times = arrivals_s("poisson", factor / idle_s, load.requests, load.seed)
        cpu0 = CpuTimes.now()
        records = run_configs(tb, spec.model, [cfg], batch=spec.batch, warmup=spec.warmup,
                              arrivals_s=[float(t) for t in times])
        base["stolen_cpu_pct"] = 100 * stolen_share_since(cpu0)  # other machines' share
        device = predict.table_device(table, records[0]["gauge_s"], gflops)
        result = serve(ServingSetup({1: wl}), times, device, link, host)
        rows.append(_row(base, 1 / idle_s * factor, _measured(records, load.warmup),
                         _figures(result, load.warmup)))
        requests.append(_request_rows(base, records, result))
    return rows


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


def _options(cfg: RealConfig) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(cfg.options.items()))


def _row(base: dict[str, Any], rate: float, measured: dict[str, Any],
         predicted: dict[str, Any]) -> dict[str, Any]:
    row = {**base, "rate_per_s": rate}
    for f in FIGURES:
        row[f"measured_{f}"], row[f"predicted_{f}"] = measured[f], predicted[f]
        row[f"{f}_error_pct"] = 100 * (predicted[f] / measured[f] - 1)
    return row


def run_load_validation(spec: Any, out_dir: Path, profile: dict[str, Any],
                        configs: list[RealConfig], progress: Any = None) -> pd.DataFrame:
    """Every configuration at every load, device count and network point of ``spec``;
    ``validation_load.csv`` (and each request's times, ``validation_load_requests.csv``)
    are written after each point and read back by a later call."""
    path, per_request = out_dir / "validation_load.csv", out_dir / "validation_load_requests.csv"
    rows = pd.read_csv(path).to_dict("records") if path.exists() else []
    requests = [pd.read_csv(per_request)] if rows and per_request.exists() else []
    done = {tuple(r[k] for k in KEY) for r in rows}
    for devices in spec.devices:
        with Testbed(devices, spec.bandwidth_mbps[0] * 1e6) as tb:
            for bw in spec.bandwidth_mbps:
                for lat in spec.latency_ms:
                    tb.shape(bw * 1e6, lat / 1e3)
                    for cfg in configs:
                        rows += _rows_of_point(spec, tb, profile, cfg, bw, lat, done,
                                               requests)
                        _save(path, rows)
                        pd.concat(requests).to_csv(per_request, index=False)
                        if progress:
                            progress(f"{cfg.strategy} P={devices} {bw:g} Mbit/s {lat:g} ms")
    return _save(path, rows)


def _save(path: Path, rows: list[dict]) -> pd.DataFrame:
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_csv(path, index=False)
    return df


def count_points(spec: Any, configs: list[RealConfig]) -> int:
    return (len(spec.devices) * len(spec.bandwidth_mbps) * len(spec.latency_ms)
            * len(configs))
