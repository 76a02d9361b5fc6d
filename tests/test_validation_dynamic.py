"""A world that moves on the testbed (``validate --dynamic``): a trace's steps unrolled
by hand, the master's choice by the step it starts in, the windows compared, the
adaptive group serving on its first device, the file's checks, and a real run whose
shapers follow the schedule."""

from __future__ import annotations

import json
import re
import subprocess

import pandas as pd
import pytest
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.serve.pools import AdaptiveSetup, Candidate, serve_adaptive
from prismsim.sim import DeviceSpec, LinkSpec
from prismsim.sim.link_trace import LinkTrace, shortest_step_s, trace_steps
from prismsim.testbed.link_schedule import AdaptiveChoice
from prismsim.testbed.network import Testbed
from prismsim.testbed.runner import RealConfig, run_configs
from prismsim.userfiles import UserFileError
from prismsim.validation.dynamic import dynamic_lines, speed_steps, window_table
from prismsim.validation.file import ValidationFileError, load_validation_file
from prismsim.workload import Task, Workload
from tests.test_testbed import needs_testbed

LOOPING = LinkTrace(times_s=(0, 2, 5), bandwidth_mbps=(100, 10, 50), loop_s=6, start_s=1)


def test_a_looping_trace_is_unrolled_from_its_start():
    # trace time 1 at the start: the 100 step (from -1) holds at 0; then 10 at 1, 50 at
    # 4; the next repeat from 5: 100, 10 at 7, 50 at 10; 100 at 11; 13 is past 12
    assert trace_steps(LOOPING, 12.0) == [(0.0, 100), (1.0, 10), (4.0, 50), (5.0, 100),
                                          (7.0, 10), (10.0, 50), (11.0, 100)]


def test_a_step_with_loss_is_its_rate_less_the_loss():
    lossy = LinkTrace(times_s=(0, 3), bandwidth_mbps=(100, 40), loss=(0.0, 0.25))
    assert trace_steps(lossy, 10.0) == [(0.0, 100), (3.0, 30)]


def test_the_shortest_step_counts_the_loop_and_not_the_last_of_a_trace_without_one():
    assert shortest_step_s(LOOPING) == 1  # 5 -> 6
    assert shortest_step_s(LinkTrace(times_s=(0, 2, 5), bandwidth_mbps=(1, 2, 3))) == 2


def test_the_master_chooses_by_the_step_a_request_starts_in():
    choice = AdaptiveChoice([(0.0, 1000.0, 1), (8.0, 100.0, 0)])
    assert choice(7.99) == (1, 1000.0) and choice(8.0) == (0, 100.0)
    assert choice.rate_changes() == [(0.0, 1000.0), (8.0, 100.0)]
    again = AdaptiveChoice.from_job(json.loads(json.dumps(choice.as_job())))
    assert again == choice


def _requests(predicted_s: list[float], choices: list[str]) -> pd.DataFrame:
    """23 requests, 3 of them warm-up, every measured latency 0.1 s."""
    n = len(predicted_s)
    return pd.DataFrame({"request": range(n), "warmup": [i < 3 for i in range(n)],
                         "measured_latency_s": [0.1] * n, "predicted_latency_s": predicted_s,
                         "measured_choice": ["single"] * n, "predicted_choice": choices,
                         "stolen_cpu_pct": [0.04] * n})


def test_windows_of_requests_after_the_warm_up_by_hand():
    # windows: requests 3-12 predicted 0.1 s (0 %), 13-22 0.08 s (-20 %: outside 15 %);
    # one request of the second predicted split; the warm-up ones count for nothing
    predicted = [9.0] * 3 + [0.1] * 10 + [0.08] * 10
    choices = ["prism"] * 3 + ["single"] * 14 + ["prism"] + ["single"] * 5
    requests = _requests(predicted, choices)
    windows = window_table(requests, 10)
    assert windows["first_request"].tolist() == [3, 13]
    assert windows["error_pct"].tolist() == pytest.approx([0.0, -20.0])
    assert windows["choices_agree"].tolist() == [10, 9]
    lines = dynamic_lines(requests, windows)
    assert lines[0].startswith("medians of 10 requests: 1 of 2 windows within 15 %")
    assert "mean signed -10.0 %" in lines[0]
    assert lines[1] == "choices agree on 19 of 20 requests (95 %); split: 0 measured, 1 predicted"


def test_the_host_speed_over_a_stream_is_the_median_of_nine_readings_around_each():
    """Readings 3.0 ms at requests 0-9 and 3.6 ms at 10-19 (run median 3.3): request 4
    sees 0-8 (all 3.0: 3.0 / 3.3), request 10 sees 6-14 (five of 3.6: 3.6 / 3.3),
    request 19 sees 15-19 (3.6). Requests without a reading make no step."""
    records = [{"start_s": float(i), "gauge_s": 3.0e-3 if i < 10 else 3.6e-3}
               for i in range(20)] + [{"start_s": 20.5, "gauge_s": None}]
    steps = dict(speed_steps(records, 3.3e-3))
    assert len(steps) == 20
    assert [steps[4.0], steps[10.0], steps[19.0]] == pytest.approx([3 / 3.3, 3.6 / 3.3,
                                                                     3.6 / 3.3])


def test_a_short_last_window_is_kept_from_half_a_window():
    requests = _requests([0.1] * 17, ["single"] * 17)  # 14 after the warm-up: 10 + 4
    assert window_table(requests, 10)["requests"].tolist() == [10]
    requests = _requests([0.1] * 18, ["single"] * 18)  # 10 + 5
    assert window_table(requests, 10)["requests"].tolist() == [10, 5]


CPU = DeviceSpec(peak_gflops=1.0, efficiency=1.0)  # 1e9 FLOPs take 1 s


def _group(local: str) -> AdaptiveSetup:
    """One device alone 0.8 s, split over two 1.0 s (no messages: the link plays no
    part)."""
    single = Workload({"output_device": 0}, [[Task("compute", "c", 800_000_000)]])
    split = Workload({"output_device": 0}, [[Task("compute", "c", 1_000_000_000)]] * 2)
    return AdaptiveSetup((Candidate("single", single), Candidate("split", split)),
                         devices=2, local=local)


def test_requests_on_one_device_wait_for_the_first_when_kept_there():
    # two at once: the first alone on device 0 (0.8 < 1.0); the second would take 1.6 on
    # device 0 after it, 1.8 split: it waits for device 0 (0.8 -> 1.6) with local first,
    # and with any device takes device 1 at once (done at 0.8)
    link = LinkSpec(bandwidth_mbps=1e9, latency_ms=0)
    first = serve_adaptive(_group("first"), [0.0, 0.0], CPU, link)
    anywhere = serve_adaptive(_group("any"), [0.0, 0.0], CPU, link)
    assert [r.finish_s for r in first.requests] == pytest.approx([0.8, 1.6])
    assert [r.finish_s for r in anywhere.requests] == pytest.approx([0.8, 0.8])
    assert [r.choice for r in first.requests] == ["single", "single"]


def _file(tmp_path, trace_text: str, extra: str = "") -> object:
    (tmp_path / "steps.csv").write_text(trace_text)
    path = tmp_path / "dyn.yaml"
    path.write_text("strategies: [{strategy: prism, options: {cr: 4}}]\n"
                    f"dynamic: {{link_trace: steps.csv{extra}}}\n")
    return path


def test_the_trace_is_found_beside_the_file(tmp_path):
    validation = load_validation_file(_file(tmp_path, "time_s,bandwidth_mbps\n0,100\n2,10\n"))
    assert validation.dynamic.link_trace == str((tmp_path / "steps.csv").resolve())


@pytest.mark.parametrize(("trace", "says"), [
    ("time_s,bandwidth_mbps\n0,100\n0.2,10\n", "dyn.yaml: dynamic: link_trace: steps.csv: "
                                                "a step of 0.2 s"),
    ("time_s,bandwidth_mbps\n0,100\n2,0\n3,10\n", "a rate above 0 at every step"),
    ("time_s,bandwidth_mbps,latency_ms\n0,100,1\n", "replays the rate alone"),
])
def test_a_trace_the_testbed_cannot_replay_is_one_line(tmp_path, trace, says):
    with pytest.raises(ValidationFileError, match=re.escape(says)):
        load_validation_file(_file(tmp_path, trace))


def test_a_missing_trace_names_its_path(tmp_path):
    path = _file(tmp_path, "time_s,bandwidth_mbps\n0,100\n")
    (tmp_path / "steps.csv").unlink()
    with pytest.raises(UserFileError, match=re.escape("steps.csv: cannot read the link trace")):
        load_validation_file(path)


def test_dynamic_without_its_section_is_one_line(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("strategies:\n  - strategy: prism\n")
    result = CliRunner().invoke(main, ["validate", str(grid), "--dynamic"])
    assert result.exit_code == 2
    assert "grid.yaml: dynamic: give the link trace" in result.output


def _tbf_rate(tb: Testbed, device: int) -> str:
    out = subprocess.run(["tc", "-n", tb.namespace(device), "qdisc", "show", "dev",
                          tb.interface(device, "d")], capture_output=True, text=True).stdout
    return out.split(" rate ")[1].split()[0]


@needs_testbed
def test_the_shapers_follow_the_trace_and_the_master_its_choices():
    """Split (prism) while the step says so, then single from 1 s on, when the shapers
    drop to 20 Mbit/s; both ends of every link follow."""
    choice = AdaptiveChoice([(0.0, 1000.0, 1), (1.0, 20.0, 0)])
    configs = [RealConfig("single", devices=1), RealConfig("prism", {"cr": 4})]
    with Testbed(2, 1000e6) as tb:
        records = run_configs(tb, "vit-tiny", configs, warmup=1,
                              arrivals_s=[0.0, 0.3, 1.2, 1.5], adaptive=choice)
        rates = {_tbf_rate(tb, d) for d in range(2)}
    r = sorted(records, key=lambda rec: rec["request"])
    assert [x["choice"] for x in r] == [1, 1, 0, 0]
    assert [x["bandwidth_mbps"] for x in r] == [1000.0, 1000.0, 20.0, 20.0]
    assert rates == {"20Mbit"}


def test_a_finished_folder_is_reported_again_with_its_figure(tmp_path):
    """Nothing is run: the table's windows (as in the hand-worked case above), the
    figures' lines and the plot of trace and latencies."""
    path = _file(tmp_path, "time_s,bandwidth_mbps\n0,100\n2,10\n")
    requests = _requests([9.0] * 3 + [0.1] * 10 + [0.08] * 10,
                         ["prism"] * 3 + ["single"] * 14 + ["prism"] + ["single"] * 5)
    requests["arrival_s"] = [0.25 * i for i in range(len(requests))]
    out = tmp_path / "out"
    out.mkdir()
    requests.to_csv(out / "validation_dynamic.csv", index=False)
    result = CliRunner().invoke(main, ["validate", str(path), "--dynamic", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "medians of 10 requests: 1 of 2 windows within 15 %" in result.output
    assert "choices agree on 19 of 20 requests (95 %)" in result.output
    assert (out / "validation_dynamic.png").stat().st_size > 10_000
