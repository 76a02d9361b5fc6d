"""Serving while devices slow down or leave, schedules by hand: a fixed group waits for
a device (or loses its requests), an adaptive group notices a device gone after its
detection time, starts the request it held again on the device left and serves there
until the device is known back."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.serve.engine import serve
from prismsim.serve.pools import AdaptiveSetup, Candidate, serve_adaptive
from prismsim.serve.requests import ServingSetup
from prismsim.serve.stats import latency_figures, request_table
from prismsim.sim import DeviceSpec, LinkSpec
from prismsim.sim.device_events import DeviceEvent
from prismsim.workload import Message, Task, Workload

CPU = DeviceSpec(peak_gflops=1.0, efficiency=1.0)  # 1e9 FLOPs take 1 s
LINK = LinkSpec(bandwidth_mbps=1e9, latency_ms=0)  # a 4-byte message takes ~0 s


def _compute(seconds: float) -> Task:
    return Task("compute", "c", round(seconds * 1e9))


def _local(seconds: float = 0.8) -> Workload:
    return Workload({"output_device": 0}, [[_compute(seconds)]])


def _split(seconds: float = 0.5) -> Workload:
    """Both devices compute ``seconds``; device 1 then sends to device 0 (the output)."""
    msg = Message(id=0, src=1, dst=(0,), broadcast=False, tag="m0", shape=(1,),
                  payload_bytes=4)
    return Workload({"output_device": 0},
                    [[_compute(seconds), Task("recv", "r", messages=(0,))],
                     [_compute(seconds), Task("send", "m0", messages=(0,))]], [msg])


def _leave(device: int, start_s: float, end_s: float | None = None) -> DeviceEvent:
    return DeviceEvent(device=device, kind="leave", start_s=start_s, end_s=end_s)


def _pool(detect_s: float = 1.0) -> AdaptiveSetup:
    return AdaptiveSetup((Candidate("single", _local()), Candidate("split", _split())),
                         devices=2, detect_s=detect_s)


def test_one_server_slowed_then_away_by_hand():
    """One device, 1 s a request, requests at 0 and 1: slowed x2 over [0.5, 1.5] the first
    ends at 0.5 + 0.5 x 2 = 1.5 (its last 0.5 s of work at half speed); away over [1.5,
    2] the second (started 1.5) waits, then takes 1 s: done at 3.0."""
    events = [DeviceEvent(device=0, kind="slowdown", start_s=0.5, end_s=1.5, factor=2),
              _leave(0, 1.5, 2.0)]
    res = serve(ServingSetup({1: _local(1.0)}), [0.0, 1.0], CPU, LINK, events=events)
    assert [r.finish_s for r in res.requests] == pytest.approx([1.5, 3.0])


def test_a_fixed_group_loses_what_a_device_gone_for_good_held():
    """A split group whose device 1 leaves for good at 0.2 s: the request of 0 s and the
    one of 5 s are never answered; the table says lost, and no latency counts them."""
    res = serve(ServingSetup({1: _split()}), [0.0, 5.0], CPU, LINK,
                events=[_leave(1, 0.2)])
    assert [r.lost for r in res.requests] == [True, True]
    table = request_table(res, warmup=0)
    assert table["lost"].tolist() == [True, True]
    figures = latency_figures(table)
    assert figures["lost"] == 2 and figures["served"] == 0
    assert math.isnan(figures["latency_p99_s"])


def test_an_adaptive_group_starts_the_request_again_on_the_device_left():
    """Split 0.5 s beats one device's 0.8 s. Device 1 leaves at 0.2 s for good; the group
    knows at 0.2 + 1 = 1.2 s, gives the split up and starts the request again on device 0
    alone: done at 2.0. A request at 5 s goes local at once: done at 5.8."""
    res = serve_adaptive(_pool(), [0.0, 5.0], CPU, LINK, events=[_leave(1, 0.2)])
    assert [r.finish_s for r in res.requests] == pytest.approx([2.0, 5.8])
    assert [(r.choice, r.restarts) for r in res.requests] == [("single", 1), ("single", 0)]
    assert not any(r.lost for r in res.requests)


def test_the_group_splits_again_once_the_device_is_known_back():
    """Device 1 away over [0.2, 3]: known gone at 1.2 (the request starts again on device
    0, done at 2.0), known back at 3 + 1 = 4: a request at 3.5 goes local (3.5 + 0.8 =
    4.3), one at 5 is split (5.5)."""
    res = serve_adaptive(_pool(), [0.0, 3.5, 5.0], CPU, LINK, events=[_leave(1, 0.2, 3.0)])
    assert [r.finish_s for r in res.requests] == pytest.approx([2.0, 4.3, 5.5])
    assert [r.choice for r in res.requests] == ["single", "single", "split"]


def test_a_device_back_before_it_is_missed_only_delays():
    """Away over [0.2, 0.6], detection after 1 s: nobody notices; the split request's
    device 1 does its last 0.3 s of work from 0.6: done at 0.9 (not restarted)."""
    res = serve_adaptive(_pool(), [0.0], CPU, LINK, events=[_leave(1, 0.2, 0.6)])
    assert res.requests[0].finish_s == pytest.approx(0.9)
    assert res.requests[0].restarts == 0


SERVING = """name: ev
model: {name: vit-tiny}
link: ethernet-1g
configurations:
  - {label: alone, strategy: single, devices: 1, groups: 2}
  - {label: pool, strategy: adaptive, devices: 2, detect_ms: 500,
     candidates: [{strategy: single}, {strategy: prism, cr: 2}]}
events: EVENTS
serving: {arrivals: poisson, rates_per_s: [2], requests: 40, warmup: 0, replications: 1}
"""


def test_serve_with_events_reports_the_lost_share(tmp_path):
    path = tmp_path / "ev.yaml"
    path.write_text(SERVING.replace("EVENTS", "[{device: 1, kind: leave, start_s: 1.0}]"))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["serve", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "lost_share" in result.output
    summary = pd.read_csv(out / "summary.csv").set_index("label")
    assert summary.loc["pool", "lost_share"] == 0.0  # it starts them again on board 0
    assert summary.loc["alone", "lost_share"] > 0  # board 1's queue is never served


def test_an_event_on_a_board_no_configuration_has_is_one_line(tmp_path):
    path = tmp_path / "ev.yaml"
    path.write_text(SERVING.replace("EVENTS", "[{device: 4, kind: leave, start_s: 1.0}]"))
    result = CliRunner().invoke(main, ["serve", str(path), "-o", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "ev.yaml: events[0].device: 4, but the largest configuration has 2 devices" \
        in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_a_device_waiting_for_a_message_in_flight_is_stopped_too():
    """Device 1 computes 0.5 s, sends 1e7 bits over 2 Mbit/s (in flight until 5.5 s),
    then computes 1 s more, and leaves at 0.6 s for good; one device alone takes 10 s, so
    the split (5.5 s) is chosen. At 1.6 s the group gives the split up although device 0
    waits only for the message already on its way (its arrival known), and starts the
    request again on device 0: done at 1.6 + 10 = 11.6."""
    msg = Message(id=0, src=1, dst=(0,), broadcast=False, tag="m0", shape=(1,),
                  payload_bytes=1_250_000)
    split = Workload({"output_device": 0},
                     [[_compute(0.5), Task("recv", "r", messages=(0,))],
                      [_compute(0.5), Task("send", "m0", messages=(0,)), _compute(1.0)]],
                     [msg])
    setup = AdaptiveSetup((Candidate("single", _local(10.0)), Candidate("split", split)),
                          devices=2)
    res = serve_adaptive(setup, [0.0], CPU, LinkSpec(bandwidth_mbps=2.0),
                         events=[_leave(1, 0.6)])
    assert res.requests[0].finish_s == pytest.approx(11.6)
    assert (res.requests[0].choice, res.requests[0].restarts) == ("single", 1)


def _split3(seconds: float = 0.3) -> Workload:
    """Three devices compute ``seconds``; devices 1 and 2 then send to device 0."""
    msgs = [Message(id=i, src=i + 1, dst=(0,), broadcast=False, tag=f"m{i}", shape=(1,),
                    payload_bytes=4) for i in (0, 1)]
    return Workload({"output_device": 0},
                    [[_compute(seconds), Task("recv", "r", messages=(0, 1))],
                     [_compute(seconds), Task("send", "m0", messages=(0,))],
                     [_compute(seconds), Task("send", "m1", messages=(1,))]], msgs)


def test_a_group_with_a_device_gone_splits_across_those_left_when_it_can():
    """Three devices: one alone takes 0.8 s, all three 0.3 s, two 0.5 s (a candidate
    re-planned for two). Device 1 leaves at 0.1 s for good, in the split of the request
    of 0 s; the group knows at 1.1 s and starts it again split across devices 0 and 2:
    done at 1.6 (without the two-device candidate, on device 0 alone: 1.9). A request at
    5 s is split across the two as well: 5.5. Device 2 sends its 4 bytes to device 0
    three times (once in the split given up), device 1 never."""
    events = [_leave(1, 0.1)]
    three = (Candidate("single", _local()), Candidate("split3", _split3()))
    res = serve_adaptive(AdaptiveSetup((*three, Candidate("split on 2", _split())),
                                       devices=3), [0.0, 5.0], CPU, LINK, events=events)
    assert [r.finish_s for r in res.requests] == pytest.approx([1.6, 5.5])
    assert [(r.choice, r.restarts, r.devices) for r in res.requests] == \
        [("split on 2", 1, 2), ("split on 2", 0, 2)]
    assert [d.bytes_sent for d in res.devices] == [0, 0, 12]
    alone = serve_adaptive(AdaptiveSetup(three, devices=3), [0.0, 5.0], CPU, LINK,
                           events=events)
    assert [r.finish_s for r in alone.requests] == pytest.approx([1.9, 5.8])


def test_a_re_planned_candidate_runs_on_fewer_devices_than_the_group(tmp_path):
    path = tmp_path / "ev.yaml"
    text = SERVING.replace("EVENTS", "[]").replace("{strategy: prism, cr: 2}]",
                                                   "{strategy: prism, cr: 2, devices: 2}]")
    path.write_text(text)
    result = CliRunner().invoke(main, ["serve", str(path), "-o", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "ev.yaml: configurations[1].candidates[1].devices: a split re-planned for a " \
           "group with devices gone needs a group of 3 or more (this one has 2) (got " \
           "prism on 2)" in result.output, result.output
