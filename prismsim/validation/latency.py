"""Measured against simulated: run a grid of strategies for real in the testbed, simulate
the same points with this host's measured profile, and report each error and the MAPE.

A validation file (YAML) names the model, the strategies, the device counts and the
network grid; see ``scenarios/validate_vit_tiny.yaml``.
"""

from __future__ import annotations

import functools
import json
import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from prismsim.profiling.gauge import gauge_s
from prismsim.profiling.host_profile import HostProfile, load_profile, profile_host, save_profile
from prismsim.profiling.hoststat import CpuTimes, stolen_share_since
from prismsim.profiling.message_costs import MessageCosts, testbed_message_costs
from prismsim.profiling.step_times import step_seconds
from prismsim.testbed.network import GOODPUT, Testbed
from prismsim.testbed.runner import RealConfig, run_configs
from prismsim.validation import predict
from prismsim.validation.file import ValidationFile, ValidationFileError
from prismsim.validation.report import POINT, error_pct, options_text
from prismsim.validation.tails import TAIL_RUNS, measured_tail_ms, predicted_tail_ms
from prismsim.validation.tokens import measured_tokens, token_columns

STOLEN_LIMIT = 0.05  # a group run while other machines took more of the CPU is run again
MAX_ATTEMPTS = 3  # ... at most this many times in all


def _configs(validation: ValidationFile) -> list[RealConfig]:
    return [RealConfig("single", devices=1)] + [RealConfig(s.strategy, s.options)
                                                for s in validation.strategies]


def _layer_ends(steps: list[list]) -> dict[int, float]:
    """When the device finished each layer's last compute step: steps are (label, layer,
    start, end)."""
    ends: dict[int, float] = {}
    for _, layer, _, end in steps:
        if layer is not None:
            ends[layer] = max(ends.get(layer, 0.0), end)
    return ends


def summarize_measured(records: list[dict], config: int) -> dict[str, Any]:
    """The master's median latency (and spread, CPU time, per-layer ends) of one config."""
    mine = [r for r in records if r["config"] == config and r["device"] == 0]
    walls = [r["wall_s"] for r in mine]
    layers = [_layer_ends(r["steps"]) for r in mine]
    return {"measured_ms": statistics.median(walls) * 1e3, "measured_min_ms": min(walls) * 1e3,
            "measured_max_ms": max(walls) * 1e3, "measured_p95_ms": measured_tail_ms(walls),
            "cpu_ms": statistics.median(r["cpu_s"] for r in mine) * 1e3,
            "max_abs_error": max(r.get("max_abs_error", 0.0) for r in mine),
            "layer_ms": {k: statistics.median(lay[k] for lay in layers) * 1e3
                         for k in layers[0]}}


def _steps(validation: ValidationFile, cfg: RealConfig, n_dev: int
           ) -> tuple[list[list[float]], float]:
    """This config's compute steps timed in isolation (once per process), and the
    gauge read around the timing."""
    return _timed_steps(validation.model, cfg.strategy, n_dev, validation.batch,
                        json.dumps(cfg.options, sort_keys=True), validation.decode_pair())


@functools.cache
def _timed_steps(model: str, strategy: str, n_dev: int, batch: int, options: str,
                 decode: tuple[int, int] | None) -> tuple[list[list[float]], float]:
    before = gauge_s()
    seconds = step_seconds(model, strategy, n_dev, batch, decode=decode,
                           **json.loads(options))
    return seconds, (before + gauge_s()) / 2


COLUMNS = ("predicted", "predicted_nominal", "simulated")  # <name>_ms, <name>_error_pct


def _row(cfg: RealConfig, devices: int, bw: float, lat: float, measured: dict,
         outs: dict[str, dict]) -> dict[str, Any]:
    row = {"strategy": cfg.strategy, "options": options_text(cfg.options),
           "devices": cfg.devices or devices, "group": devices, "bandwidth_mbps": bw,
           "latency_ms": lat, **{k: v for k, v in measured.items() if k != "layer_ms"}}
    for name, out in outs.items():
        row[f"{name}_ms"] = out["ms"]
        row[f"{name}_error_pct"] = error_pct(out["ms"], measured["measured_ms"])
    if "measured_tpot_ms" in measured:
        row.update(token_columns(measured, outs))
    _tail_columns(row, outs)
    return row


def _layer_rows(base: dict[str, Any], measured: dict, outs: dict[str, dict]) -> list[dict]:
    return [{**base, "layer": k, "measured_ms": measured["layer_ms"][k],
             **{f"{name}_ms": out["layer_ms"].get(k) for name, out in outs.items()}}
            for k in measured["layer_ms"]]


def _predictions(validation: ValidationFile, strategy: str, options: dict[str, Any],
                 devices: int, profile: HostProfile, costs: MessageCosts, gauge: float,
                 bw: float, lat: float) -> dict[str, dict]:
    """The held-out predictions of one point: with the link as measured and as set."""
    wl = predict.workload(validation.model, strategy, options, devices, validation.batch,
                          validation.decode_pair())
    device = predict.table_device(predict.operator_table(profile), gauge,
                                  profile.concurrent_gflops[1])
    host, link = predict.host_spec(profile, costs, validation.shares(devices)), \
        predict.measured_link(bw, costs)
    out = {"predicted": predict.predict_point(wl, device, host, link),
           "predicted_nominal": predict.predict_point(wl, device, host,
                                                      predict.nominal_link(bw, lat))}
    if validation.runs >= TAIL_RUNS and not validation.decode:  # enough rounds to judge
        out["predicted"]["p95_ms"] = predicted_tail_ms(wl, device, host, link, profile, costs)
    return out


def _tail_columns(row: dict[str, Any], outs: dict[str, dict]) -> None:
    """The predicted p95 and its error against the measured, where it was predicted."""
    tail_ms = outs["predicted"].get("p95_ms")
    if tail_ms is not None and pd.notna(row.get("measured_p95_ms")):
        row["predicted_p95_ms"] = tail_ms
        row["p95_error_pct"] = error_pct(tail_ms, row["measured_p95_ms"])


def _simulated(validation: ValidationFile, cfg: RealConfig, devices: int,
               profile: HostProfile, costs: MessageCosts, gauge: float, bw: float
               ) -> dict[str, Any]:
    """The twin from the config's own timed steps (scaled by the gauge), the same host
    and measured link: not held out; it shows what the compute model adds to the error."""
    seconds, timed_gauge = _steps(validation, cfg, devices)
    wl = predict.workload(validation.model, cfg.strategy, cfg.options, devices,
                          validation.batch, validation.decode_pair())
    timed_wl, device = predict.timed_steps(wl, seconds, gauge / timed_gauge)
    return predict.predict_point(timed_wl, device,
                                 predict.host_spec(profile, costs, validation.shares(devices)),
                                 predict.measured_link(bw, costs))


def count_groups(validation: ValidationFile) -> int:
    """Testbed runs: one per device count, bandwidth and latency."""
    return len(validation.devices) * len(validation.bandwidth_mbps) * len(validation.latency_ms)


def _earlier(out_dir: Path, fresh: bool) -> tuple[list[dict], list[dict]]:
    """Rows of an interrupted run of this folder, to go on from."""
    paths = out_dir / "validation.csv", out_dir / "validation_layers.csv"
    if fresh or not all(p.exists() and p.stat().st_size for p in paths):
        return [], []
    return [pd.read_csv(p).to_dict("records") for p in paths]  # type: ignore[return-value]


def profile_for(validation: ValidationFile, out_dir: Path, profile: HostProfile | None
                ) -> HostProfile:
    """The given profile, else the folder's, else one measured now; saved there."""
    saved = out_dir / "profile.yaml"
    if profile is None and saved.exists():
        profile = load_profile(saved)
    if profile is None:
        profile = profile_host(validation.model, validation.batch,
                               max_procs=max(validation.devices),
                               window_s=validation.profile_window_s,
                               rounds=validation.profile_rounds)
    save_profile(profile, saved)
    return profile


def run_validation(validation: ValidationFile, out_dir: Path,
                   profile: HostProfile | None = None, fresh: bool = False,
                   progress: Any = None, predict_only: bool = False
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every point of ``validation``: measured, predicted held-out and (unless
    ``predict_only``) simulated from the configs' own timed steps. Writes the CSVs after
    each testbed run, and goes on from them when run again on the same folder: a point
    (device count, bandwidth, latency) with rows is never run again, and a device count
    with all its points done builds no testbed."""
    profile = profile_for(validation, out_dir, profile)
    rows, layer_rows = _earlier(out_dir, fresh)
    done = {(r["group"], r["bandwidth_mbps"], r["latency_ms"]) for r in rows}
    configs = _configs(validation)
    for devices in validation.devices:
        todo = [(bw, lat) for bw in validation.bandwidth_mbps for lat in validation.latency_ms
                if (devices, bw, lat) not in done]
        if not todo:
            continue
        predict.require_current_gauge(profile)
        with Testbed(devices, todo[0][0] * 1e6) as tb:
            for bw, lat in todo:
                tb.shape(bw * 1e6, lat / 1e3)
                new, new_layers = _measure(validation, tb, configs, profile, bw, lat,
                                           predict_only)
                rows, layer_rows = rows + new, layer_rows + new_layers
                _save(out_dir, rows, layer_rows)
                if progress:
                    progress(new)
    return _save(out_dir, rows, layer_rows)


def _measure(validation: ValidationFile, tb: Testbed, configs: list[RealConfig],
             profile: HostProfile, bw: float, lat: float, predict_only: bool
             ) -> tuple[list[dict], list[dict]]:
    """One testbed run (every config interleaved, run again while the host was
    disturbed), its held-out predictions and (unless ``predict_only``) its twins from
    the configs' own timed steps."""
    before = testbed_message_costs(tb)
    records, stolen, attempts = _undisturbed_runs(validation, tb, configs)
    costs = before.least(testbed_message_costs(tb))  # a disturbed ping-pong does not count
    gauge = predict.round_gauge_s(records)
    host, link = predict.host_spec(profile, costs), predict.measured_link(bw, costs)
    reference_s = predict.operator_table(profile).reference_s or gauge
    rows, layer_rows = [], []
    for i, cfg in enumerate(configs):
        measured = summarize_measured(records, i)
        if validation.decode:
            measured.update(measured_tokens(records, i))
        n_dev = cfg.devices or tb.n_devices
        outs = _predictions(validation, cfg.strategy, cfg.options, n_dev, profile, costs,
                            gauge, bw, lat)
        if not predict_only:
            outs["simulated"] = _simulated(validation, cfg, n_dev, profile, costs, gauge, bw)
        rows.append({**_row(cfg, tb.n_devices, bw, lat, measured, outs),
                     "link_latency_ms": link.latency_ms, "message_cpu_us": host.message_cpu_us,
                     "network_cpu_ns_per_byte": host.network_cpu_ns_per_byte,
                     "stolen_cpu_pct": 100 * stolen, "attempts": attempts,
                     "stream_rate_share": _stream_share(costs, bw),
                     "gauge_speed": gauge / reference_s, "gauge_s": gauge,
                     "pingpong": costs.as_json()})  # to predict again later
        layer_rows += _layer_rows(_point(rows[-1]), measured, outs)
    return rows, layer_rows


def _stream_share(costs: MessageCosts, bw: float) -> float | None:
    """What the ping-pong's bulk stream carried each way, over the link's set payload
    rate (kept to show the testbed's own shortfall; the prediction does not use it)."""
    if costs.stream_bytes_per_s is None:
        return None
    return costs.stream_bytes_per_s * 8 / (bw * 1e6 * GOODPUT)


def _undisturbed_runs(validation: ValidationFile, tb: Testbed, configs: list[RealConfig]
                      ) -> tuple[list[dict], float, int]:
    """The group's interleaved rounds, run again (at most MAX_ATTEMPTS times in all)
    while other virtual machines took more than STOLEN_LIMIT of this host's CPU: the
    run with the least stolen time, its stolen share and the attempts made. The host's
    own reading decides, never the prediction's error."""
    tries: list[tuple[float, list[dict]]] = []
    while len(tries) < MAX_ATTEMPTS and (not tries or tries[-1][0] > STOLEN_LIMIT):
        cpu0 = CpuTimes.now()
        records = run_configs(tb, validation.model, configs, batch=validation.batch,
                              cpu_share=validation.shares(tb.n_devices),
                              warmup=validation.warmup, runs=validation.runs,
                              decode=validation.decode_pair())
        tries.append((stolen_share_since(cpu0), records))
    stolen, records = min(tries, key=lambda t: t[0])
    return records, stolen, len(tries)


def predict_again(validation: ValidationFile, out_dir: Path
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The held-out predictions of a finished (or interrupted) run, made again with the
    current model from what its rows kept (each group's ping-pong and gauge readings) and
    its profile: no testbed needed. Where the run had timed-step twins they are made
    again too (the steps timed now, scaled by each row's gauge)."""
    profile = load_profile(out_dir / "profile.yaml")
    table, layers = _earlier(out_dir, fresh=False)
    if not table or "pingpong" not in table[0]:
        raise ValidationFileError(f"{out_dir}: no rows with their ping-pong to predict from")
    by_point = {_key(row): _predict_row_again(validation, profile, row) for row in table}
    for lay in layers:
        for name, out in by_point[_key(lay)].items():
            lay[f"{name}_ms"] = out["layer_ms"].get(lay["layer"])
    return _save(out_dir, table, layers)


def _predict_row_again(validation: ValidationFile, profile: HostProfile, row: dict[str, Any]
                       ) -> dict[str, dict]:
    """One row of an earlier run predicted again: its prediction columns rewritten in
    place; the predictions (with their per-layer ends) returned."""
    options, costs = yaml.safe_load(row["options"]) or {}, MessageCosts.from_json(
        row["pingpong"])
    outs = _predictions(validation, row["strategy"], options, row["devices"], profile, costs,
                        row["gauge_s"], row["bandwidth_mbps"], row["latency_ms"])
    if pd.notna(row.get("simulated_ms")):
        config = RealConfig(row["strategy"], options, row["devices"])
        outs["simulated"] = _simulated(validation, config, row["devices"], profile, costs,
                                       row["gauge_s"], row["bandwidth_mbps"])
    for name, out in outs.items():
        row[f"{name}_ms"] = out["ms"]
        row[f"{name}_error_pct"] = error_pct(out["ms"], row["measured_ms"])
    if validation.decode:
        row.update(token_columns(row, outs))
    _tail_columns(row, outs)
    return outs




def _point(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in POINT}


def _key(row: dict[str, Any]) -> tuple:
    return tuple(row[k] for k in POINT)


def _save(out_dir: Path, rows: list[dict], layer_rows: list[dict]
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    out_dir.mkdir(parents=True, exist_ok=True)
    table, layers = pd.DataFrame(rows), pd.DataFrame(layer_rows)
    table.to_csv(out_dir / "validation.csv", index=False)
    layers.to_csv(out_dir / "validation_layers.csv", index=False)
    return table, layers
