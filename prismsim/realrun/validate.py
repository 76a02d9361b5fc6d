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
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from prismsim.cost.cache import WorkloadCache
from prismsim.names import check_model, check_strategies
from prismsim.realrun.profile import (
    MessageCosts,
    fit_message_cost,
    profile_host,
    save_profile,
    step_seconds,
    testbed_one_way_s,
    timed_workload,
)
from prismsim.realrun.runner import RealConfig, run_configs
from prismsim.realrun.testbed import FRAME_OVERHEAD_BYTES, MTU_BYTES, Testbed
from prismsim.sim import simulate
from prismsim.sim.specs import DeviceSpec, LinkSpec
from prismsim.userfiles import (
    StrictModel,
    UserFileError,
    load_model_file,
    read_mapping,
    validate,
)

TCP_PAYLOAD_BYTES = MTU_BYTES - 52  # IPv4 20 + TCP 20 + timestamps 12 per frame
GOODPUT = TCP_PAYLOAD_BYTES / (MTU_BYTES + FRAME_OVERHEAD_BYTES)  # what tbf's rate carries


class SpecError(UserFileError):
    """A validation file that does not validate; names the file and the key."""


class StrategyEntry(StrictModel):
    strategy: str
    options: dict[str, Any] = Field(default_factory=dict)  # the strategy's options


class ValidationSpec(StrictModel):
    model: str = "vit-tiny"  # small enough that P processes fit on 2 cores
    batch: int = Field(1, ge=1)  # images per inference
    strategies: list[StrategyEntry]  # single is always run beside them, as the baseline
    devices: list[int] = Field(default_factory=lambda: [2, 3])  # process groups
    bandwidth_mbps: list[PositiveFloat] = Field(default_factory=lambda: [50.0, 200.0, 1000.0])
    latency_ms: list[float] = Field(default_factory=lambda: [1.0, 10.0])  # one-way delay
    warmup: int = Field(2, ge=0)  # untimed rounds before the timed ones
    runs: int = Field(7, ge=1)  # timed rounds per point (strategies interleaved)
    profile: str | None = None  # a saved `prismsim profile-device` file; None: measure now
    profile_rounds: int = Field(3, ge=1)  # measuring now: interleaved windows per k ...
    profile_window_s: float = Field(3.0, gt=0)  # ... of this many seconds each


class ProfileFile(BaseModel):
    """What validation reads of a ``prismsim profile-device`` file (other keys kept)."""

    model_config = ConfigDict(extra="allow")
    concurrent_gflops: dict[int, PositiveFloat] = Field(min_length=1)  # k busy -> GFLOP/s
    gloo_fixed_us: float = Field(ge=0)  # fixed cost of one GLOO message


def load_spec(path: Path) -> ValidationSpec:
    spec = load_model_file(path, ValidationSpec, "validation fields", SpecError)
    check_model(spec.model, f"{path.name}: model", SpecError)
    check_strategies([e.strategy for e in spec.strategies], f"{path.name}: strategies",
                     SpecError)
    return spec


def load_profile(path: Path) -> dict[str, Any]:
    """A saved profile, checked: a damaged or foreign file is one error naming it."""
    where = path.name
    data = read_mapping(path, "profile fields", where)
    validate(ProfileFile, data, where, error=SpecError)
    return data


def host_device(profile: dict[str, Any], busy: int) -> DeviceSpec:
    """This host as the simulator sees it when ``busy`` one-thread processes compute at
    once: their measured per-process rate (the cores are shared, not pinned)."""
    rates = {int(k): v for k, v in profile["concurrent_gflops"].items()}
    gflops = rates[min(busy, max(rates))]
    return DeviceSpec(name=f"host-{busy}-busy", source="prismsim profile-device",
                      peak_gflops=gflops, efficiency=1.0)


def testbed_link(profile: dict[str, Any], bandwidth_mbps: float, latency_ms: float
                 ) -> LinkSpec:
    """The nominal link: tbf's rate less TCP/IP framing, the set delay, and GLOO's fixed
    cost per message measured on loopback."""
    return LinkSpec(name="testbed", source="tbf rate, TCP/IPv4 framing, GLOO fixed cost",
                    medium="switched", bandwidth_mbps=bandwidth_mbps, goodput=GOODPUT,
                    latency_ms=latency_ms, per_message_us=profile["gloo_fixed_us"],
                    rendezvous=True)


def calibrated_device(profile: dict[str, Any], busy: int, costs: MessageCosts) -> DeviceSpec:
    """The host with each message's CPU time (GLOO threads and the kernel's network path,
    measured by the same ping-pong) charged to its program, as staging is."""
    fixed_s, per_byte_s = fit_message_cost(costs.cpu_s)
    base = host_device(profile, busy)
    return base.model_copy(update={"staging_us": fixed_s * 1e6, "staging_gbytes_per_s":
                                   1e-9 / per_byte_s if per_byte_s else 1e6})


def calibrated_link(one_way_s: dict[int, float]) -> LinkSpec:
    """The link as GLOO ping-pong measured it in the shaped testbed: the rate is the
    slope over the larger messages (16 KB and up), the latency the smallest message's
    one-way time less its own bytes at that rate, and the larger messages' intercept
    beyond that latency an extra delay of each message's data (a rendezvous handshake is
    charged the latency only)."""
    large = {k: v for k, v in one_way_s.items() if k >= 16384}
    fixed_s, per_byte_s = fit_message_cost(large)
    smallest = min(one_way_s)
    latency_s = max(one_way_s[smallest] - smallest * per_byte_s, 0.0)
    # what a bulk message's data takes beyond the small one's latency (TCP window)
    extra_s = max(fixed_s - latency_s, 0.0)
    return LinkSpec(name="testbed-calibrated", source="GLOO ping-pong in the testbed",
                    medium="switched", bandwidth_mbps=8e-6 / per_byte_s, goodput=1.0,
                    latency_ms=latency_s * 1e3, message_delay_us=extra_s * 1e6,
                    rendezvous=True)


def _configs(spec: ValidationSpec) -> list[RealConfig]:
    return [RealConfig("single", devices=1)] + [RealConfig(s.strategy, s.options)
                                                for s in spec.strategies]


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
            "measured_max_ms": max(walls) * 1e3,
            "cpu_ms": statistics.median(r["cpu_s"] for r in mine) * 1e3,
            "max_abs_error": max(r.get("max_abs_error", 0.0) for r in mine),
            "layer_ms": {k: statistics.median(lay[k] for lay in layers) * 1e3
                         for k in layers[0]}}


def _steps(spec: ValidationSpec, cfg: RealConfig, n_dev: int) -> list[list[float]]:
    """This config's compute steps timed in isolation (once per process)."""
    return _timed_steps(spec.model, cfg.strategy, n_dev, spec.batch,
                        json.dumps(cfg.options, sort_keys=True))


@functools.cache
def _timed_steps(model: str, strategy: str, n_dev: int, batch: int, options: str
                 ) -> list[list[float]]:
    return step_seconds(model, strategy, n_dev, batch, **json.loads(options))


def simulate_point(spec: ValidationSpec, cfg: RealConfig, devices: int,
                   profile: dict[str, Any], links: dict[str, LinkSpec], speed: float = 1.0,
                   costs: MessageCosts | None = None) -> dict[str, Any]:
    """Simulated latency on each link model, and per layer on the first. ``speed``
    scales the timed compute steps to the host's speed during the testbed run."""
    n_dev = cfg.devices or devices
    wl = WorkloadCache().get(spec.model, cfg.strategy, n_dev, batch=spec.batch, **cfg.options)
    seconds = [[s * speed for s in dev] for dev in _steps(spec, cfg, n_dev)]
    wl = timed_workload(wl, seconds, host_device(profile, 1).flops_per_s)
    out: dict[str, Any] = {}
    for name, link in links.items():
        nominal = costs is None or name.endswith("nominal_ms")
        device = host_device(profile, n_dev) if nominal else calibrated_device(profile, n_dev,
                                                                               costs)
        result = simulate(wl, device, link, record=not out)
        out[name] = result.latency_s * 1e3
        if len(out) == 1:
            steps = [[s.label, s.layer, s.start_s, s.end_s] for s in result.spans
                     if s.device == 0 and s.lane == "compute"]
            out["sim_layer_ms"] = {k: v * 1e3 for k, v in _layer_ends(steps).items()}
    return out


def _row(spec: ValidationSpec, cfg: RealConfig, devices: int, bw: float, lat: float,
         measured: dict, simulated: dict) -> dict[str, Any]:
    def err(name: str) -> float:
        return 100 * (simulated[name] - measured["measured_ms"]) / measured["measured_ms"]

    return {"strategy": cfg.strategy, "options": yaml.safe_dump(cfg.options,
                                                               default_flow_style=True).strip(),
            "devices": cfg.devices or devices, "group": devices, "bandwidth_mbps": bw,
            "latency_ms": lat, **{k: v for k, v in measured.items() if k != "layer_ms"},
            "simulated_ms": simulated["simulated_ms"], "error_pct": err("simulated_ms"),
            "simulated_nominal_ms": simulated["simulated_nominal_ms"],
            "error_nominal_pct": err("simulated_nominal_ms")}


def _layer_rows(base: dict[str, Any], measured: dict, simulated: dict) -> list[dict]:
    return [{**base, "layer": k, "measured_ms": measured["layer_ms"][k],
             "simulated_ms": simulated["sim_layer_ms"].get(k)} for k in measured["layer_ms"]]


def count_groups(spec: ValidationSpec) -> int:
    """Testbed runs: one per device count, bandwidth and latency."""
    return len(spec.devices) * len(spec.bandwidth_mbps) * len(spec.latency_ms)


def _earlier(out_dir: Path, fresh: bool) -> tuple[list[dict], list[dict]]:
    """Rows of an interrupted run of this folder, to go on from."""
    paths = out_dir / "validation.csv", out_dir / "validation_layers.csv"
    if fresh or not all(p.exists() and p.stat().st_size for p in paths):
        return [], []
    return [pd.read_csv(p).to_dict("records") for p in paths]  # type: ignore[return-value]


def _profile(spec: ValidationSpec, out_dir: Path, profile: dict[str, Any] | None
             ) -> dict[str, Any]:
    saved = out_dir / "profile.yaml"
    if profile is None and saved.exists():
        profile = load_profile(saved)
    if profile is None:
        profile = profile_host(spec.model, spec.batch, max_procs=max(spec.devices),
                               window_s=spec.profile_window_s, rounds=spec.profile_rounds)
    save_profile(profile, saved)
    return profile


def run_validation(spec: ValidationSpec, out_dir: Path, profile: dict[str, Any] | None = None,
                   fresh: bool = False, progress: Any = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every point of ``spec``: measured and simulated. Writes the CSVs after each testbed
    run, and goes on from them when run again on the same folder."""
    profile = _profile(spec, out_dir, profile)
    rows, layer_rows = _earlier(out_dir, fresh)
    done = {(r["group"], r["bandwidth_mbps"], r["latency_ms"]) for r in rows}
    configs = _configs(spec)
    for devices in spec.devices:
        todo = [(bw, lat) for bw in spec.bandwidth_mbps for lat in spec.latency_ms
                if (devices, bw, lat) not in done]
        if not todo:
            continue
        with Testbed(devices, todo[0][0] * 1e6) as tb:
            for bw, lat in todo:
                tb.shape(bw * 1e6, lat / 1e3)
                new, new_layers = _measure(spec, tb, configs, profile, bw, lat)
                rows, layer_rows = rows + new, layer_rows + new_layers
                _save(out_dir, rows, layer_rows)
                if progress:
                    progress(new)
    return _save(out_dir, rows, layer_rows)


def _measure(spec: ValidationSpec, tb: Testbed, configs: list[RealConfig],
             profile: dict[str, Any], bw: float, lat: float) -> tuple[list[dict], list[dict]]:
    """One testbed run (every config interleaved) and its simulated twins."""
    costs = testbed_one_way_s(tb)
    links = {"simulated_ms": calibrated_link(costs.wall_s),
             "simulated_nominal_ms": testbed_link(profile, bw, lat)}
    records = run_configs(tb, spec.model, configs, batch=spec.batch, warmup=spec.warmup,
                          runs=spec.runs)
    rows, layer_rows = [], []
    speed = _host_speed(spec, configs[0], records)
    for i, cfg in enumerate(configs):
        measured = summarize_measured(records, i)
        simulated = simulate_point(spec, cfg, tb.n_devices, profile, links, speed, costs)
        link = links["simulated_ms"]
        rows.append({**_row(spec, cfg, tb.n_devices, bw, lat, measured, simulated),
                     "link_latency_ms": link.latency_ms, "link_mbps": link.bandwidth_mbps,
                     "message_cpu_us": fit_message_cost(costs.cpu_s)[0] * 1e6,
                     "link_message_delay_us": link.message_delay_us, "host_speed": speed})
        base = {k: rows[-1][k] for k in ("strategy", "options", "devices", "bandwidth_mbps",
                                         "latency_ms")}
        layer_rows += _layer_rows(base, measured, simulated)
    return rows, layer_rows


def _host_speed(spec: ValidationSpec, single: RealConfig, records: list[dict]) -> float:
    """How much slower the host ran during this testbed run than when its steps were
    timed: the interleaved single-device run's latency over its timed steps' sum (the
    CPU's speed drifts between runs on a shared machine)."""
    timed_s = sum(_steps(spec, single, 1)[0])
    return summarize_measured(records, 0)["measured_ms"] / 1e3 / timed_s


def _save(out_dir: Path, rows: list[dict], layer_rows: list[dict]
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    out_dir.mkdir(parents=True, exist_ok=True)
    table, layers = pd.DataFrame(rows), pd.DataFrame(layer_rows)
    table.to_csv(out_dir / "validation.csv", index=False)
    layers.to_csv(out_dir / "validation_layers.csv", index=False)
    return table, layers


def mape(table: pd.DataFrame, column: str = "error_pct", distributed_only: bool = True
         ) -> float:
    """Mean absolute percentage error of the simulated latencies."""
    rows = table[table["devices"] > 1] if distributed_only else table
    return float(rows[column].abs().mean())


def scatter_plot(table: pd.DataFrame, path: Path) -> None:
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.add_subplot()
    for (strategy, devices), group in table.groupby(["strategy", "devices"]):
        ax.scatter(group["measured_ms"], group["simulated_ms"], label=f"{strategy} P={devices}",
                   s=22)
    top = float(max(table["measured_ms"].max(), table["simulated_ms"].max())) * 1.05
    ax.plot([0, top], [0, top], color="gray", lw=0.8, ls="--", label="simulated = measured")
    ax.set(xlabel="measured latency (ms)", ylabel="simulated latency (ms)", xlim=(0, top),
           ylim=(0, top), title=f"Simulator vs testbed (MAPE {mape(table):.1f} %)")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=120, metadata={"Software": None})


