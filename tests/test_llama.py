"""The Llama family (GQA, RoPE, SwiGLU, no biases) in the uniform stack: every exact
strategy reproduces the HF eager forward of small random Llama and Qwen2 models; prism
rotates means at their segments' positions; the FLOP tracer counts a Llama stack."""

import functools

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from prismsim import run_numerics
from prismsim.executors.trace import trace_workload
from prismsim.models.load import adapt
from prismsim.models.stack import ModelStack
from prismsim.numerics.segments import segment_positions
from prismsim.strategies import CannotRunError
from tests.conftest import rel_err

TOKENS = 17  # partitions 9/8 and 6/6/5: uneven
SMALL = dict(hidden_size=96, num_attention_heads=6, num_key_value_heads=3, num_hidden_layers=3,
             intermediate_size=128, vocab_size=101, max_position_embeddings=64,
             rope_theta=100000.0, attn_implementation="eager")
LLAMA3 = {"rope_type": "llama3", "rope_theta": 100000.0, "factor": 8.0,
          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8}


def _config(name: str):
    if name == "llama":
        return LlamaConfig(**SMALL, tie_word_embeddings=True)
    if name == "llama3-scaled":
        return LlamaConfig(**{**SMALL, "rope_theta": None}, tie_word_embeddings=True,
                           rope_parameters=LLAMA3)
    assert name == "qwen2"
    return Qwen2Config(**SMALL, tie_word_embeddings=False)


@functools.cache
def _model(name: str) -> tuple[ModelStack, torch.Tensor, torch.Tensor]:
    """(stack, input ids [2, 17], HF eager logits [2, 17, 101]) of a seeded random model."""
    cfg = _config(name)
    torch.manual_seed(0)
    cls = Qwen2ForCausalLM if name == "qwen2" else LlamaForCausalLM
    hf = cls(cfg).float()
    if name == "qwen2":  # random (not zero) q/k/v biases, so they are exercised
        for layer in hf.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                torch.nn.init.normal_(proj.bias, std=0.5)
    stack = adapt(hf)
    ids = torch.randint(0, cfg.vocab_size, (2, TOKENS), generator=torch.Generator().manual_seed(1))
    return stack, ids, stack.reference({"input_ids": ids})


EXACT = [("single", 1), ("voltage", 2), ("voltage", 3), ("tensor_parallel", 2),
         ("tensor_parallel", 3), ("galaxy", 2)]


@pytest.mark.parametrize(("strategy", "devices"), EXACT)
@pytest.mark.parametrize("name", ["llama", "llama3-scaled", "qwen2"])
def test_exact_strategies_are_the_hf_forward(name, strategy, devices):
    stack, ids, ref = _model(name)
    out = run_numerics(stack, ids, strategy, devices)
    assert out.shape == ref.shape == (2, TOKENS, 101)
    assert rel_err(out, ref) <= 1e-5


def test_the_models_are_what_the_tests_claim():
    stack, _, _ = _model("llama")
    block = stack.blocks[0]
    assert (block.n_heads, block.n_kv_heads, block.group, block.head_dim) == (6, 3, 2, 16)
    assert block.q.bias is None and block.fc2.bias is None and block.up is not None
    assert stack.hf.lm_head.weight is stack.hf.model.embed_tokens.weight  # tied
    assert stack.family == "llama" and stack.causal and stack.has_rope
    qwen = _model("qwen2")[0]
    assert qwen.blocks[0].q.bias is not None and qwen.blocks[0].o.bias is None
    assert qwen.hf.lm_head.weight is not qwen.hf.model.embed_tokens.weight  # untied
    scaled = _model("llama3-scaled")[0]
    plain_freq = stack.hf.model.rotary_emb.inv_freq
    assert not torch.allclose(scaled.hf.model.rotary_emb.inv_freq, plain_freq)


class _AtZero(torch.nn.Module):
    """A rope that rotates everything at position 0."""

    def __init__(self, rope):
        super().__init__()
        self.inner = rope

    def forward(self, t, positions):
        return self.inner(t, torch.zeros_like(positions))


def test_rope_matters_so_positions_are_checked():
    """Rotating every query and key at position 0 changes the output: the exact tests
    would catch queries or keys rotated at wrong positions."""
    stack, ids, ref = _model("llama")
    rope = stack.blocks[0].rope
    try:
        for b in stack.blocks:
            b.rope = _AtZero(rope)
        assert rel_err(run_numerics(stack, ids, "single", 1), ref) > 1e-3
    finally:
        for b in stack.blocks:
            b.rope = rope


@pytest.mark.parametrize("devices", [2, 3])
def test_prism_with_one_mean_per_token_is_single(devices):
    stack, ids, ref = _model("llama")
    single = run_numerics(stack, ids, "single", 1)
    for where in ("center", "end", "start"):  # one-token segments: all at the token
        prism = run_numerics(stack, ids, "prism", devices, cr=1, rope_position=where)
        assert rel_err(prism, single) <= 1e-6
        assert rel_err(prism, ref) <= 1e-5


def test_prism_with_compression_is_finite_and_differs():
    stack, ids, ref = _model("llama")
    outs = {where: run_numerics(stack, ids, "prism", 3, cr=3, rope_position=where)
            for where in ("center", "end", "start")}
    for out in outs.values():
        assert torch.isfinite(out).all()
        assert rel_err(out, ref) > 1e-3
    assert rel_err(outs["center"], outs["end"]) > 1e-4  # the option changes the keys
    assert rel_err(outs["center"], outs["start"]) > 1e-4
    dup = run_numerics(stack, ids, "prism", 3, cr=3, duplicate=True)
    assert rel_err(dup, outs["center"]) <= 1e-5  # copies of a mean share its position


def test_segment_positions_by_hand():
    assert segment_positions(6, (2, 2, 1), "center") == [6.5, 8.5, 10.0]
    assert segment_positions(6, (2, 2, 1), "end") == [7.0, 9.0, 10.0]
    assert segment_positions(6, (2, 2, 1), "start") == [6.0, 8.0, 10.0]
    with pytest.raises(ValueError, match="rope position"):
        segment_positions(0, (1,), "middle")
    with pytest.raises(ValueError, match="rope_position"):
        run_numerics(_model("llama")[0], _model("llama")[1], "prism", 2, cr=2,
                     rope_position="middle")


def test_tensor_parallel_needs_whole_kv_groups():
    stack, ids, _ = _model("llama")  # 6 query heads over 3 KV heads
    for strategy in ("tensor_parallel", "galaxy"):
        with pytest.raises(CannotRunError,
                           match=f"{strategy} needs P <= 3: this model has only 3 KV heads"):
            run_numerics(stack, ids, strategy, 4)


def test_position_dependent_rope_and_sliding_windows_are_refused():
    dynamic = {"rope_type": "dynamic", "rope_theta": 100000.0, "factor": 2.0}
    hf = LlamaForCausalLM(LlamaConfig(**{**SMALL, "rope_theta": None}, rope_parameters=dynamic))
    with pytest.raises(ValueError, match="rope type 'dynamic'"):
        adapt(hf)
    hf = Qwen2ForCausalLM(Qwen2Config(**SMALL, use_sliding_window=True, sliding_window=4,
                                      max_window_layers=1))
    with pytest.raises(ValueError, match="sliding-window"):
        adapt(hf)


def _hand_flops(cfg) -> int:
    """2 x tokens x (matmul parameters per layer x layers + lm_head) + QK^T and AV."""
    d, n, h, kv, inter = (cfg.hidden_size, TOKENS, cfg.num_attention_heads,
                          cfg.num_key_value_heads, cfg.intermediate_size)
    dh = d // h
    per_layer = d * h * dh + 2 * d * kv * dh + h * dh * d + 3 * d * inter  # q, k, v, o, MLP
    linear = 2 * n * (per_layer * cfg.num_hidden_layers + d * cfg.vocab_size)
    attn = 2 * 2 * n * n * dh * h * cfg.num_hidden_layers
    return linear + attn


def test_the_flop_tracer_counts_a_llama_stack():
    stack, _, _ = _model("llama")
    single = trace_workload(stack, "single", 1, tokens=TOKENS)
    assert single.flops_per_device()[0] == pytest.approx(_hand_flops(stack.hf.config), rel=0.01)
    prism = trace_workload(stack, "prism", 2, tokens=TOKENS, cr=2)
    assert all(f > 0 for f in prism.flops_per_device())
    assert len(prism.messages) > 0
