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


def test_a_device_under_a_cpu_quota_goes_no_faster_than_its_share():
    """Two cores, three devices of 1 s each; device 2 may use a quarter of a core. It
    gets 0.25, the other two share the 1.75 left: they end at 1 / 0.875 = 8/7 s. Device 2
    stays at 0.25 with the cores idle: 1 / 0.25 = 4 s. With co-run factors (0.8 for two
    or more processes) the quota'd process is one of the three slowed: the others run at
    0.875 x 0.8 = 0.7 (1/0.7 s) and device 2 at 0.25 x 0.8 = 0.2; then alone at 0.25."""
    wl = Workload({}, [[_compute(1.0)]] * 3)
    r = simulate(wl, CPU, FAST_LINK, host=HostSpec(cores=2, cpu_share={2: 0.25}))
    assert [d.finish_s for d in r.devices] == pytest.approx([8 / 7, 8 / 7, 4.0])
    corun = HostSpec(cores=2, corun=[1.0, 0.8], cpu_share={2: 0.25})
    r = simulate(wl, CPU, FAST_LINK, host=corun)
    first_s = 1 / 0.7
    assert [d.finish_s for d in r.devices] == pytest.approx(
        [first_s, first_s, first_s + (1 - 0.2 * first_s) / 0.25])


def test_a_quota_with_a_period_runs_freely_until_its_share_of_the_period_is_used():
    """Half a core in periods of 2 ms (Linux's CFS: 1 ms of CPU each). A 2 ms step from 0
    runs 0-1, waits for the period at 2, runs 2-3: 3 ms, not the smooth cap's 4. A
    0.5 ms step then a 1 ms one: 0-0.5, then 0.5-1.0 uses the period's last 0.5 ms, the
    rest 2.0-2.5. The quota is the process's: what one step used, the next cannot."""
    host = HostSpec(cores=1, cpu_share={0: 0.5}, quota_period_s=2e-3)
    one = Workload({}, [[_compute(2e-3)]])
    assert simulate(one, CPU, FAST_LINK, host=host).latency_s == pytest.approx(3e-3)
    smooth = host.model_copy(update={"quota_period_s": 0.0})
    assert simulate(one, CPU, FAST_LINK, host=smooth).latency_s == pytest.approx(4e-3)
    two = Workload({}, [[_compute(0.5e-3), _compute(1e-3)]])
    assert simulate(two, CPU, FAST_LINK, host=host).latency_s == pytest.approx(2.5e-3)


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
    """One core, 0.5 s of CPU per message at each end. At 0 device 0 sends: the send's
    0.5 s job, alone on the core, holds its program until 0.5 s (the sending program does
    it), and the data leaves then. Device 1 takes the arrival (0.5 s job) while device 0
    computes 1 s: both at 1/2, device 1's receive returns at 1.5 s; device 0 has 0.5 s
    left, alone: ends at 2.0 s, having computed from 0.5 s on."""
    wl = Workload({}, [
        [Task("send", "m0", messages=(0,)), _compute(1.0)],
        [Task("recv", "r", messages=(0,))]], [_msg(0, 0, 1)])
    host = HostSpec(cores=1, message_cpu_us=500_000)
    r = simulate(wl, CPU, FAST_LINK, host=host)
    assert r.devices[1].finish_s == pytest.approx(1.5)
    assert r.latency_s == pytest.approx(2.0)
    assert r.devices[0].compute_s == pytest.approx(1.5)


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


def test_water_filling_gives_capped_jobs_their_cap_and_the_rest_the_remainder():
    from prismsim.sim.host import water_fill

    # 2 cores: a job capped at 0.2 takes it; two full jobs share the 1.8 left (0.9 each)
    assert water_fill([0.2, None, None], 2) == pytest.approx([0.2, 0.9, 0.9])
    # a cap above the equal share is not reached: three jobs on 1 core, 1/3 each
    assert water_fill([0.5, None, None], 1) == pytest.approx([1 / 3] * 3)
    assert water_fill([None], 4) == pytest.approx([1.0])  # one job never has two cores
    assert water_fill([3.0], 2) == pytest.approx([2.0])  # nor more cores than there are


def test_a_capped_job_takes_only_its_cap_from_the_others():
    """One core. A compute job of 1 s and a capped job of 0.25 s at 0.25 cores start
    together: the capped one runs at 0.25 until it is done at 1 s, the compute job at
    0.75 meanwhile (0.75 s done), then alone: its last 0.25 s ends at 1.25 s."""
    env = simpy.Environment()
    host = SharedHost(env, cores=1)
    ends = {}

    def job(name, seconds, cap=None):
        yield host.run(seconds, cap)
        ends[name] = env.now

    env.process(job("compute", 1.0))
    env.process(job("network", 0.25, cap=0.25))
    env.run()
    assert ends == pytest.approx({"compute": 1.25, "network": 1.0})


def test_the_network_takes_host_cpu_while_a_message_is_on_the_air():
    """One core; a 1e6-byte message at 8 Mbit/s is on the air 0..1 s and costs the host
    250 ns a byte (0.25 s spread over that second: a cap of 0.25 cores). The receiver
    computes 1 s from 0: 0.75 done by 1 s, the last 0.25 alone: it ends at 1.25 s; the
    sender, idle after sending, is not slowed."""
    msg = Message(id=0, src=0, dst=(1,), broadcast=False, tag="m0", shape=(1,),
                  payload_bytes=1_000_000)
    wl = Workload({}, [[Task("send", "m0", messages=(0,))],
                       [_compute(1.0), Task("recv", "r", messages=(0,))]], [msg])
    link = LinkSpec(bandwidth_mbps=8, latency_ms=0)
    plain = simulate(wl, CPU, link, host=HostSpec(cores=1))
    assert plain.devices[1].finish_s == pytest.approx(1.0)
    host = HostSpec(cores=1, network_cpu_ns_per_byte=250)
    r = simulate(wl, CPU, link, host=host)
    assert r.devices[1].compute_s == pytest.approx(1.25)
    assert r.latency_s == pytest.approx(1.25)


def test_the_first_step_after_a_wait_pays_for_the_wait():
    """Device 1 waits 1 s for device 0's message (0's 1 s of compute), then computes
    0.5 s twice in a row. Waking after 1000 ms blocked costs 100 ms (interpolated
    between 0.5 s: 50 ms and 2 s: 200 ms), on its first step only: it ends at
    1 + 0.6 + 0.5 = 2.1 s. Device 0, never blocked, pays nothing."""
    wl = Workload({}, [
        [_compute(1.0), Task("send", "m0", messages=(0,))],
        [Task("recv", "r", messages=(0,)), _compute(0.5), Task("send", "m1", messages=(1,)),
         _compute(0.5)],
        [Task("recv", "r", messages=(1,))]],
        [_msg(0, 0, 1), _msg(1, 1, 2)])
    host = HostSpec(cores=3, wake_us_by_idle_ms=((500.0, 50_000.0), (2000.0, 200_000.0)))
    r = simulate(wl, CPU, FAST_LINK, host=host, record=True)
    assert r.devices[0].finish_s == pytest.approx(1.0)
    assert r.devices[1].finish_s == pytest.approx(2.1)
    assert host.wake_s(0.25) == pytest.approx(0.025)  # from 0 at no wait
    assert host.wake_s(5.0) == pytest.approx(0.2)  # the end value beyond


def test_a_host_short_of_cpu_slows_the_transfer_itself():
    """One core. Device 0 sends 1e6 bytes at 8 Mbit/s (on the air 0..1 s) to device 2,
    at 1 us of host CPU a byte: 1 s of work wanting one core; device 1 computes 1 s from
    0. They share the core (1/2 each): both are done at 2 s, and the data is through only
    then: device 2 has it at 2 s, not at 1 s."""
    msg = Message(id=0, src=0, dst=(2,), broadcast=False, tag="m0", shape=(1,),
                  payload_bytes=1_000_000)
    wl = Workload({}, [[Task("send", "m0", messages=(0,))], [_compute(1.0)],
                       [Task("recv", "r", messages=(0,))]], [msg])
    link = LinkSpec(bandwidth_mbps=8, latency_ms=0)
    assert simulate(wl, CPU, link, host=HostSpec(cores=1)).devices[2].finish_s == \
        pytest.approx(1.0)
    r = simulate(wl, CPU, link, host=HostSpec(cores=1, network_cpu_ns_per_byte=1000))
    assert r.devices[1].finish_s == pytest.approx(2.0)
    assert r.devices[2].finish_s == pytest.approx(2.0)


def test_a_host_that_slows_down_mid_step_stretches_the_rest_of_it():
    """A 10 ms step; the host runs at half speed from 4 ms: 4 ms done by then, the other
    6 take 12: it ends at 16 ms. Back to full speed at 10 ms: 3 more done by then, the
    last 3 at full speed: 13 ms."""
    wl = Workload({}, [[_compute(10e-3)]])
    slow = HostSpec(cores=1, speed_steps=((0.004, 2.0),))
    assert simulate(wl, CPU, FAST_LINK, host=slow).latency_s * 1e3 == pytest.approx(16.0)
    back = HostSpec(cores=1, speed_steps=((0.004, 2.0), (0.010, 1.0)))
    assert simulate(wl, CPU, FAST_LINK, host=back).latency_s * 1e3 == pytest.approx(13.0)
