"""Exchange patterns of the position-wise strategies: unicast copies ("p2p"), one
broadcast, or torch.distributed's all_gather ring ("ring"), the same program in every
executor: exact numerics, the ring's messages by hand, and hand-computed timings."""

from __future__ import annotations

import pytest
import torch

from prismsim import load_model, run_numerics
from prismsim.executors.memory import run_in_memory
from prismsim.executors.trace import Recorder, TracingContext, trace_workload
from prismsim.models.load import random_inputs
from prismsim.sim import DeviceSpec, LinkSpec, simulate
from prismsim.strategies.program import ALL, AllGather, Expect, Recv, Tag, send
from prismsim.workload import Workload

MB = 1_000_000
FAST = DeviceSpec(peak_gflops=1e6, efficiency=1.0)  # compute takes no time here


@pytest.mark.parametrize("model", ["vit-tiny", "gpt2-tiny"])
def test_ring_is_exact(model):
    stack = load_model(model)
    inputs = random_inputs(stack, batch=2, seed=3)
    single = run_numerics(stack, inputs, "single", 1)
    for p in (2, 3):
        ring = run_numerics(stack, inputs, "voltage", p, exchange="ring")
        assert torch.allclose(ring, single, atol=1e-5, rtol=0), (model, p)
        means = run_numerics(stack, inputs, "prism", p, cr=4, exchange="ring")
        p2p = run_numerics(stack, inputs, "prism", p, cr=4)
        assert torch.allclose(means, p2p, atol=1e-6, rtol=0), (model, p)


def _programs(n: int, numel: int):
    def gather(ctx):
        out = yield AllGather(torch.arange(numel, dtype=torch.float32) + 100 * ctx.device,
                              Tag("x", 0))
        return out
    ctxs = [TracingContext(p, (1,) * n, 1, 1) for p in range(n)]
    return ctxs, [gather(c) for c in ctxs]


@pytest.mark.parametrize(("n", "numel"), [(2, 6), (3, 7), (4, 1)])
def test_gloo_ring_gathers_every_block_in_order(n, numel):
    ctxs, programs = _programs(n, numel)
    results = run_in_memory(programs, Recorder(ctxs, "fp32"))
    expected = torch.stack([torch.arange(numel, dtype=torch.float32) + 100 * p
                            for p in range(n)])
    for out in results:
        assert torch.equal(out, expected)


def _traced(n: int, programs_of) -> Workload:  # type: ignore[no-untyped-def]
    ctxs = [TracingContext(p, (1,) * n, 1, 1) for p in range(n)]
    rec = Recorder(ctxs, "fp32")
    run_in_memory([programs_of(c) for c in ctxs], rec)
    return Workload(meta={}, tasks=[c.tasks for c in ctxs], messages=rec.messages)


def _ring(numel: int):  # type: ignore[no-untyped-def]
    def program(ctx):
        yield AllGather(torch.zeros(numel), Tag("x", 0))
    return program


def test_ring_messages_by_hand():
    """GLOO's ring on 3 devices: 2(P-1) = 4 operations a device, each one half of a
    block, always to the next device."""
    wl = _traced(3, _ring(MB // 4))  # 1 MB blocks: chunks of 500 kB
    assert len(wl.messages) == 3 * 4
    assert {m.payload_bytes for m in wl.messages} == {MB // 2}
    assert all(m.dst == ((m.src + 1) % 3,) for m in wl.messages)
    kinds = [t.kind for t in wl.tasks[0]]
    # ops 0, 1: send, post; ops 2, 3: take op i-2's receive, send, post; then two receives
    assert kinds == ["send", "post"] * 2 + ["recv", "send", "post"] * 2 + ["recv"] * 2


def test_voltage_ring_workload_by_hand():
    """vit-tiny (197 tokens, d=192) on 3 devices: rows 66/66/65 padded to 66 and halved:
    66 x 192 / 2 = 6,336 floats a message; 4 a device after each of blocks 0-2."""
    wl = trace_workload("vit-tiny", "voltage", 3, exchange="ring")
    layered = [m for m in wl.messages if m.layer is not None]
    assert len(layered) == 3 * 3 * 4
    assert {m.payload_bytes for m in layered} == {6_336 * 4}


# Timings by hand: 8 Mbit/s = 1 MB/s, so a 500 kB chunk takes t = 0.5 s on a link and a
# whole 1 MB block 2t = 1 s; L is the one-way latency.
T = 0.5


@pytest.mark.parametrize(("latency_s", "expected_s"), [
    (0.75, 3 * T + 2 * 0.75),  # L >= t: three chunk times and two latencies
    (0.1, 4 * T + 0.1),        # L < t: the uplink is the bottleneck: 2(P-1) chunks, one L
])
def test_ring_timing_by_hand(latency_s, expected_s):
    """Device d: ops 0 and 1 leave at once (uplink busy t each); op 2 forwards op 0's
    chunk when it arrives (t + L) or when the uplink frees (2t); op 3 likewise."""
    wl = _traced(3, _ring(MB // 4))
    link = LinkSpec(bandwidth_mbps=8, latency_ms=latency_s * 1e3)
    assert simulate(wl, FAST, link).latency_s == pytest.approx(expected_s)


def test_ring_with_rendezvous_waits_four_latencies():
    """GLOO's rendezvous: a chunk leaves once its receive is posted and the sender has
    heard of it (one L). Op 0: posted at 0, sent L..L+t, arrives 2L+t. Op 1: L+t..L+2t,
    arrives 2L+2t. Op 2 is posted when op 0 arrives: sent 3L+t..3L+2t, arrives 4L+2t.
    Op 3: sent 3L+2t..3L+3t, arrives 4L+3t: four latencies per gather at P = 3."""
    wl = _traced(3, _ring(MB // 4))
    link = LinkSpec(bandwidth_mbps=8, latency_ms=750, rendezvous=True)
    assert simulate(wl, FAST, link).latency_s == pytest.approx(4 * 0.75 + 3 * T)


def _fan_out(dst):  # type: ignore[no-untyped-def]
    def program(ctx):
        yield send(ctx.device, dst(ctx), Tag("x", 0), torch.zeros(MB // 4))
        yield Recv(tuple(Expect(q, Tag("x", 0), (MB // 4,)) for q in ctx.others()))
    return program


def test_p2p_timing_by_hand():
    """3 devices, unicast: each sends its 1 MB block to the two others one after the
    other (2t each on its uplink). Device 0 -> 1 at 0..1 s, 0 -> 2 at 1..2 s; device 1's
    first copy (to 0) 0..1, then to 2: its downlink is free at 1 (0's copy went to 1)
    but 0 -> 2 holds 2's downlink until 2: 2..3 s; device 2 -> 0 waits for 0's downlink
    (1 -> 0 until 1): 1..2, then 2 -> 1 at 2..3. The last arrives at 3 s + L."""
    wl = _traced(3, _fan_out(lambda ctx: ctx.others()))
    assert not any(m.broadcast for m in wl.messages)
    link = LinkSpec(bandwidth_mbps=8, latency_ms=100)
    assert simulate(wl, FAST, link).latency_s == pytest.approx(3.0 + 0.1)


def test_broadcast_timing_by_hand():
    """Switched: one transmission reaches both others but needs both their downlinks:
    device 0 at 0..1 s, device 1 waits for 2's downlink (1..2), device 2 for 0's and 1's
    (2..3): 3 s + L, as the unicast fan-out. On one shared channel (WiFi) the broadcast
    is 3 transmissions of 1 s, the unicast fan-out 6."""
    wl = _traced(3, _fan_out(lambda ctx: ALL))
    assert all(m.broadcast for m in wl.messages)
    link = LinkSpec(bandwidth_mbps=8, latency_ms=100, broadcast=True)
    assert simulate(wl, FAST, link).latency_s == pytest.approx(3.0 + 0.1)
    shared = link.model_copy(update={"medium": "shared"})
    assert simulate(wl, FAST, shared).latency_s == pytest.approx(3.0 + 0.1)
    unicast = shared.model_copy(update={"broadcast": False})
    assert simulate(wl, FAST, unicast).latency_s == pytest.approx(6.0 + 0.1)


def test_a_transport_with_its_own_all_gather_is_used():
    """Real runs (GlooTransport) gather with the library's collective: the driver hands
    it the op and sends no messages of its own."""
    from prismsim.strategies.driver import Driver

    class Native:
        n_devices, sent = 3, []

        def send(self, device, op):
            self.sent.append(op)

        def all_gather(self, device, op):
            return torch.stack([op.tensor] * self.n_devices)

        def finish(self, device):
            pass

    def program():
        out = yield AllGather(torch.ones(2), Tag("x"))
        return out

    driver = Driver(0, program(), Native())
    driver.advance()
    assert driver.done and driver.result.shape == (3, 2) and Native.sent == []
