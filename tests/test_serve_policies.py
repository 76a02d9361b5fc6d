"""Adaptive policies under a link that changes, by hand: what each believes, what it
chooses, and the serving file's keys (link_trace:, policy:) with their one-line errors."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.serve.policies import PROBE_BYTES, GoodputEstimate, PerformanceMap
from prismsim.serve.pools import AdaptiveSetup, Candidate, serve_adaptive
from prismsim.sim import DeviceSpec, LinkSpec
from prismsim.sim.link_trace import LinkTrace
from prismsim.workload import Message, Task, Workload

CPU = DeviceSpec(peak_gflops=1.0, efficiency=1.0)  # 1e9 FLOPs take 1 s
PAYLOAD_BYTES = 1_250_000  # 1e7 bits: 0.1 s at 100 Mbit/s, 2 s at 5 Mbit/s
# 100 Mbit/s until 10 s, then 5 Mbit/s for good
DROP = LinkTrace(times_s=(0.0, 10.0), bandwidth_mbps=(100.0, 5.0))
LINK = LinkSpec(bandwidth_mbps=100.0, trace=DROP)


def _compute(seconds: float) -> Task:
    return Task("compute", "c", round(seconds * 1e9))


def _local() -> Workload:
    return Workload({"output_device": 0}, [[_compute(0.8)]])


def _split() -> Workload:
    """Both devices compute 0.3 s; device 1 then sends 1e7 bits to device 0 (the output):
    0.4 s at 100 Mbit/s, 2.3 s at 5 Mbit/s; one device alone takes 0.8 s."""
    msg = Message(id=0, src=1, dst=(0,), broadcast=False, tag="m0", shape=(1,),
                  payload_bytes=PAYLOAD_BYTES)
    return Workload({"output_device": 0},
                    [[_compute(0.3), Task("recv", "r", messages=(0,))],
                     [_compute(0.3), Task("send", "m0", messages=(0,))]], [msg])


def _serve(policy: str) -> list[tuple[str, float]]:
    setup = AdaptiveSetup((Candidate("single", _local()), Candidate("split", _split())),
                          devices=2, policy=policy)
    res = serve_adaptive(setup, [1.0, 20.0, 40.0], CPU, LINK)
    return [(r.choice, r.finish_s - r.arrival_s) for r in res.requests]


def test_the_estimate_weighs_transfers_by_their_age():
    """Start: 100 Mbit/s at goodput 0.5 is 5e7 bits over 1 s. A copy of 1e6 bytes (8e6
    bits) 0.4 s on the air, learnt 2 s later (one half life): bits 2.5e7 + 8e6 = 3.3e7,
    seconds 0.5 + 0.4 = 0.9: 3.667e7 bit/s on the air, 73.33 Mbit/s of bandwidth."""
    est = GoodputEstimate(100.0, 0.5, half_life_s=2.0)
    est.observe(1_000_000, 0.4, 2.0)
    assert est.bandwidth_mbps == pytest.approx(3.3e7 / 0.9 / 0.5 / 1e6)


def test_the_map_at_its_ends_is_the_split_by_hand():
    """The map spans half the trace's lowest rate (2.5 Mbit/s) to 1.5 x its highest
    (150): the split there takes 0.3 + 1e7 / 150e6 = 0.36667 s and 0.3 + 1e7 / 2.5e6 =
    4.3 s; a rate of 0 reads the lowest end."""
    m = PerformanceMap((Candidate("single", _local()), Candidate("split", _split())),
                       [CPU, CPU], LINK)
    assert [r.latency_s for r in m.at(150.0)] == pytest.approx([0.8, 0.3 + 1e7 / 150e6])
    assert [r.latency_s for r in m.at(0.0)] == pytest.approx([0.8, 4.3])
    assert m.at(1e6)[1].latency_s == pytest.approx(0.3 + 1e7 / 150e6)  # the end holds


def test_the_nominal_policy_splits_after_the_drop():
    """It believes 100 Mbit/s for ever: every request split, 0.4 s before the drop,
    0.3 + 2 = 2.3 s after it."""
    assert _serve("nominal") == [("split", pytest.approx(0.4)), ("split", pytest.approx(2.3)),
                                 ("split", pytest.approx(2.3))]


def test_the_oracle_goes_local_after_the_drop():
    assert _serve("oracle") == [("split", pytest.approx(0.4)), ("single", pytest.approx(0.8)),
                                ("single", pytest.approx(0.8))]


def test_the_estimate_learns_the_drop_one_request_late():
    """At 20 s its last transfer (at 1.4 s) said 100 Mbit/s: it splits (2.3 s) and, its
    estimate stale (over 5 s old), sends a probe; that and the request's own transfer say
    ~5 Mbit/s, so at 40 s it serves locally. Its regret over the oracle: 2.3 - 0.8 s."""
    assert _serve("estimated") == [("split", pytest.approx(0.4)),
                                   ("split", pytest.approx(2.3)),
                                   ("single", pytest.approx(0.8))]


def test_a_probe_takes_its_airtime_on_the_channel():
    """The probe at 20 s goes from device 0 to 1 over a shared channel, 262,144 bytes at
    5 Mbit/s: 0.41943 s; the split's own message (sent at 20.3 s) waits for it to end
    (20.41943 s) and takes 2 s: 2.41943 s after arrival."""
    shared = LINK.model_copy(update={"medium": "shared"})
    setup = AdaptiveSetup((Candidate("single", _local()), Candidate("split", _split())),
                          devices=2, policy="estimated")
    res = serve_adaptive(setup, [1.0, 20.0], CPU, shared)
    probe_s = PROBE_BYTES * 8 / 5e6
    assert res.requests[1].finish_s - 20.0 == pytest.approx(probe_s + 2.0)
    assert res.bytes_on_air == 2 * PAYLOAD_BYTES + PROBE_BYTES


SERVING = """name: dyn
model: {name: vit-tiny}
link: {bandwidth_mbps: 100}
link_trace: TRACE
configurations:
  - {label: split, strategy: prism, devices: 2, cr: 2}
  - {label: est, strategy: adaptive, devices: 2, policy: estimated,
     candidates: [{strategy: single}, {strategy: prism, cr: 2}]}
  - {label: oracle, strategy: adaptive, devices: 2, policy: oracle,
     candidates: [{strategy: single}, {strategy: prism, cr: 2}]}
serving: {arrivals: poisson, rates_per_s: [2], requests: 60, warmup: 5, replications: 1}
"""


def _file(tmp_path, text: str, trace: str) -> str:
    (tmp_path / "t.csv").write_text(trace)
    path = tmp_path / "dyn.yaml"
    path.write_text(text.replace("TRACE", "t.csv"))
    return str(path)


def test_serve_under_a_trace_writes_regret_and_the_trace(tmp_path):
    path = _file(tmp_path, SERVING, "time_s,bandwidth_mbps\n0,100\n10,2\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["serve", path, "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv").set_index("label")
    assert summary.loc["oracle", "regret_mean_s"] == 0.0
    assert summary.loc["est", "regret_mean_s"] == pytest.approx(
        summary.loc["est", "latency_mean_s"] - summary.loc["oracle", "latency_mean_s"])
    trace = pd.read_csv(out / "link_trace.csv")
    assert trace.loc[trace["time_s"] < 10, "bandwidth_mbps"].eq(100).all()
    assert trace.loc[trace["time_s"] >= 10, "bandwidth_mbps"].eq(2).all()
    assert (out / "dynamic.png").exists()
    again = CliRunner().invoke(main, ["serve", path, "-o", str(out), "--plot-only"])
    assert "dynamic.png" in again.output


@pytest.mark.parametrize(("text", "trace", "message"), [
    (SERVING, "time_s,bandwidth_mbps\n0,100\n5,50\n3,20\n", "t.csv: times_s"),
    (SERVING, "time_s,bandwidth_mbps\n0,-5\n", "t.csv: bandwidth_mbps"),
    (SERVING.replace("cr: 2}\n  - {label: est", "cr: 2, policy: oracle}\n  - {label: est", 1),
     "time_s,bandwidth_mbps\n0,100\n", "configurations[0].policy: only an adaptive"),
])
def test_bad_input_is_one_line_naming_file_and_key(tmp_path, text, trace, message):
    result = CliRunner().invoke(main, ["serve", _file(tmp_path, text, trace),
                                       "-o", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert message in result.output and len(result.output.strip().splitlines()) == 1, \
        result.output
    assert not math.isnan(len(result.output))
