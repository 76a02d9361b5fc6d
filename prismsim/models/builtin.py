"""Built-in model names: the paper's architectures (and tiny ones for quick checks)
built from a Hugging Face config with seeded random weights.

Random weights give exact-numerics and FLOP/byte answers identical to the real
checkpoints (same shapes); accuracy needs real weights (a hub name or local directory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import transformers
from torch import nn


@dataclass(frozen=True)
class BuiltinSpec:
    model_class: str  # a transformers class name
    config_class: str
    config: dict[str, Any] = field(default_factory=dict)
    tokens: int | None = None  # sequence length for text models (vision: from image size)
    about: str = ""


BUILTINS: dict[str, BuiltinSpec] = {
    "vit-base": BuiltinSpec(
        "ViTForImageClassification", "ViTConfig", {"num_labels": 1000},
        about="ViT-B/16 at 224x224 (197 tokens), the paper's ViT; ImageNet-size head"),
    "vit-tiny": BuiltinSpec(
        "ViTForImageClassification", "ViTConfig",
        {"hidden_size": 192, "num_hidden_layers": 4, "num_attention_heads": 3,
         "intermediate_size": 768, "num_labels": 10},
        about="reduced-width ViT/16 at 224x224, still 197 tokens"),
    "dinov2-tiny": BuiltinSpec(
        "Dinov2Model", "Dinov2Config",
        {"hidden_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
         "image_size": 196, "patch_size": 14},
        about="reduced DINOv2 at 196x196 (197 tokens), bare encoder with layer scale"),
    "bert-base": BuiltinSpec(
        "BertForSequenceClassification", "BertConfig", {"num_labels": 2}, tokens=256,
        about="BERT-base, 2-class head, 256 tokens as in the paper"),
    "bert-tiny": BuiltinSpec(
        "BertForSequenceClassification", "BertConfig",
        {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 512, "num_labels": 2}, tokens=64,
        about="2-layer BERT for quick checks"),
    "gpt2": BuiltinSpec(
        "GPT2LMHeadModel", "GPT2Config", {}, tokens=256,
        about="GPT-2 small with its LM head, 256 tokens as in the paper"),
    "gpt2-tiny": BuiltinSpec(
        "GPT2LMHeadModel", "GPT2Config",
        {"n_embd": 128, "n_layer": 2, "n_head": 2, "vocab_size": 512,
         "bos_token_id": 511, "eos_token_id": 511}, tokens=64,
        about="2-layer GPT-2 for quick checks"),
}


def build_builtin(name: str, seed: int = 0) -> nn.Module:
    """The named architecture with weights drawn from ``seed`` (dropout off)."""
    spec = BUILTINS[name]
    config = getattr(transformers, spec.config_class)(**spec.config)
    config._attn_implementation = "eager"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = getattr(transformers, spec.model_class)(config)
    return model.eval()
