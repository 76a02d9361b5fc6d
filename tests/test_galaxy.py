"""galaxy: exact against the HF forward (P = 2, 3; tiles; unequal speeds), its ring
collectives and bytes by hand, and a simulated latency below tensor_parallel's where
its overlap hides transfers (hand-computed times)."""

import pytest
import torch
from transformers import (
    BertConfig,
    BertModel,
    Dinov2Config,
    Dinov2ForImageClassification,
    GPT2Config,
    GPT2Model,
    ViTConfig,
    ViTModel,
)

from prismsim import load_model, run_numerics
from prismsim.executors.memory import InMemoryNetwork, run_in_memory
from prismsim.executors.trace import trace_workload
from prismsim.models.load import random_inputs
from prismsim.sim import DeviceSpec, LinkSpec, simulate
from prismsim.strategies import tensor_parallel
from prismsim.strategies.collectives import allgather, reduce_scatter
from prismsim.strategies.program import DeviceContext, Tag
from prismsim.workload import Workload
from tests.conftest import rel_err

# 6 heads of 8 dims, 96 MLP columns: enough heads for 3 devices at speeds 2:1:1
SMALL = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=6, intermediate_size=96)


def _models():
    torch.manual_seed(0)
    yield ViTModel(ViTConfig(**SMALL, image_size=32, patch_size=8))  # 17 tokens, all rows out
    yield Dinov2ForImageClassification(Dinov2Config(  # layer scale, [CLS] head, 17 tokens
        **{**SMALL, "mlp_ratio": 2}, image_size=56, patch_size=14, num_labels=3))
    yield BertModel(BertConfig(**SMALL, vocab_size=100))  # post-LN
    yield GPT2Model(GPT2Config(n_embd=48, n_layer=2, n_head=6, vocab_size=100))  # causal


# (devices, tiles, speeds of heads/columns, token weights)
CASES = [
    (2, 1, None, None),
    (2, 4, None, None),
    (3, 1, None, None),
    (3, 3, None, None),
    (2, 2, (1.0, 3.0), None),  # skewed heads, equal tokens
    (3, 2, (2.0, 1.0, 1.0), (2.0, 1.0, 1.0)),
]


@pytest.mark.parametrize("model", list(_models()), ids=lambda m: type(m).__name__)
@pytest.mark.parametrize(("devices", "tiles", "speeds", "weights"), CASES)
def test_exact_against_hf(model, devices, tiles, speeds, weights):
    stack = load_model(model)
    inputs = random_inputs(stack, batch=2, tokens=12)
    ref = stack.reference(inputs)
    out = run_numerics(stack, inputs, "galaxy", devices, weights=weights, tiles=tiles,
                       speeds=speeds)
    assert out.shape == ref.shape
    assert rel_err(out, ref) <= 1e-5


@pytest.mark.parametrize(("model", "devices"), [("bert-tiny", 2), ("gpt2-tiny", 2),
                                                 ("vit-tiny", 3)])
@pytest.mark.parametrize("tiles", [1, 4])
def test_builtins_equal_single(model, devices, tiles):
    stack = load_model(model)
    inputs = random_inputs(stack, batch=2, seed=1)
    single = run_numerics(stack, inputs, "single")
    assert rel_err(run_numerics(stack, inputs, "galaxy", devices, tiles=tiles), single) <= 1e-5


def test_heads_and_columns_follow_speeds():
    torch.manual_seed(0)
    block = load_model(BertModel(BertConfig(**SMALL, vocab_size=100))).blocks[0]
    shards = [tensor_parallel.shard(block, p, 3, (2.0, 1.0, 1.0)) for p in range(3)]
    # 6 heads x 2/4, 1/4, 1/4 = 3, 1.5, 1.5: floors 3, 1, 1 and the spare head to the first
    # largest remainder (device 1): 3, 2, 1 heads of 8 dims. 96 columns: 48, 24, 24.
    assert [s.q_w.shape[0] for s in shards] == [24, 16, 8]
    assert [s.o_w.shape[1] for s in shards] == [24, 16, 8]
    assert [s.fc1_w.shape[0] for s in shards] == [48, 24, 24]
    assert torch.equal(torch.cat([s.k_w for s in shards]), block.k.weight)
    assert torch.equal(torch.cat([s.fc2_w for s in shards], dim=1), block.fc2.weight)


def test_options_are_checked():
    with pytest.raises(ValueError, match="tiles"):
        run_numerics("bert-tiny", torch.zeros(1, 8, dtype=torch.long), "galaxy", 2, tiles=0)
    with pytest.raises(ValueError, match="positive"):
        run_numerics("bert-tiny", torch.zeros(1, 8, dtype=torch.long), "galaxy", 2,
                     speeds=(1.0, -1.0))
    with pytest.raises(ValueError, match="3 speeds for 2 devices"):
        run_numerics("bert-tiny", torch.zeros(1, 8, dtype=torch.long), "galaxy", 2,
                     speeds=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="only 2 heads"):
        run_numerics("bert-tiny", torch.zeros(1, 8, dtype=torch.long), "galaxy", 3)


def _collective(ctx, x, which):
    fn = reduce_scatter if which == "reduce_scatter" else allgather
    out = yield from fn(ctx, x, Tag("t"))
    return out


def test_ring_collectives_by_hand():
    sizes, hidden = (3, 2, 1), 2  # 6 rows over 3 devices, 8 bytes a row
    ctxs = [DeviceContext(device=p, sizes=sizes, batch=1, hidden=hidden) for p in range(3)]
    net = InMemoryNetwork(3)
    parts = [torch.full((1, 6, hidden), float(10 ** p)) for p in range(3)]  # 1, 10, 100
    out = run_in_memory([_collective(c, parts[c.device], "reduce_scatter") for c in ctxs], net)
    for p in range(3):
        assert torch.equal(out[p], torch.full((1, sizes[p], hidden), 111.0))
    # device p sends every chunk but its own: 6 - n_p rows
    assert net.sent_bytes == [3 * 8, 4 * 8, 5 * 8]
    net = InMemoryNetwork(3)
    rows = [torch.full((1, sizes[p], hidden), float(p + 1)) for p in range(3)]
    out = run_in_memory([_collective(c, rows[c.device], "allgather") for c in ctxs], net)
    for p in range(3):
        assert out[p][0, :, 0].tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 3.0]
    # device p sends every chunk but its successor's: 6 - n_(p+1) rows
    assert net.sent_bytes == [4 * 8, 5 * 8, 3 * 8]
    assert net.sent_messages == [2, 2, 2]


def _block_bytes(wl):
    """Bytes each device sends inside the blocks (not the input or the output)."""
    out = [0] * wl.n_devices
    for m in wl.messages:
        if m.layer is not None:
            out[m.src] += m.payload_bytes * len(m.dst)
    return out


def test_bytes_and_messages_by_hand():
    """BERT, d = 48 (192 bytes a row in fp32), 12 tokens on 3 devices (4 rows each), 2 layers
    = 4 sub-layers. galaxy: per sub-layer a ring ReduceScatter and AllGather, each sending
    8 rows per device; the master scatters 8 input rows, the others return 4 output rows.
    tensor_parallel: per sub-layer a ring AllReduce of 4 steps of 4 rows; the master sends
    the whole 12-row input to 2 devices. The blocks cost both the same 64 rows."""
    torch.manual_seed(0)
    stack = load_model(BertModel(BertConfig(**SMALL, vocab_size=100)))
    galaxy = trace_workload(stack, "galaxy", 3, tokens=12, tiles=1)
    tp = trace_workload(stack, "tensor_parallel", 3, tokens=12)
    row = 48 * 4
    assert galaxy.bytes_sent_per_device() == [(8 + 64) * row, (64 + 4) * row, (64 + 4) * row]
    assert tp.bytes_sent_per_device() == [(24 + 64) * row, 64 * row, 64 * row]
    assert _block_bytes(galaxy) == _block_bytes(tp) == [64 * row] * 3
    # messages: 4 sub-layers x 2 collectives x 2 ring steps per device, + 2 in + 2 out
    assert len(galaxy.messages) == 3 * 16 + 4
    tiled = trace_workload(stack, "galaxy", 3, tokens=12, tiles=2)
    assert tiled.bytes_sent_per_device() == galaxy.bytes_sent_per_device()
    assert len(tiled.messages) == 3 * 16 * 2 + 4  # every ring message in two pieces


# A tiny BERT where compute and transfers are of the same size: d = 64, 4 heads of 16,
# 256 MLP columns, 2 layers, 32 tokens on 2 devices; 62.5 MFLOP/s devices (16 ns a FLOP)
# on an 8 Mbit/s switched link (1 us a byte).
MFLOPS = 62.5e6
CHUNK_S = 16 * 64 * 4 / 1e6  # 16 rows x 64 x 4 bytes = 4096 bytes: a = 4.096 ms


def test_galaxy_hides_transfers_tensor_parallel_waits_for():
    """Hand-computed FLOPs (fvcore: 2 per multiply-accumulate, a LayerNorm 5 MACs per
    element), per device and layer, heads 2 of 4 and MLP columns 128 of 256:
      attention  Q,K,V 3*32*64*32 + scores 2*32*32*16 + AV 2*32*32*16 + O 32*32*64
                 = 327680 MACs = 655360 FLOPs
      MLP        2*32*64*128 MACs = 1048576 FLOPs
      LayerNorms tensor_parallel: 2 x 5*32*64 MACs = 40960 FLOPs on all 32 rows;
                 galaxy: 20480 FLOPs, each device normalizes its own 16 rows only
    plus the master's embedding LayerNorm (20480 FLOPs).
    tensor_parallel: compute and transfers alternate with both devices in lock step, so
    every transfer is on the critical path: the 32-row input (2a), then per sub-layer a
    ring AllReduce of two one-chunk steps (2a), 4 sub-layers: 10a in all.
    galaxy: device 1 cannot start before the embedding and its 16 input rows (a), then has
    all its compute to do: a lower bound no schedule can beat."""
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=256, vocab_size=100)
    stack = load_model(BertModel(cfg))
    tp = trace_workload(stack, "tensor_parallel", 2, tokens=32)
    galaxy = {t: trace_workload(stack, "galaxy", 2, tokens=32, tiles=t) for t in (1, 2, 4, 8)}
    embed = 20480
    per_layer_tp = 655360 + 1048576 + 40960
    per_layer_galaxy = 655360 + 1048576 + 20480
    assert tp.flops_per_device() == [embed + 2 * per_layer_tp, 2 * per_layer_tp]
    assert galaxy[1].flops_per_device() == [embed + 2 * per_layer_galaxy, 2 * per_layer_galaxy]

    device = DeviceSpec(peak_gflops=MFLOPS / 1e9, efficiency=1.0)
    link = LinkSpec(bandwidth_mbps=8)
    latency = {t: simulate(wl, device, link).latency_s for t, wl in galaxy.items()}
    tp_s = simulate(tp, device, link).latency_s
    assert tp_s == pytest.approx((embed + 2 * per_layer_tp) / MFLOPS + 10 * CHUNK_S)  # 97.12 ms
    bound_s = (embed + 2 * per_layer_galaxy) / MFLOPS + CHUNK_S  # 59.60 ms
    assert bound_s <= latency[8] < latency[4] < latency[2] < latency[1] < tp_s
    # finer tiles hide more: with 4 tiles galaxy hides over half of TP's 10a of transfers
    assert tp_s - latency[4] > 10 * CHUNK_S / 2


def test_traced_posts_name_the_messages_later_receives_wait_for():
    """Every ring receive is posted a sub-layer ahead: each post task lists messages to
    this device that a later recv task of the same device waits for."""
    torch.manual_seed(0)
    stack = load_model(BertModel(BertConfig(**SMALL, vocab_size=100)))
    wl = trace_workload(stack, "galaxy", 3, tokens=12, tiles=2)
    for d, tasks in enumerate(wl.tasks):
        received = {m: i for i, t in enumerate(tasks) if t.kind == "recv" for m in t.messages}
        posted = {m: i for i, t in enumerate(tasks) if t.kind == "post" for m in t.messages}
        for t in (t for t in tasks if t.kind == "post"):
            assert [wl.messages[m].tag for m in t.messages] == t.label.split(",")
        assert all(d in wl.messages[m].dst and received[m] > i for m, i in posted.items())
        ring = {m for m in received if ".ag" in wl.messages[m].tag or ".rs" in wl.messages[m].tag}
        assert set(posted) == ring and len(ring) == 4 * 2 * 2 * 2  # sub-layers x 2 x steps x tiles
    again = Workload.from_json(wl.to_json())
    assert again.tasks == wl.tasks


def test_posted_receives_keep_tiles_fast_on_a_rendezvous_link():
    """The tiny BERT above on 3 devices, 8 Mbit/s with 4 ms latency, GLOO rendezvous.
    Without posts every piece paid a handshake: 4 tiles took 621 ms against 237 ms for
    1 tile (98.5 and 123.1 ms eager). With posts only the input scatter and the output
    gather wait for handshakes: 4 tiles stay the fastest, within 3 latencies of eager."""
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=256, vocab_size=100)
    stack = load_model(BertModel(cfg))
    galaxy = {t: trace_workload(stack, "galaxy", 3, tokens=32, tiles=t) for t in (1, 4)}
    tp = trace_workload(stack, "tensor_parallel", 3, tokens=32)
    device = DeviceSpec(peak_gflops=MFLOPS / 1e9, efficiency=1.0)
    eager = LinkSpec(bandwidth_mbps=8, latency_ms=4)
    gloo = LinkSpec(bandwidth_mbps=8, latency_ms=4, rendezvous=True)
    rv = {t: simulate(wl, device, gloo).latency_s for t, wl in galaxy.items()}
    assert rv[4] < rv[1] < simulate(tp, device, gloo).latency_s
    assert rv[4] - simulate(galaxy[4], device, eager).latency_s < 3 * 0.004
    assert rv[1] - rv[4] > 0.9 * (simulate(galaxy[1], device, eager).latency_s
                                  - simulate(galaxy[4], device, eager).latency_s)
