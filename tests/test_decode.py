"""Token-by-token decoding as per-device programs: the exact strategies generate the HF
model's own greedy tokens and teacher-forced logits; prism with one token per mean is
exact; the flash-decoding combine is exact; bytes per token and the growth of time per
output token with link latency match counts worked out by hand."""

import functools

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from prismsim.executors.memory import run_generation
from prismsim.executors.trace import trace_workload
from prismsim.models.load import adapt, load_model
from prismsim.models.stack import ModelStack
from prismsim.numerics.attention import attention, attention_lse, merge_lse
from prismsim.point import summary
from prismsim.sim import simulate
from prismsim.sim.catalog import load_catalog, pick

TOKENS, STEPS = 17, 6  # prompt partitions 9/8 and 6/6/5
LLAMA = dict(hidden_size=96, num_attention_heads=6, num_key_value_heads=3, num_hidden_layers=3,
             intermediate_size=128, vocab_size=101, max_position_embeddings=64,
             rope_theta=100000.0, attn_implementation="eager", tie_word_embeddings=True)


@functools.cache
def _model(name: str) -> tuple[ModelStack, torch.Tensor]:
    """(stack, prompt ids [2, 17]) of a seeded random causal LM."""
    torch.manual_seed(0)
    if name == "llama":
        hf = LlamaForCausalLM(LlamaConfig(**LLAMA))
    else:
        hf = GPT2LMHeadModel(GPT2Config(n_embd=96, n_head=6, n_layer=3, vocab_size=101,
                                        n_positions=64, attn_implementation="eager"))
    ids = torch.randint(0, 101, (2, TOKENS), generator=torch.Generator().manual_seed(1))
    return adapt(hf.float().eval()), ids


@torch.no_grad()
def _hf_greedy(hf: torch.nn.Module, ids: torch.Tensor, steps: int) -> torch.Tensor:
    """The HF model's greedy continuation [B, steps]: a full eager forward per token."""
    for _ in range(steps):
        ids = torch.cat([ids, hf(input_ids=ids).logits[:, -1:].argmax(-1)], dim=1)
    return ids[:, -steps:]


EXACT = [("single", 1, {}), ("voltage", 2, {}), ("voltage", 3, {}),
         ("voltage", 3, {"decode": "local"}), ("tensor_parallel", 2, {}),
         ("tensor_parallel", 3, {}), ("tensor_parallel", 3, {"allreduce": "direct"}),
         ("prism", 3, {"cr": 1})]  # one token a mean: the means are the rows


@pytest.mark.parametrize(("strategy", "devices", "options"), EXACT)
@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_exact_decoding_is_the_hf_models(name, strategy, devices, options):
    stack, ids = _model(name)
    greedy = _hf_greedy(stack.hf, ids, STEPS)
    out = run_generation(stack, ids, STEPS, strategy, devices, **options)
    assert torch.equal(out.tokens, greedy)
    # teacher forcing on the greedy tokens: the logits of the full forward's last rows
    with torch.no_grad():
        full = stack.hf(input_ids=torch.cat([ids, greedy], dim=1)).logits  # [2, 23, 101]
    assert out.logits.shape == (2, STEPS, 101)
    assert (out.logits - full[:, TOKENS - 1:-1]).abs().max() < 1e-5


def test_forced_tokens_are_taken_and_scored():
    stack, ids = _model("llama")
    forced = torch.randint(0, 101, (2, STEPS), generator=torch.Generator().manual_seed(2))
    out = run_generation(stack, ids, STEPS, "voltage", 3, forced=forced)
    assert torch.equal(out.tokens, forced)
    with torch.no_grad():
        full = stack.hf(input_ids=torch.cat([ids, forced], dim=1)).logits
    assert (out.logits - full[:, TOKENS - 1:-1]).abs().max() < 1e-5


def test_prism_decoding_differs_and_stays_close():
    stack, ids = _model("llama")
    greedy = _hf_greedy(stack.hf, ids, STEPS)
    single = run_generation(stack, ids, STEPS, forced=greedy)
    prism = run_generation(stack, ids, STEPS, "prism", 3, cr=3, forced=greedy)
    gap = (prism.logits - single.logits).abs().max()
    assert 1e-4 < gap < 1.0 * single.logits.abs().max()


def test_split_kv_merge_is_attention_over_all_keys():
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(2, 4, 1, 8, generator=gen)
    k, v = torch.randn(2, 2, 10, 8, generator=gen), torch.randn(2, 2, 10, 8, generator=gen)
    parts = [attention_lse(q, k[:, :, s], v[:, :, s], None, 0.3)
             for s in (slice(0, 3), slice(3, 4), slice(4, 10))]
    assert parts[0].shape == (2, 4, 1, 9)
    # one shard's log-sum-exp by hand
    k0 = k[:, :, :3].repeat_interleave(2, dim=1)
    lse = torch.logsumexp((q @ k0.transpose(-1, -2)) * 0.3, dim=-1)
    assert torch.allclose(parts[0][..., -1], lse, atol=1e-6)
    assert torch.allclose(merge_lse(parts), attention(q, k, v, None, 0.3), atol=1e-6)


def test_models_that_cannot_decode_say_so():
    stack, ids = _model("llama")
    with pytest.raises(ValueError, match="no decoding"):
        run_generation(stack, ids, 2, "galaxy", 2)
    vit = load_model("vit-tiny")
    with pytest.raises(ValueError, match="causal language model"):
        run_generation(vit, torch.zeros(1, 3, 224, 224), 2, "voltage", 2)
    with pytest.raises(ValueError, match="at least one token"):
        run_generation(stack, ids, 0)


def _tpot_s(wl, latency_ms: float) -> float:
    devices, links = load_catalog(None)
    link = pick(links, "ethernet-1g", "link").model_copy(update={"latency_ms": latency_ms})
    result = simulate(wl, pick(devices, "cpu-2core-2.1ghz", "device"), link, record=True)
    return summary(wl, result)["tpot_s"]


@pytest.mark.parametrize(("strategy", "devices", "options", "hops_per_layer"), [
    ("voltage", 2, {}, 2),  # the query out, the partial back
    ("voltage", 3, {}, 2),  # both shards answer in parallel
    ("tensor_parallel", 2, {}, 4),  # two ring AllReduces of 2 (P - 1) steps each
    ("tensor_parallel", 3, {}, 8),
    ("voltage", 3, {"decode": "local"}, 0),  # the last device has every key
    ("prism", 3, {"cr": 2}, 0),  # the Segment Means stand for the old tokens
])
def test_time_per_token_grows_by_layers_times_hops_times_latency(strategy, devices, options,
                                                                 hops_per_layer):
    """Decoding is latency-bound: 10 ms more one-way latency adds 3 layers x hops x 10 ms
    to each output token (the master's input row overlaps the first ring step)."""
    stack, _ = _model("llama")
    wl = trace_workload(stack, strategy, devices, tokens=TOKENS, generate=4, **options)
    growth_s = _tpot_s(wl, 11.0) - _tpot_s(wl, 1.0)
    assert growth_s == pytest.approx(3 * hops_per_layer * 0.010, abs=1e-9)


def test_bytes_per_token_by_hand():
    """d = 96, 6 heads of 16, 3 blocks, fp32. voltage split-KV at P = 3, per block: the
    query (96 floats) to 2 devices, 2 partials of 6 x 17 floats back: 2 x 384 + 2 x 408 =
    1,584 bytes; 4,752 a token. tensor_parallel at P = 3: the input row to 2 devices
    (768 bytes), then per block 2 ring AllReduces, each device sending 4 chunks of 32
    floats (3 x 512 bytes each): 768 + 3 x 2 x 1,536 = 9,984."""
    stack, _ = _model("llama")
    for strategy, expected in (("voltage", 4752), ("tensor_parallel", 9984)):
        wl = trace_workload(stack, strategy, 3, tokens=TOKENS, generate=3)
        devices, links = load_catalog(None)
        result = simulate(wl, pick(devices, "cpu-2core-2.1ghz", "device"),
                          pick(links, "ethernet-1g", "link"), record=True)
        info = summary(wl, result)
        assert info["bytes_per_token"] == expected
        assert info["generate"] == 3 and info["ttft_s"] < info["ttft_s"] + info["tpot_s"]
