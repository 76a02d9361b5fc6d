"""``prismsim serve``: files, capacity by hand, resuming, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.executors.trace_cache import WorkloadCache
from prismsim.serve.arrivals import arrivals_s
from prismsim.serve.engine import serve
from prismsim.serve.file import load_serve
from prismsim.serve.stats import request_table, run_summary
from prismsim.sim import simulate
from prismsim.sim.catalog import builtin_devices, builtin_links

GOOD = """name: tiny
model: {name: vit-tiny}
link: ethernet-1g
configurations:
  - {strategy: single, devices: 1, profile: cpu-2core-2.1ghz}
serving:
  arrivals: constant
  rates_per_s: [10, 40]
  requests: 300
  warmup: 30
  replications: 2
  slo_p99_ms: SLO
"""


def _one_inference_s() -> float:
    wl = WorkloadCache().get("vit-tiny", "single", 1)
    return simulate(wl, builtin_devices()["cpu-2core-2.1ghz"],
                    builtin_links()["ethernet-1g"]).latency_s


def _write(tmp_path, text: str, name: str = "serve.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_capacity_of_one_server_with_constant_arrivals(tmp_path):
    """D/D/1 with service D: no request waits below 1/D, so with an SLO of 1.5 D the
    capacity is the bisection's last step below the bound 1/D: (1 - 2^-12) / D."""
    d_s = _one_inference_s()
    path = _write(tmp_path, GOOD.replace("SLO", f"{1.5 * d_s * 1e3:.6f}"))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["serve", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    cap = pd.read_csv(out / "capacity.csv")
    assert cap["capacity_per_s"][0] == pytest.approx((1 - 2**-12) / d_s, rel=1e-9)
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["value"]) == [10, 40]
    assert summary["latency_p99_s"].tolist() == pytest.approx([d_s, d_s])  # no queueing
    assert summary["throughput_per_s"][0] == pytest.approx(10, rel=0.01)
    for name in ("runs.csv", "requests.parquet", "serving.png", "serving.svg"):
        assert (out / name).exists()
    assert len(pd.read_parquet(out / "requests.parquet")) == 2 * 2 * 300


def test_a_second_call_reads_the_runs_back_and_replots(tmp_path):
    path = _write(tmp_path, GOOD.replace("  slo_p99_ms: SLO\n", ""))
    out = tmp_path / "out"
    first = CliRunner().invoke(main, ["serve", str(path), "-o", str(out)])
    assert first.exit_code == 0, first.output
    before = (out / "runs.csv").read_bytes()
    parts = sorted(p.name for p in (out / "parts").iterdir())
    again = CliRunner().invoke(main, ["serve", str(path), "-o", str(out)])
    assert again.exit_code == 0 and (out / "runs.csv").read_bytes() == before
    assert sorted(p.name for p in (out / "parts").iterdir()) == parts
    png = (out / "serving.png").read_bytes()
    (out / "serving.png").unlink()
    replot = CliRunner().invoke(main, ["serve", str(path), "-o", str(out), "--plot-only"])
    assert replot.exit_code == 0 and (out / "serving.png").read_bytes() == png


@pytest.mark.parametrize("change, says", [
    (("rates_per_s: [10, 40]", "rates_per_s: [-1]"), "serve.yaml: serving.rates_per_s[0]"),
    (("arrivals: constant", "arrivals: trace", "slo_p99_ms: SLO", "trace: t.csv"),
     "t.csv: the trace has no"),
    (("devices: 1, profile", "devices: 1, dispatch: random, profile"),
     "serve.yaml: configurations[0].dispatch"),
    (("slo_p99_ms: SLO", "slo_p99_ms: 0.001"), "serve.yaml: serving.slo_p99_ms: 0.001 ms"),
    (("strategy: single", "strategy: magic"), "configurations[0].strategy: unknown"),
    (("warmup: 30", "warmup: 300"), "serve.yaml: serving.warmup: 300 leaves none"),
    (("strategy: single, devices: 1", "strategy: adaptive, devices: 2"),
     "configurations[0].candidates: adaptive chooses among 2 or more"),
    (("strategy: single, devices: 1", "strategy: adaptive, devices: 2, candidates: "
      "[{strategy: single}, {strategy: prism, cr: 4}], max_batch: 2"),
     "configurations[0].max_batch: adaptive serves one request at a time"),
    (("strategy: single, devices: 1", "strategy: adaptive, devices: 2, candidates: "
      "[{strategy: single}, {strategy: magic}]"), "configurations[0].candidates[1].strategy"),
    (("devices: 1, profile", "devices: 1, candidates: [{strategy: single}], profile"),
     "configurations[0].candidates: only an adaptive configuration"),
])
def test_bad_input_is_one_line_naming_file_and_key(tmp_path, change, says):
    (tmp_path / "t.csv").write_text("time_s\n")
    text = GOOD
    for old, new in zip(change[::2], change[1::2], strict=True):
        text = text.replace(old, new)
    path = _write(tmp_path, text.replace("SLO", "100"))
    result = CliRunner().invoke(main, ["serve", str(path), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and says in errors[0]


def test_every_serving_file_loads():
    names = [p for p in sorted(Path("scenarios").glob("*.yaml"))
             if "serving" in yaml.safe_load(p.read_text())]
    assert [p.name for p in names] == ["cpu_serving.yaml", "jetson_serving.yaml",
                                       "pi5_throttle.yaml", "pi5_wifi_dynamic.yaml",
                                       "pi5_wifi_leave.yaml"]
    cpu, jetson, throttle, dynamic, leave = (load_serve(p) for p in names)
    assert [c.resplit is not None for c in throttle.file.configurations] == [False, True]
    assert [(e.device, e.start_s, e.end_s) for e in leave.file.events] == [
        (2, 300, 600), (1, 900, None)]
    assert leave.events_for(leave.file.configurations[0]) == leave.file.events
    assert [c.policy for c in dynamic.file.configurations] == [
        "nominal", "nominal", "nominal", "estimated", "oracle"]
    trace = dynamic.link.trace
    assert trace is not None and len(trace.times_s) == 2500  # a step a second, 2,500 s
    assert max(trace.bandwidth_mbps) == 866.7  # clipped at 802.11ac 2x2 80 MHz PHY rate
    assert [c.strategy for c in jetson.file.configurations] == [
        "single", "single", "prism", "voltage", "adaptive"]
    assert jetson.link.rendezvous and jetson.file.serving.slo_p99_ms == 300
    assert [c.strategy for c in cpu.file.configurations] == ["single", "prism", "adaptive"]


def test_the_same_seeds_give_the_same_bytes(tmp_path):
    """Two calls into fresh folders: every file, figures included, byte for byte."""
    path = _write(tmp_path, GOOD.replace("constant", "poisson").replace("SLO", "40"))
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        result = CliRunner().invoke(main, ["serve", str(path), "-o", str(out)])
        assert result.exit_code == 0, result.output
    for name in ("runs.csv", "summary.csv", "capacity.csv", "requests.parquet",
                 "serving.png", "serving.svg"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_a_shared_channel_bounds_the_rate(tmp_path):
    """Prism P=3 in two groups over WiFi 5 through an access point: every frame of
    every group crosses the one channel twice, so the channel, not the devices, bounds
    the rate; served far above it, the throughput stays under the bound and near it."""
    from prismsim.serve.run import prepare, upper_rate

    text = GOOD.replace("ethernet-1g", "wifi5").replace(
        "{strategy: single, devices: 1, profile: cpu-2core-2.1ghz}",
        "{strategy: prism, devices: 3, cr: 4, groups: 2, profile: cpu-2core-2.1ghz}")
    loaded = load_serve(_write(tmp_path, text.replace("SLO", "1000")))
    sv = prepare(loaded, WorkloadCache(), lambda label, n=1: None)[0]
    bound = upper_rate(loaded, sv)
    r = simulate(sv.setup.workloads[1], builtin_devices()["cpu-2core-2.1ghz"], loaded.link)
    assert bound < 2 / max(d.compute_s for d in r.devices)  # not the devices' bound
    res = serve(sv.setup, arrivals_s("poisson", 3 * bound, 400, 0),
                builtin_devices()["cpu-2core-2.1ghz"], loaded.link)
    served = run_summary(res, request_table(res, 40))["throughput_per_s"]
    assert 0.8 * bound < served <= bound
