"""SmolLM2-135M-Instruct converted from its GGUF (models/gguf_llama.py): the Q/K row
un-permutation by hand, greedy decoding against the known answer of transformers' own GGUF
loader, the exact strategies against the HF eager forward, and the config read from the file.

The real-model tests read the pinned ``smollm2-135m-gguf`` asset that `prismsim assets fetch`
puts in the user's asset folder; the first converts it (~10 s) into this session's cache.
"""

import functools

import numpy as np
import pytest
import torch

from prismsim import run_numerics
from prismsim.accuracy import evaluate
from prismsim.datasets import wiki_bytes
from prismsim.executors.memory import run_generation
from prismsim.models.gguf_llama import hf_name, load_smollm2_tokenizer, unpermute_rows
from prismsim.models.load import load_model
from prismsim.models.pretrained import token_windows
from prismsim.models.stack import ModelStack
from tests.conftest import rel_err

PROMPT = ("The quick brown fox jumps over the lazy dog. Edge devices split a Transformer's "
          "layers and attention heads between them over a wireless link.")


def _llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """What llama.cpp's convert_hf_to_gguf.py does to the Q and K weights."""
    rows, cols = w.shape
    return w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def test_unpermute_undoes_llama_cpp_by_hand():
    # one head of 4 rows (rotary halves [r0, r1] and [r2, r3]): llama.cpp interleaves them
    w = np.arange(8, dtype=np.float32).reshape(4, 2)
    permuted = _llama_cpp_permute(w, 1)
    assert permuted[:, 0].tolist() == [0, 4, 2, 6]  # rows r0, r2, r1, r3
    assert np.array_equal(unpermute_rows(permuted, 1), w)
    # 3 heads of head_dim 6, 5 columns (a K projection of 3 KV heads)
    w = np.random.default_rng(0).standard_normal((18, 5)).astype(np.float32)
    assert not np.array_equal(_llama_cpp_permute(w, 3), w)
    assert np.array_equal(unpermute_rows(_llama_cpp_permute(w, 3), 3), w)
    with pytest.raises(ValueError, match="rotary pairs"):
        unpermute_rows(w[:15], 3)


def test_llama_cpp_names_map_to_hf():
    assert hf_name("blk.7.attn_q.weight") == "model.layers.7.self_attn.q_proj.weight"
    assert hf_name("blk.0.ffn_norm.weight") == "model.layers.0.post_attention_layernorm.weight"
    assert hf_name("token_embd.weight") == "model.embed_tokens.weight"
    assert hf_name("output.weight") == "lm_head.weight"
    with pytest.raises(ValueError, match="unknown"):
        hf_name("blk.0.attn_qkv.weight")


@functools.cache
def _smollm2() -> tuple[ModelStack, torch.Tensor, torch.Tensor]:
    """(stack, one 24-token prompt [1, 24], HF eager logits [1, 24, vocab])."""
    stack = load_model("smollm2-135m")
    ids = load_smollm2_tokenizer()(PROMPT, return_tensors="pt").input_ids
    assert ids.shape[1] >= 24
    ids = ids[:, :24]
    return stack, ids, stack.reference({"input_ids": ids})


def test_greedy_decoding_says_paris():
    """transformers' own GGUF loader continues this prompt with " Paris.\\n\\nThe answer is:"."""
    hf = _smollm2()[0].hf
    tok = load_smollm2_tokenizer()
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        for _ in range(4):
            ids = torch.cat([ids, hf(input_ids=ids).logits[:, -1:].argmax(-1)], dim=1)
    assert tok.decode(ids[0, -4:]).startswith(" Paris")


@pytest.mark.parametrize(("strategy", "devices"),
                         [("single", 1), ("voltage", 2), ("voltage", 3), ("tensor_parallel", 3)])
def test_exact_strategies_are_the_hf_forward(strategy, devices):
    stack, ids, ref = _smollm2()
    out = run_numerics(stack, ids, strategy, devices)
    assert out.shape == ref.shape == (1, 24, 49152)
    assert rel_err(out, ref) <= 1e-4


@functools.cache
def _prompts_and_greedy(steps: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """20 prompts of 32 tokens (consecutive stretches of held-out Wikipedia XML) [20, 32]
    and the HF model's greedy continuations [20, steps], a full eager forward a token."""
    hf = _smollm2()[0].hf
    ids = load_smollm2_tokenizer()(wiki_bytes("test")[:8000].decode("utf-8", "replace"),
                                   return_tensors="pt").input_ids
    prompts = ids[0, :20 * 32].view(20, 32)
    out = prompts
    with torch.no_grad():
        for _ in range(steps):
            out = torch.cat([out, hf(input_ids=out).logits[:, -1:].argmax(-1)], dim=1)
    return prompts, out[:, 32:]


@pytest.mark.parametrize(("strategy", "devices"), [("single", 1), ("voltage", 2), ("voltage", 3),
                                                   ("tensor_parallel", 2),
                                                   ("tensor_parallel", 3)])
def test_exact_decoding_generates_the_hf_models_greedy_tokens(strategy, devices):
    """Split-KV (voltage) and tensor-parallel decoding after a partitioned prefill: the
    same 8 greedy tokens as the HF model, on each of 20 prompts."""
    prompts, greedy = _prompts_and_greedy()
    out = run_generation(_smollm2()[0], prompts, 8, strategy, devices)
    assert torch.equal(out.tokens, greedy)


def test_the_config_is_smollm2_135m():
    stack = _smollm2()[0]
    hf = stack.hf
    cfg = hf.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads,
            cfg.num_key_value_heads) == (30, 576, 9, 3)
    assert (cfg.head_dim, cfg.intermediate_size, cfg.vocab_size) == (64, 1536, 49152)
    assert cfg.rope_parameters["rope_theta"] == 100000.0 and cfg.rms_norm_eps == 1e-5
    assert hf.lm_head.weight is hf.model.embed_tokens.weight  # tied
    assert not hf.training and cfg._attn_implementation == "eager"
    assert hf.model.embed_tokens.weight.dtype == torch.float32
    assert stack.family == "llama" and stack.name == "smollm2-135m" and len(stack.blocks) == 30


def test_token_windows_cover_the_bytes_their_scored_tokens_spell():
    """A byte-level BPE spells every byte: the bytes of tokens 1..n-1, each decoded on its
    own, are the bytes a window's predictions stand for (ASCII text)."""
    tok = load_smollm2_tokenizer()
    data = wiki_bytes("test")[:3 * 256]
    windows = list(token_windows(tok, data, 256))
    assert len(windows) == 3
    for ids, n_bytes in windows:
        spelled = sum(len(tok.decode([t]).encode("utf-8")) for t in ids[0, 1:].tolist())
        assert n_bytes == spelled
        assert 256 - 40 < n_bytes < 256  # only the first token is not scored


def test_bits_per_byte_of_a_token_lm():
    """SmolLM2 predicts Wikipedia XML far better than a uniform byte (8 bits); voltage is
    exact, prism at CR 4 costs bits."""
    single = evaluate("smollm2-135m", "wiki-xml", limit=3)
    voltage = evaluate("smollm2-135m", "wiki-xml", "voltage", 2, limit=3)
    prism = evaluate("smollm2-135m", "wiki-xml", "prism", 2, limit=3, cr=4)
    assert single["metric"] == "bits_per_byte" and single["n_examples"] == 3
    assert 0.3 < single["value"] < 2.5
    assert single["ci95_low"] <= single["value"] <= single["ci95_high"]
    assert voltage["value"] == pytest.approx(single["value"], abs=1e-4)
    assert prism["value"] > single["value"]
