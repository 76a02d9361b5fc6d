"""Straggler-aware re-split by hand: a split group whose device slows down moves its
share of the work to the other device after a detection window."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.serve.engine import serve
from prismsim.serve.requests import ServingSetup
from prismsim.serve.resplit import Resplit
from prismsim.sim import DeviceSpec, LinkSpec
from prismsim.sim.device_events import DeviceEvent
from prismsim.workload import Message, Task, Workload

CPU = DeviceSpec(peak_gflops=1.0, efficiency=1.0)  # 1e9 FLOPs take 1 s
LINK = LinkSpec(bandwidth_mbps=1e9, latency_ms=0)  # a 4-byte message takes ~0 s
WORK_S = 1.0  # one request's compute, split between the two devices by their weights


def _split(weights: tuple[float, ...]) -> dict[int, Workload]:
    """Device p computes its share w_p / sum(w) of 1 s; device 1 then sends to 0."""
    share = [w / sum(weights) for w in weights]
    msg = Message(id=0, src=1, dst=(0,), broadcast=False, tag="m0", shape=(1,),
                  payload_bytes=4)
    tasks = [[Task("compute", "c", round(share[0] * WORK_S * 1e9)),
              Task("recv", "r", messages=(0,))],
             [Task("compute", "c", round(share[1] * WORK_S * 1e9)),
              Task("send", "m0", messages=(0,))]]
    return {1: Workload({"output_device": 0}, tasks, [msg])}


def _serve(resplit: Resplit | None) -> list[float]:
    """Device 1 slowed x2 from 0 s on; a request every 2 s from 0 to 10 s."""
    setup = ServingSetup(_split((1.0, 1.0)), resplit=resplit)
    slow = [DeviceEvent(device=1, kind="slowdown", start_s=0.0, factor=2.0)]
    res = serve(setup, [2.0 * i for i in range(6)], CPU, LINK, events=slow)
    return [r.finish_s - r.arrival_s for r in res.requests]


def test_without_a_resplit_every_request_waits_for_the_slow_device():
    """Each device computes 0.5 s; device 1 at half speed takes 1 s: 1 s a request."""
    assert _serve(None) == pytest.approx([1.0] * 6)


def test_a_resplit_moves_the_slow_devices_share_after_the_window():
    """Window 3 s: after the request of 2 s is done (at 3 s) the parts of the last 3 s
    (requests 0 and 2: device 0 took 0.5 s for 0.5 s of work, device 1 1 s) give speeds
    1 and 0.5: shares 2/3 and 1/3. Device 0 then computes 0.667 s, device 1 0.333 s at
    half speed, 0.667 s: from the request of 4 s on, 0.667 s a request."""
    rule = Resplit(_split, window_s=3.0, threshold=1.2)
    assert _serve(rule) == pytest.approx([1.0, 1.0] + [2 / 3] * 4)


def test_a_small_change_stays_under_the_threshold():
    """Shares 1/2 -> 2/3 change by 4/3 for device 0 and 3/2 for device 1: a threshold of
    1.6 keeps the even split."""
    assert _serve(Resplit(_split, window_s=3.0, threshold=1.6)) == pytest.approx([1.0] * 6)


def test_the_group_splits_back_once_the_device_recovers():
    """Device 1 slowed x2 over [0, 6] s only. Split 2:1 at 3 s (as above): the requests
    of 4, 6 and 8 s take 2/3 s (device 0's 0.667 s). At 6.667 s the window [3.667,
    6.667] gives device 1 a speed of (1/3 + 1/3) / (2/3 + 1/3) = 2/3, rounded 0.65:
    shares 0.606 and 0.394, within 1.2 of 2/3 and 1/3, so no change; at 8.667 s the
    window holds only full-speed parts: even shares again, 0.5 s a request from 10 s."""
    setup = ServingSetup(_split((1.0, 1.0)), resplit=Resplit(_split, window_s=3.0))
    slow = [DeviceEvent(device=1, kind="slowdown", start_s=0.0, end_s=6.0, factor=2.0)]
    res = serve(setup, [2.0 * i for i in range(8)], CPU, LINK, events=slow)
    assert [r.finish_s - r.arrival_s for r in res.requests] == pytest.approx(
        [1.0, 1.0, 2 / 3, 2 / 3, 2 / 3, 0.5, 0.5, 0.5])


def test_a_resplit_on_an_adaptive_configuration_is_one_line(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("""name: r
model: {name: vit-tiny}
configurations:
  - {strategy: single, devices: 1, resplit: {window_ms: 500}}
serving: {rates_per_s: [1], requests: 20, warmup: 0, replications: 1}
""")
    result = CliRunner().invoke(main, ["serve", str(path), "-o", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "r.yaml: configurations[0].resplit: only a fixed group of 2 or more devices" \
        in result.output and len(result.output.strip().splitlines()) == 1, result.output
