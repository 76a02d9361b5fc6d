"""Adapter for the Llama family (SmolLM2, Llama 3.x; Qwen2.5, which differs only by
biases on q/k/v): pre-RMSNorm, causal, grouped-query attention, rotary embeddings,
SwiGLU MLP, no biases (Qwen2: q/k/v biases).

The blocks reference the HF modules themselves: RMSNorms as ln_attn / ln_mlp, the
projections, gate/up/down as fc1/up/fc2, and the model's own rotary module (rope scaling
variants such as llama3 included) wrapped by ``numerics.rope.Rope``.
"""

from __future__ import annotations

from torch import Tensor, nn
from transformers import PretrainedConfig

from prismsim.models.stack import Block, Head, Inputs, ModelStack, identity
from prismsim.numerics.rope import Rope


def _llama_block(layer: nn.Module, cfg: PretrainedConfig, rope: Rope) -> Block:
    att, mlp = layer.self_attn, layer.mlp
    return Block(
        ln_attn=layer.input_layernorm, q=att.q_proj, k=att.k_proj, v=att.v_proj,
        o=att.o_proj, ln_mlp=layer.post_attention_layernorm, fc1=mlp.gate_proj,
        fc2=mlp.down_proj, up=mlp.up_proj, act=mlp.act_fn, pre_ln=True,
        n_heads=cfg.num_attention_heads, n_kv_heads=cfg.num_key_value_heads,
        scaling=att.scaling, rope=rope,
    )


def _head(model: nn.Module, base: nn.Module) -> Head:
    """Final RMSNorm then the LM head (tied or not), position-wise on every row; the
    bare model's output is the normalized last hidden state."""
    lm_head = getattr(model, "lm_head", None)
    if lm_head is None:
        return Head(local=base.norm, width=base.config.hidden_size, first_only=False,
                    finish=identity)
    return Head(local=lambda x: lm_head(base.norm(x)), width=lm_head.out_features,
                first_only=False, finish=identity)


# rope types whose frequencies depend on the largest position of each call: a device
# seeing only its own positions would rotate differently from the whole sequence
POSITION_DEPENDENT_ROPE = ("dynamic", "longrope")


def _check(cfg: PretrainedConfig, rotary: nn.Module) -> None:
    rope_type = getattr(rotary, "rope_type", "default")
    if rope_type in POSITION_DEPENDENT_ROPE:
        raise ValueError(f"{cfg.model_type}: rope type {rope_type!r} is not supported "
                         "(its frequencies depend on the sequence length each device sees)")
    sliding = [t for t in getattr(cfg, "layer_types", None) or [] if t != "full_attention"]
    if sliding or getattr(cfg, "use_sliding_window", False):
        raise ValueError(f"{cfg.model_type}: sliding-window attention is not supported")
    if getattr(cfg, "pretraining_tp", 1) not in (None, 1):
        raise ValueError(f"{cfg.model_type}: pretraining_tp > 1 is not supported")


def adapt_llama(model: nn.Module) -> ModelStack:
    """LlamaModel / LlamaForCausalLM (and Qwen2's) -> the uniform stack."""
    base = getattr(model, "model", model)
    cfg = base.config
    _check(cfg, base.rotary_emb)
    rope = Rope(base.rotary_emb)
    blocks = [_llama_block(layer, cfg, rope) for layer in base.layers]

    def embed(inputs: Inputs) -> Tensor:
        return base.embed_tokens(inputs["input_ids"])  # [B, n, d]

    return ModelStack(
        name=getattr(cfg, "_name_or_path", "") or cfg.model_type, family=cfg.model_type,
        hf=model, embed=embed, blocks=blocks, head=_head(model, base), causal=True,
        hidden=cfg.hidden_size, main_input="input_ids",
        embed_ids=lambda ids, start: base.embed_tokens(ids),  # positions enter by RoPE
    )
