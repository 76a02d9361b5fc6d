"""Adapters for the vision families: ViT (ViTModel, ViTForImageClassification) and
DINOv2 (Dinov2Model, Dinov2ForImageClassification), both pre-LN; DINOv2 adds layer scale."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from prismsim.models.stack import Block, Head, Inputs, ModelStack, identity


def _vit_block(layer: nn.Module, n_heads: int) -> Block:
    att = layer.attention
    return Block(
        ln_attn=layer.layernorm_before, q=att.q_proj, k=att.k_proj, v=att.v_proj, o=att.o_proj,
        ln_mlp=layer.layernorm_after, fc1=layer.mlp.fc1, fc2=layer.mlp.fc2,
        act=layer.mlp.activation_fn, pre_ln=True, n_heads=n_heads, scaling=att.scaling,
    )


def _dinov2_block(layer: nn.Module, n_heads: int) -> Block:
    att = layer.attention
    if not hasattr(layer.mlp, "fc1"):
        raise ValueError("DINOv2 with a SwiGLU MLP (use_swiglu_ffn=True) is not supported")
    return Block(
        ln_attn=layer.norm1, q=att.q_proj, k=att.k_proj, v=att.v_proj, o=att.o_proj,
        ln_mlp=layer.norm2, fc1=layer.mlp.fc1, fc2=layer.mlp.fc2,
        act=layer.mlp.activation_fn, pre_ln=True, n_heads=n_heads, scaling=att.scaling,
        ls_attn=layer.layer_scale1.lambda1, ls_mlp=layer.layer_scale2.lambda1,
    )


def _vit_head(model: nn.Module, final_norm: nn.Module, hidden: int) -> Head:
    classifier = getattr(model, "classifier", None)
    if classifier is None:  # bare encoder: its main output is the normed last hidden state
        return Head(local=final_norm, width=hidden, first_only=False, finish=identity)
    return Head(local=final_norm, width=hidden, first_only=True,
                finish=lambda y: classifier(y[:, 0]))


def _dinov2_head(model: nn.Module, final_norm: nn.Module, hidden: int) -> Head:
    classifier = getattr(model, "classifier", None)
    if classifier is None:
        return Head(local=final_norm, width=hidden, first_only=False, finish=identity)

    def finish(y: Tensor) -> Tensor:  # HF: [CLS] concatenated with the mean of the patch tokens
        return classifier(torch.cat([y[:, 0], y[:, 1:].mean(dim=1)], dim=1))

    return Head(local=final_norm, width=hidden, first_only=False, finish=finish)


def adapt_vit(model: nn.Module) -> ModelStack:
    base = getattr(model, "vit", model)
    cfg = base.config
    blocks = [_vit_block(layer, cfg.num_attention_heads) for layer in base.layers]

    def embed(inputs: Inputs) -> Tensor:
        return base.embeddings(inputs["pixel_values"])

    return ModelStack(
        name=getattr(cfg, "_name_or_path", "") or "vit", family="vit", hf=model, embed=embed,
        blocks=blocks, head=_vit_head(model, base.layernorm, cfg.hidden_size), causal=False,
        hidden=cfg.hidden_size, main_input="pixel_values",
    )


def adapt_dinov2(model: nn.Module) -> ModelStack:
    base = getattr(model, "dinov2", model)
    cfg = base.config
    blocks = [_dinov2_block(layer, cfg.num_attention_heads) for layer in base.encoder.layer]

    def embed(inputs: Inputs) -> Tensor:
        return base.embeddings(inputs["pixel_values"])

    return ModelStack(
        name=getattr(cfg, "_name_or_path", "") or "dinov2", family="dinov2", hf=model,
        embed=embed, blocks=blocks, head=_dinov2_head(model, base.layernorm, cfg.hidden_size),
        causal=False, hidden=cfg.hidden_size, main_input="pixel_values",
    )
