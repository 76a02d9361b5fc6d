"""Device processes sharing a host's cores (processor sharing): schedules by hand."""

from __future__ import annotations

import pytest
import simpy

from prismsim.sim import DeviceSpec, HostSpec, LinkSpec, simulate
from prismsim.sim.host import SharedHost
from prismsim.workload import Message, Task, Workload

CPU = DeviceSpec(peak_gflops=1.0, efficiency=1.0)  # 1e9 FLOPs take 1 s alone
FAST_LINK = LinkSpec(bandwidth_mbps=1e9, latency_ms=0)  # a 4-byte message takes ~0 s


def _compute(seconds: float) -> Task:
    return Task("compute", "c", int(seconds * 1e9))


def _msg(i: int, src: int, dst: int) -> Message:
    return Message(id=i, src=src, dst=(dst,), broadcast=False, tag=f"m{i}", shape=(1,),
                   payload_bytes=4)


def test_three_processes_on_two_cores_share_them():
    wl = Workload({}, [[_compute(1.0)]] * 3)
    r = simulate(wl, CPU, FAST_LINK, host=HostSpec(cores=2))
    assert r.latency_s == pytest.approx(1.5)  # each at 2/3 of its speed
    assert [d.compute_s for d in r.devices] == pytest.approx([1.5] * 3)
    assert simulate(wl, CPU, FAST_LINK).latency_s == pytest.approx(1.0)  # own hardware


def test_a_blocked_process_frees_its_share():
    """One core. 0..2 s: devices 0 (1 s of work) and 2 (2 s) at half speed, device 1
    waits for device 0's message; 2..4 s: devices 1 (1 s) and 2 (its last 1 s) at half
    speed. Without sharing it would be 2 s."""
    wl = Workload({}, [
        [_compute(1.0), Task("send", "m0", messages=(0,))],
        [Task("recv", "r", messages=(0,)), _compute(1.0)],
        [_compute(2.0)]], [_msg(0, 0, 1)])
    r = simulate(wl, CPU, FAST_LINK, host=HostSpec(cores=1))
    assert r.latency_s == pytest.approx(4.0)
    assert r.devices[1].wait_s == pytest.approx(2.0)
    assert simulate(wl, CPU, FAST_LINK).latency_s == pytest.approx(2.0)


def test_corun_slows_processes_beyond_their_core_share():
    wl = Workload({}, [[_compute(1.0)]] * 2)
    host = HostSpec(cores=2, corun=[1.0, 0.8])  # two at once: 80 % each
    assert simulate(wl, CPU, FAST_LINK, host=host).latency_s == pytest.approx(1.25)
    three = Workload({}, [[_compute(1.0)]] * 3)  # the last factor holds for more
    assert simulate(three, CPU, FAST_LINK, host=host).latency_s == pytest.approx(1.5 / 0.8)


def test_message_cpu_competes_with_compute():
    """One core, 0.5 s of CPU per message at each end. At 0 device 0 sends (its 0.5 s job
    runs in the background) and computes 1 s; device 1 takes the arrival (0.5 s job).
    Three jobs at 1/3: the two message jobs end at 1.5 s (device 1's receive returns),
    device 0 has 0.5 s left, alone: ends at 2.0 s."""
    wl = Workload({}, [
        [Task("send", "m0", messages=(0,)), _compute(1.0)],
        [Task("recv", "r", messages=(0,))]], [_msg(0, 0, 1)])
    host = HostSpec(cores=1, message_cpu_us=500_000)
    r = simulate(wl, CPU, FAST_LINK, host=host)
    assert r.devices[1].finish_s == pytest.approx(1.5)
    assert r.latency_s == pytest.approx(2.0)


def test_jobs_joining_midway():
    """Job a (2.5 s) alone until 1 s, then b (1 s) joins on one core: both at half
    speed, b ends at 3 s with a's last 0.5 s left, a ends at 3.5 s."""
    env = simpy.Environment()
    host = SharedHost(env, cores=1)
    ends = {}

    def job(name, start, seconds):
        yield env.timeout(start)
        yield host.run(seconds)
        ends[name] = env.now

    env.process(job("a", 0.0, 2.5))
    env.process(job("b", 1.0, 1.0))
    env.run()
    assert ends == pytest.approx({"a": 3.5, "b": 3.0})
