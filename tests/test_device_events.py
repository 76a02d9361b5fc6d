"""Devices that slow down or leave, against schedules worked out by hand: a step slowed in
its middle, a device away mid-request, one that never returns, a message that arrives at
a device away; the clock itself; and what bad input says (one line naming file and key).

The program of most tests: device 0 computes 1 s, then sends 1 MB over 8 Mbit/s (1 s);
device 1 receives it and computes 2 s. Without events it ends at 1 + 1 + 2 = 4 s."""

import math
import re

import pytest
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.scenario import load_scenario
from prismsim.sim import DeviceSpec, LinkSpec, simulate
from prismsim.sim.device_events import DeviceClock, DeviceEvent, check_events, read_events
from prismsim.sim.sampling import sample_inferences
from prismsim.userfiles import UserFileError
from prismsim.workload import Message, Task, Workload

GFLOP = 10**9
CPU = DeviceSpec(peak_gflops=1.0, efficiency=1.0)  # 1 GFLOP takes 1 s
GPU = CPU.model_copy(update={"staging_gbytes_per_s": 0.001})  # 1 MB copied in 1 s
LINK = LinkSpec(bandwidth_mbps=8)  # 1 MB takes 1 s, no latency
M0 = Message(id=0, src=0, dst=(1,), broadcast=False, tag="m0", shape=(250_000,),
             payload_bytes=1_000_000)


def _chain(first: list[Task] | None = None) -> Workload:
    """Device 0: ``first`` (1 s of compute), send 1 MB; device 1: receive, 2 s compute."""
    head = [Task("compute", "a", GFLOP)] if first is None else first
    return Workload(meta={}, messages=[M0], tasks=[
        [*head, Task("send", "m0", 0, (0,))],
        [Task("recv", "r", 0, (0,)), Task("compute", "b", 2 * GFLOP)]])


def _slow(device: int, start_s: float, end_s: float | None, factor: float) -> DeviceEvent:
    return DeviceEvent(device=device, kind="slowdown", start_s=start_s, end_s=end_s,
                       factor=factor)


def _away(device: int, start_s: float, end_s: float | None = None) -> DeviceEvent:
    return DeviceEvent(device=device, kind="leave", start_s=start_s, end_s=end_s)


@pytest.mark.parametrize("record", [False, True])
def test_a_step_slowed_in_its_middle(record):
    """Device 1 computes from 2 s; slowed x2 over [2.5, 3.5]: 0.5 s of work by 2.5, 0.5 s
    more by 3.5, the last 1 s by 4.5. It computed for all 2.5 s."""
    r = simulate(_chain(), CPU, LINK, record, events=[_slow(1, 2.5, 3.5, 2)])
    assert r.latency_s == pytest.approx(4.5)
    assert r.devices[1].compute_s == pytest.approx(2.5)
    assert r.lost is None


def test_slowdowns_in_force_together_multiply():
    """x2 over [0, 1] and x3 over [0.5, 1] on device 0's 1 s step: 0.25 s of work in
    [0, 0.5] (x2), 1/12 s in [0.5, 1] (x6), the other 2/3 s from 1 s at full speed: the
    step ends at 5/3 s, the inference at 5/3 + 1 + 2."""
    events = [_slow(0, 0, 1, 2), _slow(0, 0.5, 1, 3)]
    assert simulate(_chain(), CPU, LINK, events=events).latency_s == pytest.approx(
        5 / 3 + 3)


def test_a_slowdown_to_the_end():
    """Device 1 slowed x1.5 from 0 on: its 2 s step takes 3 s, from 2 s to 5 s."""
    r = simulate(_chain(), CPU, LINK, events=[_slow(1, 0, None, 1.5)])
    assert r.latency_s == pytest.approx(5.0)


@pytest.mark.parametrize("record", [False, True])
def test_a_device_that_leaves_mid_request_and_returns(record):
    """Device 1 leaves at 2.5 s, 0.5 s into its step, and returns at 3 s: the other
    1.5 s of work end at 4.5 s. Away is not computing: 2 s of compute."""
    r = simulate(_chain(), CPU, LINK, record, events=[_away(1, 2.5, 3.0)])
    assert r.latency_s == pytest.approx(4.5)
    assert r.devices[1].compute_s == pytest.approx(2.0)


def test_the_sender_away_sends_late():
    """Device 0 away over [0.5, 1.0] in its 1 s step: done at 1.5 s, 1 MB arrives at
    2.5 s, device 1 done at 4.5 s."""
    r = simulate(_chain(), CPU, LINK, events=[_away(0, 0.5, 1.0)])
    assert r.latency_s == pytest.approx(4.5)
    assert r.devices[0].finish_s == pytest.approx(1.5)


def test_a_message_that_arrives_while_the_device_is_away_waits_for_its_return():
    """The 1 MB arrives at 2 s while device 1 is away over [1.5, 3]: delivered at 3 s, so
    device 1 waited 3 s and ends at 3 + 2 = 5 s."""
    r = simulate(_chain(), CPU, LINK, events=[_away(1, 1.5, 3.0)])
    assert r.latency_s == pytest.approx(5.0)
    assert r.devices[1].wait_s == pytest.approx(3.0)


def test_a_device_away_at_the_start_begins_when_it_comes():
    """Device 0's program only sends; it is away until 0.5 s: the 1 MB arrives at 1.5 s
    (device 1 then computes to 3.5 s)."""
    wl = _chain(first=[])
    assert simulate(wl, CPU, LINK).latency_s == pytest.approx(3.0)
    assert simulate(wl, CPU, LINK, events=[_away(0, 0, 0.5)]).latency_s == pytest.approx(3.5)


def test_a_staging_copy_runs_on_the_devices_clock():
    """A GPU device copies 1 MB to host memory in 1 s before sending: device 0 computes
    to 1 s, copies to 2 s, sends to 3 s; device 1 copies back to 4 s, computes to 6 s.
    Device 0 slowed x2 over [1, 2]: its copy does half by 2 s and the rest by 2.5 s, so
    every later time moves 0.5 s: 6.5 s; its staging time is 1.5 s."""
    wl = _chain()
    assert simulate(wl, GPU, LINK).latency_s == pytest.approx(6.0)
    r = simulate(wl, GPU, LINK, events=[_slow(0, 1, 2, 2)])
    assert r.latency_s == pytest.approx(6.5)
    assert r.devices[0].staging_s == pytest.approx(1.5)


@pytest.mark.parametrize("record", [False, True])
def test_a_device_that_never_returns_leaves_the_inference_lost(record):
    """Device 1 leaves at 2.5 s for good, 0.5 s into its step: lost, in one line; the
    replay ends at 2.5 s with device 1's 0.5 s of compute counted."""
    r = simulate(_chain(), CPU, LINK, record, events=[_away(1, 2.5)])
    assert r.lost == "device 1 left at 2500 ms and never returned"
    assert math.isinf(r.latency_s)
    assert r.makespan_s == pytest.approx(2.5)
    assert r.devices[1].compute_s == pytest.approx(0.5)


def test_the_receiver_gone_before_its_message_is_lost_too():
    """Device 1 leaves at 1.5 s for good; the 1 MB for it arrives at 2 s, never taken."""
    r = simulate(_chain(), CPU, LINK, events=[_away(1, 1.5)])
    assert r.lost == "device 1 left at 1500 ms and never returned"


def test_a_device_that_leaves_after_its_part_is_done_costs_nothing():
    """Device 1 is done at 4 s; leaving for good at 5 s changes nothing."""
    r = simulate(_chain(), CPU, LINK, events=[_away(1, 5.0)])
    assert r.latency_s == pytest.approx(4.0) and r.lost is None


def test_no_events_is_the_replay_as_before():
    """The figures without events, to the last digit: 4 s, and device 1 waited 2 s."""
    for record in (False, True):
        before = simulate(_chain(), CPU, LINK, record)
        assert simulate(_chain(), CPU, LINK, record, events=()) == before
        assert before.latency_s == 4.0 and before.devices[1].wait_s == 2.0
        assert before.lost is None


def test_an_unmatched_receive_without_events_is_still_an_error():
    wl = Workload(meta={}, messages=[M0], tasks=[[], [Task("recv", "r", 0, (0,))]])
    with pytest.raises(RuntimeError, match="messages never sent"):
        simulate(wl, CPU, LINK)


def test_sampled_inferences_lost_count_and_tail():
    """Without variability every sample is the lost replay: all lost, every quantile inf."""
    s = sample_inferences(_chain(), CPU, LINK, 4, events=[_away(1, 2.5)])
    assert s.lost == 4
    assert math.isinf(s.quantile_s(0.5)) and math.isinf(s.summary()["latency_p99_s"])


def test_the_clock_by_hand():
    """Slowed x2 over [1, 2], away over [3, 4], gone from 6 s."""
    clock = DeviceClock([_slow(0, 1, 2, 2), _away(0, 3, 4), _away(0, 6)])
    assert clock.finish_s(0.5, 1.0) == pytest.approx(2.0)  # 0.5 s + 1 s at half speed
    assert clock.finish_s(2.5, 1.0) == pytest.approx(4.5)  # 0.5 s, away 1 s, 0.5 s
    assert clock.finish_s(5.5, 1.0) == math.inf  # 0.5 s done when it leaves for good
    assert clock.present_s(3.2) == 4.0 and clock.present_s(2.0) == 2.0
    assert clock.present_s(7.0) == math.inf
    assert clock.away_s(2.5, 4.5) == pytest.approx(1.0)
    assert clock.gone_s == 6.0 and DeviceClock([_away(0, 3, 4)]).gone_s is None


def test_events_describe_themselves():
    assert _slow(1, 0.01, 0.03, 2).describe() == "device 1 slowed x2 from 10 ms to 30 ms"
    assert _slow(1, 0.01, None, 1.5).describe() == "device 1 slowed x1.5 from 10 ms on"
    assert _away(2, 0.04).describe() == "device 2 leaves at 40 ms and never returns"
    assert _away(2, 0.04, 0.06).describe() == "device 2 leaves at 40 ms and returns at 60 ms"


@pytest.mark.parametrize(("text", "message"), [
    ("- {device: 1, kind: slowdown, start_s: 0.03, end_s: 0.01, factor: 2}\n",
     "events[0]: end_s: 0.01 is not after start_s 0.03"),
    ("- {device: 1, kind: slowdown, start_s: 0.01}\n", "events[0]: factor: a "
                                                      "slowdown needs one"),
    ("- {device: 1, kind: leave, start_s: 0.01, factor: 2}\n",
     "events[0]: factor: only a slowdown has one"),
    ("- {device: 1, kind: leave, start_s: 0.01, speed: 2}\n",
     "events[0].speed: Extra inputs are not permitted"),
    ("- {device: 1, kind: melt, start_s: 0}\n", "events[0].kind: Input should be"),
    ("- {device: 1, kind: slowdown, start_s: 0, factor: 0.5}\n",
     "events[0].factor: Input should be greater than or equal to 1"),
    ("- 3\n", "events[0]: expected a mapping of fields"),
    ("device: 1\n", "device: unknown key"),
])
def test_bad_events_are_one_line_naming_file_and_key(tmp_path, text, message):
    path = tmp_path / "ev.yaml"
    path.write_text(text)
    with pytest.raises(UserFileError, match=re.escape(f"{path}: {message}")):
        read_events(path)


def test_an_event_on_a_device_the_point_lacks():
    with pytest.raises(UserFileError, match=re.escape(
            "ev.yaml: events[1].device: 5, but the point has 3 devices (0..2)")):
        check_events([_away(1, 0.5), _away(5, 0.5)], 3, "ev.yaml")


def test_events_file_as_a_list_or_under_events(tmp_path):
    listed, keyed = tmp_path / "a.yaml", tmp_path / "b.yaml"
    listed.write_text("- {device: 2, kind: leave, start_s: 0.04}\n")
    keyed.write_text("events:\n  - {device: 2, kind: leave, start_s: 0.04}\n")
    assert read_events(listed) == read_events(keyed) == [_away(2, 0.04)]


def _cli(tmp_path, text: str, *more: str):
    path = tmp_path / "ev.yaml"
    path.write_text(text)
    return CliRunner().invoke(main, ["simulate", "--model", "vit-base", "--strategy",
                                     "voltage", "--devices", "3", "--events", str(path),
                                     *more]), path


@pytest.mark.parametrize(("text", "message"), [
    ("- {device: 5, kind: leave, start_s: 0.04}\n",
     "events[0].device: 5, but the point has 3 devices (0..2)"),
    ("- {device: 1, kind: leave, start_s: 0.04, end_s: 0.01}\n",
     "events[0]: end_s: 0.01 is not after start_s 0.04"),
    ("- {device: 1, kind: leave, start_s: 0.04, until: 1}\n",
     "events[0].until: Extra inputs are not permitted"),
])
def test_simulate_refuses_bad_events_in_one_line(tmp_path, text, message):
    result, path = _cli(tmp_path, text)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"{path}: {message}" in lines[0]


def test_simulate_says_each_event_and_a_lost_inference(tmp_path):
    """ViT-B/16 voltage on 3 CPUs takes 263 ms: device 2 gone from 1 ms is lost."""
    result, _ = _cli(tmp_path, "- {device: 1, kind: slowdown, start_s: 0.01, end_s: 0.03, "
                               "factor: 2}\n- {device: 2, kind: leave, start_s: 0.001}\n")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:2] == ["device 1 slowed x2 from 10 ms to 30 ms",
                         "device 2 leaves at 1 ms and never returns"]
    assert "inference lost: device 2 left at 1 ms and never returned" in lines


SCENARIO = """name: moving
model: {{name: vit-base}}
strategies: [single, voltage]
devices: {{count: [1, 3]}}
network: {{link: ethernet-1g, bandwidth_mbps: 200{trace}}}
{events}
"""


def _scenario(tmp_path, trace: str = "", events: str = ""):
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.format(trace=trace, events=events))
    return path


def test_a_scenarios_events_apply_to_the_points_with_that_device(tmp_path):
    """single uses device 0 alone: an event on device 2 leaves it as it is; the key of
    every point moves with the world (and stays as before without one)."""
    still = load_scenario(_scenario(tmp_path))
    moving = load_scenario(_scenario(tmp_path, events="events: [{device: 2, kind: leave, "
                                                      "start_s: 0.04}]"))
    assert still.world == "" and len(moving.world) == 16
    single, voltage = moving.grid()
    assert moving.events_for(single) == [] and len(moving.events_for(voltage)) == 1
    assert [p.key() for p in still.grid()] != [p.key() for p in moving.grid()]
    assert [p.world for p in still.grid()] == ["", ""]


def test_a_scenarios_trace_is_read_beside_it(tmp_path):
    (tmp_path / "walk.csv").write_text("time_s,bandwidth_mbps\n0,100\n0.5,50\n")
    s = load_scenario(_scenario(tmp_path, ", trace: walk.csv, trace_start_s: 0.25"))
    link = s.link_for(s.grid()[1])
    assert link.trace is not None and link.trace.start_s == 0.25
    assert link.trace.bandwidth_mbps == (100.0, 50.0)
    assert s.trace_label == "walk.csv from 0.25 s"


@pytest.mark.parametrize(("trace", "events", "message"), [
    ("", "events: [{device: 3, kind: leave, start_s: 0}]",
     "s.yaml: events[0].device: 3, but the largest system of the grid has 3 devices (0..2)"),
    ("", "events: [{device: 1, kind: leave, start_s: 0, factor: 2}]",
     "s.yaml: events[0]: "),
    ("", "events: [{device: 1, kind: leave, start_s: 0, factor: 2}]",
     "factor: only a slowdown has one"),
    (", trace: none.csv", "", "s.yaml: network.trace: "),
    (", trace_start_s: 1", "", "s.yaml: network.trace_start_s: goes with network.trace"),
])
def test_a_scenarios_bad_events_or_trace_are_one_line(tmp_path, trace, events, message):
    with pytest.raises(UserFileError, match=re.escape(message)):
        load_scenario(_scenario(tmp_path, trace, events))
