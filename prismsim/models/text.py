"""Adapters for the text families: BERT (post-LN encoder) and GPT-2 (pre-LN, causal)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from prismsim.models.stack import Block, Head, Inputs, ModelStack, identity


def _bert_block(layer: nn.Module, n_heads: int) -> Block:
    att = layer.attention
    return Block(
        ln_attn=att.output.LayerNorm, q=att.self.query, k=att.self.key, v=att.self.value,
        o=att.output.dense, ln_mlp=layer.output.LayerNorm, fc1=layer.intermediate.dense,
        fc2=layer.output.dense, act=layer.intermediate.intermediate_act_fn, pre_ln=False,
        n_heads=n_heads, scaling=att.self.scaling,
    )


def _bert_head(model: nn.Module, base: nn.Module, hidden: int) -> Head:
    classifier = getattr(model, "classifier", None)
    if classifier is None:
        return Head(local=identity, width=hidden, first_only=False, finish=identity)
    if getattr(model, "pooling", "cls") == "mean":  # MeanPoolClassifier
        return Head(local=identity, width=hidden, first_only=False,
                    finish=lambda y: classifier(y.mean(dim=1)))
    # HF: logits = classifier(pooler(h[:, 0])); the pooler reads row 0 itself
    return Head(local=identity, width=hidden, first_only=True,
                finish=lambda y: classifier(base.pooler(y)))


def adapt_bert(model: nn.Module) -> ModelStack:
    base = getattr(model, "bert", model)
    cfg = base.config
    if hasattr(model, "classifier") and getattr(model, "pooling", "cls") == "cls" \
            and base.pooler is None:
        raise ValueError("BERT classifier without a pooler is not supported")
    blocks = [_bert_block(layer, cfg.num_attention_heads) for layer in base.encoder.layer]

    def embed(inputs: Inputs) -> Tensor:
        return base.embeddings(input_ids=inputs["input_ids"],
                               token_type_ids=inputs.get("token_type_ids"))

    return ModelStack(
        name=getattr(cfg, "_name_or_path", "") or "bert", family="bert", hf=model, embed=embed,
        blocks=blocks, head=_bert_head(model, base, cfg.hidden_size), causal=False,
        hidden=cfg.hidden_size, main_input="input_ids",
    )


def _linear_from_conv1d(weight: Tensor, bias: Tensor) -> nn.Linear:
    """GPT-2's Conv1D computes x @ W + b with W [in, out]; nn.Linear holds W^T."""
    lin = nn.Linear(weight.shape[0], weight.shape[1])
    with torch.no_grad():
        lin.weight.copy_(weight.t())
        lin.bias.copy_(bias)
    return lin


def _gpt2_block(layer: nn.Module, n_heads: int) -> Block:
    att, d = layer.attn, layer.attn.embed_dim
    w, b = att.c_attn.weight, att.c_attn.bias  # fused [d, 3d]: q | k | v
    q, k, v = (_linear_from_conv1d(w[:, i * d:(i + 1) * d], b[i * d:(i + 1) * d]) for i in range(3))
    return Block(
        ln_attn=layer.ln_1, q=q, k=k, v=v,
        o=_linear_from_conv1d(att.c_proj.weight, att.c_proj.bias), ln_mlp=layer.ln_2,
        fc1=_linear_from_conv1d(layer.mlp.c_fc.weight, layer.mlp.c_fc.bias),
        fc2=_linear_from_conv1d(layer.mlp.c_proj.weight, layer.mlp.c_proj.bias),
        act=layer.mlp.act, pre_ln=True, n_heads=n_heads, scaling=att.scaling,
    )


def adapt_gpt2(model: nn.Module) -> ModelStack:
    base = getattr(model, "transformer", model)
    cfg = base.config
    blocks = [_gpt2_block(layer, cfg.n_head) for layer in base.h]
    lm_head = getattr(model, "lm_head", None)
    if lm_head is None:
        head = Head(local=base.ln_f, width=cfg.n_embd, first_only=False, finish=identity)
    else:
        head = Head(local=lambda x: lm_head(base.ln_f(x)), width=lm_head.out_features,
                    first_only=False, finish=identity)

    def embed_ids(ids: Tensor, start: int) -> Tensor:
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)
        return base.wte(ids) + base.wpe(positions)[None]  # [B, n, d]

    def embed(inputs: Inputs) -> Tensor:
        return embed_ids(inputs["input_ids"], 0)

    return ModelStack(
        name=getattr(cfg, "_name_or_path", "") or "gpt2", family="gpt2", hf=model, embed=embed,
        blocks=blocks, head=head, causal=True, hidden=cfg.n_embd, main_input="input_ids",
        embed_ids=embed_ids,
    )
