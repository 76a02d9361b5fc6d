"""The edge-LLM built-ins (Llama 3.2, SmolLM2, Qwen2.5): transformers builds each from
its catalog config with the parameter count worked out by hand from the config's
dimensions, within 1 % of the published size. Built on the meta device: no weights."""

import pytest
import torch
import transformers

from prismsim.models.catalog import BUILTINS
from prismsim.names import Heads, model_heads

# name: (published parameters, vocab, hidden, intermediate, layers, heads, KV heads,
#        head dim, q/k/v biases, tied embeddings)
EDGE = {
    "llama-3.2-1b": (1.24e9, 128256, 2048, 8192, 16, 32, 8, 64, False, True),
    "llama-3.2-3b": (3.21e9, 128256, 3072, 8192, 28, 24, 8, 128, False, True),
    "smollm2-360m": (362e6, 49152, 960, 2560, 32, 15, 5, 64, False, True),
    "smollm2-1.7b": (1.71e9, 49152, 2048, 8192, 24, 32, 32, 64, False, True),
    "qwen2.5-0.5b": (0.49e9, 151936, 896, 4864, 24, 14, 2, 64, True, True),
    "qwen2.5-1.5b": (1.54e9, 151936, 1536, 8960, 28, 12, 2, 128, True, True),
}


def by_hand(vocab, d, ff, layers, heads, kv, dh, qkv_bias, tied) -> int:
    q, k = heads * dh, kv * dh  # query width; key (and value) width
    attention = d * q + 2 * d * k + q * d + (q + 2 * k if qkv_bias else 0)  # q,k,v,o
    mlp = 3 * d * ff  # gate, up, down
    per_layer = attention + mlp + 2 * d  # two RMSNorms
    return vocab * d + layers * per_layer + d + (0 if tied else d * vocab)


def _meta_model(name: str) -> torch.nn.Module:
    entry = BUILTINS[name]
    config = getattr(transformers, entry.config_class)(**entry.config)
    with torch.device("meta"):
        return getattr(transformers, entry.model_class)(config)


@pytest.mark.parametrize("name", sorted(EDGE))
def test_parameters_are_the_hand_count_and_the_published_size(name):
    published, *dims = EDGE[name]
    model = _meta_model(name)
    counted = sum(p.numel() for p in model.parameters())  # a tied matrix counts once
    assert counted == by_hand(*dims)
    assert abs(counted - published) <= 0.01 * published


@pytest.mark.parametrize("name", sorted(EDGE))
def test_the_model_is_what_the_table_says(name):
    _, vocab, d, ff, layers, heads, kv, dh, qkv_bias, tied = EDGE[name]
    model = _meta_model(name)
    cfg, attn = model.config, model.model.layers[0].self_attn
    assert (cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size) == (vocab, d, ff)
    assert len(model.model.layers) == layers
    assert attn.head_dim == dh and attn.q_proj.out_features == heads * dh
    assert attn.k_proj.out_features == kv * dh
    assert (attn.q_proj.bias is not None) == qkv_bias and attn.o_proj.bias is None
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    assert model_heads(name) == Heads(heads, kv)
    assert BUILTINS[name].tokens == 128
    assert all(t == "full_attention" for t in getattr(cfg, "layer_types", None) or [])


@pytest.mark.parametrize("name", ["llama-3.2-1b", "llama-3.2-3b"])
def test_llama_3_2_has_llama3_rope_scaling(name):
    rotary = _meta_model(name).model.rotary_emb
    assert rotary.rope_type == "llama3"
    rope = rotary.config.rope_parameters
    assert (rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]) == (32.0, 1.0, 4.0)
    assert rope["original_max_position_embeddings"] == 8192
    assert rope["rope_theta"] == 500000.0
