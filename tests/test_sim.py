"""The simulator against hand-computed times and energies."""

import json
from itertools import pairwise

import pytest

from prismsim.sim import DeviceSpec, LinkSpec, simulate
from prismsim.sim.replay import Replay
from prismsim.sim.timeline import chrome_trace
from prismsim.workload import Message, Task, Workload

MB = 1_000_000
CPU = DeviceSpec(peak_gflops=1.0, efficiency=1.0)  # 1 GFLOP/s: 1e9 FLOPs take 1 s


def _msg(i, src, dst, n_bytes=MB, broadcast=False):
    return Message(id=i, src=src, dst=tuple(dst), broadcast=broadcast, tag=f"m{i}",
                   shape=(n_bytes // 4,), payload_bytes=n_bytes)


def _send(i):
    return Task("send", f"m{i}", 0, (i,))


def _recv(*ids):
    return Task("recv", "r", 0, tuple(ids))


def _wl(tasks, messages):
    return Workload(meta={}, tasks=tasks, messages=messages)


def test_one_megabyte_over_8_mbps_with_1_ms_latency():
    wl = _wl([[_send(0)], [_recv(0)]], [_msg(0, 0, [1])])
    link = LinkSpec(bandwidth_mbps=8, latency_ms=1)
    assert simulate(wl, CPU, link).latency_s == pytest.approx(1.001)  # 8e6 bits / 8e6 + 1 ms


def test_shared_medium_serializes_simultaneous_senders():
    wl = _wl([[_send(0)], [_send(1)], [_recv(0, 1)]], [_msg(0, 0, [2]), _msg(1, 1, [2])])
    shared = LinkSpec(medium="shared", bandwidth_mbps=8)
    assert simulate(wl, CPU, shared).latency_s == pytest.approx(2.0)  # one after the other
    via_ap = LinkSpec(medium="shared", bandwidth_mbps=8, relay=True)
    assert simulate(wl, CPU, via_ap).latency_s == pytest.approx(4.0)  # every frame twice
    switched = LinkSpec(medium="switched", bandwidth_mbps=8)
    # full-duplex ports, but both copies need device 2's downlink: serialized there too
    assert simulate(wl, CPU, switched).latency_s == pytest.approx(2.0)
    wl_two = _wl([[_send(0)], [_send(1)], [_recv(0)], [_recv(1)]],
                 [_msg(0, 0, [2]), _msg(1, 1, [3])])
    assert simulate(wl_two, CPU, switched).latency_s == pytest.approx(1.0)  # in parallel


def test_broadcast_is_one_transmission_unicast_three():
    wl = _wl([[_send(0)], [_recv(0)], [_recv(0)], [_recv(0)]],
             [_msg(0, 0, [1, 2, 3], broadcast=True)])
    unicast = simulate(wl, CPU, LinkSpec(bandwidth_mbps=8))
    broadcast = simulate(wl, CPU, LinkSpec(bandwidth_mbps=8, broadcast=True))
    assert unicast.latency_s == pytest.approx(3.0)
    assert broadcast.latency_s == pytest.approx(1.0)
    assert unicast.devices[0].tx_s == pytest.approx(3.0)
    assert broadcast.devices[0].tx_s == pytest.approx(1.0)
    wifi_bc = LinkSpec(medium="shared", bandwidth_mbps=8, broadcast=True, broadcast_mbps=2)
    assert simulate(wl, CPU, wifi_bc).latency_s == pytest.approx(4.0)  # once, at 2 Mbit/s


def test_staging_at_both_ends():
    gpu = DeviceSpec(peak_gflops=1.0, efficiency=1.0, staging_us=100, staging_gbytes_per_s=1.0)
    wl = _wl([[_send(0)], [_recv(0)]], [_msg(0, 0, [1])])
    result = simulate(wl, gpu, LinkSpec(bandwidth_mbps=8, latency_ms=1))
    stage = 100e-6 + MB / 1e9  # fixed + bytes / bandwidth = 1.1 ms
    assert result.latency_s == pytest.approx(stage + 1.0 + 0.001 + stage)
    assert result.devices[0].staging_s == pytest.approx(stage)
    assert result.devices[1].staging_s == pytest.approx(stage)


def test_energy_is_power_times_time_per_state():
    dev = DeviceSpec(peak_gflops=1.0, efficiency=1.0, idle_w=1, compute_w=5, tx_w=3, rx_w=2)
    wl = _wl([[Task("compute", "c", 10**9), _send(0)], [_recv(0)]], [_msg(0, 0, [1])])
    result = simulate(wl, dev, LinkSpec(bandwidth_mbps=8))
    assert result.latency_s == pytest.approx(2.0)
    # device 0: computes 0-1 s (5 W), transmits 1-2 s (3 W): 8 J
    # device 1: idle 0-1 s (1 W), receives 1-2 s (2 W): 3 J
    assert result.devices[0].energy_j == pytest.approx(8.0)
    assert result.devices[1].energy_j == pytest.approx(3.0)
    assert result.energy_j == pytest.approx(11.0)
    assert result.devices[1].wait_s == pytest.approx(2.0)
    assert result.idle_s(0) == pytest.approx(1.0)  # done after its send at 1 s


def test_roofline_takes_the_larger_time():
    task = Task("compute", "c", 10**9, memory_bytes=10**9)
    wl = _wl([[task]], [])
    assert simulate(wl, CPU, LinkSpec(bandwidth_mbps=1)).latency_s == pytest.approx(1.0)
    slow_memory = DeviceSpec(peak_gflops=1.0, efficiency=1.0, mem_bandwidth_gbytes_per_s=0.5)
    assert simulate(wl, slow_memory, LinkSpec(bandwidth_mbps=1)).latency_s == pytest.approx(2.0)


def test_header_and_per_message_overhead():
    wl = _wl([[_send(0)], [_recv(0)]], [_msg(0, 0, [1])])
    link = LinkSpec(bandwidth_mbps=8, per_message_us=500, header_bytes=1000)
    # 500 us + (1e6 + 1e3) bytes * 8 / 8e6 bit/s = 0.0005 + 1.001
    assert simulate(wl, CPU, link).latency_s == pytest.approx(1.0015)


def test_trace_export_in_microseconds():
    wl = _wl([[Task("compute", "c", 10**9), _send(0)], [_recv(0)]], [_msg(0, 0, [1])])
    result = simulate(wl, CPU, LinkSpec(bandwidth_mbps=8), record=True)
    events = [e for e in chrome_trace(result)["traceEvents"] if e["ph"] == "X"]
    spans = {(e["pid"], e["cat"]): (e["ts"], e["dur"]) for e in events}
    assert spans[(0, "compute")] == pytest.approx((0.0, 1e6))
    assert spans[(0, "tx")] == pytest.approx((1e6, 1e6))
    assert spans[(1, "wait")] == pytest.approx((0.0, 2e6))
    json.dumps(chrome_trace(result))  # serializable


def test_vit_prism_latency_falls_with_bandwidth_and_bytes_balance(paper):
    from prismsim.executors.trace import trace_workload
    from prismsim.sim.catalog import builtin_devices

    wl = trace_workload(paper("vit-base")[0], "prism", 3, segments=10)
    cpu = builtin_devices()["cpu-2core-2.1ghz"]
    latencies = [simulate(wl, cpu, LinkSpec(bandwidth_mbps=bw, latency_ms=1)).latency_s
                 for bw in (50, 100, 200, 400, 800, 1000)]
    assert all(a > b for a, b in pairwise(latencies))
    result = simulate(wl, cpu, LinkSpec(bandwidth_mbps=200))
    sent = sum(d.bytes_sent for d in result.devices)
    assert sent == sum(d.bytes_received for d in result.devices)  # unicast: every copy lands
    assert sent == sum(wl.bytes_sent_per_device())


def test_workload_device_count_must_match():
    wl = _wl([[_send(0)], [_recv(0)]], [_msg(0, 0, [1])])
    with pytest.raises(ValueError, match="2 devices"):
        simulate(wl, [CPU], LinkSpec(bandwidth_mbps=8))


def _compute(seconds):
    return Task("compute", "c", int(seconds * 1e9))  # at 1 GFLOP/s


def test_rendezvous_send_waits_for_the_posted_receive():
    # device 0 sends 1 MB at t=0; device 1 computes 1 s, then posts its receive.
    wl = _wl([[_send(0)], [_compute(1.0), _recv(0)]], [_msg(0, 0, [1])])
    eager = LinkSpec(bandwidth_mbps=8, latency_ms=100)
    gloo = LinkSpec(bandwidth_mbps=8, latency_ms=100, rendezvous=True)
    # eager: data leaves at 0 and arrives at 1 s + 0.1 s, just after the receive is posted
    assert simulate(wl, CPU, eager).latency_s == pytest.approx(1.1)
    # rendezvous: posted at 1.0, the sender hears at 1.1, 1 s on the wire, +0.1 s = 2.2
    assert simulate(wl, CPU, gloo).latency_s == pytest.approx(2.2)


def test_rendezvous_late_send_goes_at_once():
    # the receive is posted at 0 (sender hears at 0.1); the send comes at 1.0: no wait
    wl = _wl([[_compute(1.0), _send(0)], [_recv(0)]], [_msg(0, 0, [1])])
    gloo = LinkSpec(bandwidth_mbps=8, latency_ms=100, rendezvous=True)
    assert simulate(wl, CPU, gloo).latency_s == pytest.approx(1.0 + 1.0 + 0.1)


def test_rendezvous_copies_to_two_receivers_share_the_uplink():
    # a message to devices 1 and 2, both post at 0.5: copies go one after the other on the
    # sender's uplink from t = 0.6 (unicast): 0.6 + 1 + 0.1 and 0.6 + 2 + 0.1
    wl = _wl([[_send(0)], [_compute(0.5), _recv(0)], [_compute(0.5), _recv(0)]],
             [_msg(0, 0, [1, 2])])
    gloo = LinkSpec(bandwidth_mbps=8, latency_ms=100, rendezvous=True)
    result = simulate(wl, CPU, gloo)
    assert result.latency_s == pytest.approx(2.7)
    assert sorted(d.finish_s for d in result.devices[1:]) == pytest.approx([1.7, 2.7])


def test_rendezvous_notice_waits_behind_data_to_the_same_peer():
    """1 MB each way at 8 Mbit/s, 100 ms. Device 0 posts its receive at 0 (device 1
    hears at 0.1), computes 1 s and sends. Device 1 computes 0.5 s and sends: its data
    goes at once, 0.5 to 1.5, and arrives at 1.6; its receive, posted at 0.5, sends a
    notice down the same connection behind that 1 MB: it reaches device 0 at 1.6, whose
    data then goes 1.6 to 2.6 and arrives at 2.7 (without the queue: 1.0 + 1 + 0.1).
    A copy that waits for the peer's own notice is not on the connection yet: when both
    send, then receive, from 0, each notice goes at once (both arrive at 0.1 + 1 + 0.1)."""
    wl = _wl([[_post(1), _compute(1.0), _send(0), _recv(1)],
              [_compute(0.5), _send(1), _recv(0)]],
             [_msg(0, 0, [1]), _msg(1, 1, [0])])
    gloo = LinkSpec(bandwidth_mbps=8, latency_ms=100, rendezvous=True)
    result = simulate(wl, CPU, gloo)
    assert [d.finish_s for d in result.devices] == pytest.approx([1.6, 2.7])
    both = _wl([[_send(0), _recv(1)], [_send(1), _recv(0)]],
               [_msg(0, 0, [1]), _msg(1, 1, [0])])
    assert [d.finish_s for d in simulate(both, CPU, gloo).devices] == pytest.approx([1.2, 1.2])
    # data to another peer does not hold the notice: device 2 sends 1 MB to device 1
    # first, then posts for device 0's message, heard at 0.1: 0.1 + 1 + 0.1
    other = _wl([[_send(0)], [_recv(1)], [_send(1), _recv(0)]],
                [_msg(0, 0, [2]), _msg(1, 2, [1])])
    assert simulate(other, CPU, gloo).devices[2].finish_s == pytest.approx(1.2)


def test_devices_waiting_for_the_request_have_their_first_receive_posted():
    # devices 1 and 2 start by receiving: idle before the request, their receives were
    # posted before it, so the copies leave at once: 0 + 1 + 0.1 and 0 + 2 + 0.1
    wl = _wl([[_send(0)], [_recv(0)], [_recv(0)]], [_msg(0, 0, [1, 2])])
    gloo = LinkSpec(bandwidth_mbps=8, latency_ms=100, rendezvous=True)
    result = simulate(wl, CPU, gloo)
    assert sorted(d.finish_s for d in result.devices[1:]) == pytest.approx([1.1, 2.1])
    # the master is not waiting for anything before the request: its own first receive
    # is posted when it gets there (at 0), the sender hears at 0.1: 0.1 + 1 + 0.1
    back = _wl([[_recv(0)], [_send(0)]], [_msg(0, 1, [0])])
    assert simulate(back, CPU, gloo).latency_s == pytest.approx(1.2)


def test_a_replay_hands_each_message_or_rendezvous_copy_to_its_transmit_hook():
    """Device 0 computes 1 s, then sends one message to devices 1 and 2 (1 MB at 8 Mbit/s,
    100 ms latency). Eager: the message once, at 1 s. Rendezvous: both receives were
    posted ahead (devices idle before the request), so one copy a receiver, both at 1 s,
    arriving 1 + 1 + 0.1 and 1 + 2 + 0.1 (one uplink)."""
    wl = _wl([[_compute(1.0), _send(0)], [_recv(0)], [_recv(0)]], [_msg(0, 0, [1, 2])])

    class Logged(Replay):
        def transmit(self, key: int, msg: Message, at_s: float) -> None:
            handed.append((key, msg.dst, at_s))
            super().transmit(key, msg, at_s)

    for rendezvous, calls, finish_s in [(False, [(0, (1, 2), 1.0)], [2.1, 3.1]),
                                        (True, [(0, (1,), 1.0), (0, (2,), 1.0)], [2.1, 3.1])]:
        handed: list[tuple[int, tuple[int, ...], float]] = []
        link = LinkSpec(bandwidth_mbps=8, latency_ms=100, rendezvous=rendezvous)
        result = Logged(wl, [CPU] * 3, link, record=False).run()
        assert handed == [(k, d, pytest.approx(t)) for k, d, t in calls]
        assert sorted(d.finish_s for d in result.devices[1:]) == pytest.approx(finish_s)


def test_message_delay_adds_to_data_not_to_the_handshake_or_the_medium():
    wl = _wl([[_send(0)], [_compute(1.0), _recv(0)]], [_msg(0, 0, [1])])
    gloo = LinkSpec(bandwidth_mbps=8, latency_ms=100, message_delay_us=50_000, rendezvous=True)
    # posted at 1.0, sender hears at 1.1 (latency only), 1 s on the wire, +0.1 +0.05
    assert simulate(wl, CPU, gloo).latency_s == pytest.approx(2.25)
    back_to_back = _wl([[_send(0), _send(1)], [_recv(0, 1)]],
                       [_msg(0, 0, [1]), _msg(1, 0, [1])])
    eager = LinkSpec(bandwidth_mbps=8, latency_ms=1, message_delay_us=5_000)
    # the second copy starts when the first ends (1 s): the delay does not hold the uplink
    assert simulate(back_to_back, CPU, eager).latency_s == pytest.approx(2.0 + 0.006)


def _post(*ids):
    return Task("post", "p", 0, tuple(ids))


def test_rendezvous_early_post_hides_the_handshake():
    # device 1 sends 1 MB at t=0; device 0 posts its receive at 0, computes 1 s, receives.
    posted = _wl([[_post(0), _compute(1.0), _recv(0)], [_send(0)]], [_msg(0, 1, [0])])
    late = _wl([[_compute(1.0), _recv(0)], [_send(0)]], [_msg(0, 1, [0])])
    gloo = LinkSpec(bandwidth_mbps=8, latency_ms=100, rendezvous=True)
    # posted at 0, the sender hears at 0.1, 1 s on the wire, +0.1 s = 1.2 (not 2.2)
    result = simulate(posted, CPU, gloo)
    assert result.latency_s == pytest.approx(1.2)
    assert result.devices[1].bytes_sent == MB  # the receive does not post (send) it again
    assert simulate(late, CPU, gloo).latency_s == pytest.approx(2.2)
    eager = LinkSpec(bandwidth_mbps=8, latency_ms=100)  # a post is free and changes nothing
    assert simulate(posted, CPU, eager).latency_s == pytest.approx(1.1)


def test_rendezvous_receive_keeps_the_earlier_post():
    # posted at 0 (sender hears at 0.1), received at 1.0, sent at 1.05: the data leaves at
    # once, 1.05 + 1 + 0.1 = 2.15; posting again at the receive would hold it to 1.1 (2.2)
    wl = _wl([[_compute(1.05), _send(0)], [_post(0), _compute(1.0), _recv(0)]],
             [_msg(0, 0, [1])])
    gloo = LinkSpec(bandwidth_mbps=8, latency_ms=100, rendezvous=True)
    assert simulate(wl, CPU, gloo).latency_s == pytest.approx(2.15)


def test_prepared_operations_neither_keep_their_workload_nor_mix_device_specs():
    """Operations are prepared once per workload, device and spec, and reused: each spec
    still gets its own times (1e9 FLOPs at 1, 2, 4 GFLOP/s, then 1 MB at 8 Mbit/s:
    1 s), and a workload the caller lets go is freed."""
    import gc
    import weakref

    wl = _wl([[Task("compute", "c", 10**9), _send(0)], [_recv(0)]], [_msg(0, 0, [1])])
    link, gflops = LinkSpec(bandwidth_mbps=8), (1.0, 2.0, 4.0)
    devices = [DeviceSpec(peak_gflops=g, efficiency=1.0) for g in gflops]
    for _ in range(2):  # the second round reads what the first prepared
        for g, device in zip(gflops, devices, strict=True):
            assert simulate(wl, device, link).latency_s == pytest.approx(1 / g + 1)
    freed = weakref.ref(wl)
    del wl
    gc.collect()
    assert freed() is None
