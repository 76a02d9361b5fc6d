"""Fit the linear heads of the built-in pretrained models and save them under
prismsim/models/weights/heads/ (committed; a few KB each).

    python scripts/fit_heads.py [minilm-l6] [dinov2-small]

Features come from the exact (single-device) encoder on each dataset's train split:
- minilm-l6: mean of all-MiniLM-L6-v2's last hidden states over the tokens
  (sentence-transformers pooling), Rotten Tomatoes train (3,893 snippets);
- dinov2-small: [CLS ; mean of patch tokens] after DINOv2-S's final LayerNorm (the input
  of HF's Dinov2ForImageClassification classifier), MNIST-5k train (4,000 digits) at
  196x196 px.
The head is an L2-regularised multinomial logistic regression (seed 0, L-BFGS).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from prismsim.datasets import mnist_5k, rotten_tomatoes
from prismsim.metrics import accuracy
from prismsim.models.heads import fit_linear, save_linear
from prismsim.models.pretrained import HEADS, dinov2_backbone, image_pixels, minilm_encoder


def minilm_features(texts: list[str], batch: int = 64) -> torch.Tensor:
    from transformers import AutoTokenizer

    from prismsim.assets import fetch

    tok, enc = AutoTokenizer.from_pretrained(str(fetch("minilm-l6"))), minilm_encoder()
    out = []
    for i in range(0, len(texts), batch):
        t = tok(texts[i:i + batch], truncation=True, max_length=256, padding=True,
                return_tensors="pt")
        hidden = enc(**t).last_hidden_state
        mask = t["attention_mask"][..., None].float()  # padded batch: mean over real tokens
        out.append((hidden * mask).sum(1) / mask.sum(1))
    return torch.cat(out)


def dinov2_features(images: np.ndarray, batch: int = 32) -> torch.Tensor:
    model, out = dinov2_backbone(), []
    for i in range(0, len(images), batch):
        h = model(pixel_values=image_pixels(images[i:i + batch], 196)).last_hidden_state
        out.append(torch.cat([h[:, 0], h[:, 1:].mean(dim=1)], dim=1))
        print(f"  {i + len(out[-1])}/{len(images)} images", flush=True)
    return torch.cat(out)


def fit(name: str, features, train, test, file: str) -> None:
    start = time.perf_counter()
    x_train, x_test = features(train.examples), features(test.examples)
    head = fit_linear(x_train, torch.from_numpy(train.labels), len(train.classes))
    pred = head(x_test).argmax(-1).numpy()
    save_linear(head, HEADS / file)
    print(f"{name}: test accuracy {accuracy(pred, test.labels):.4f} on {len(test.labels)} "
          f"({time.perf_counter() - start:.0f} s) -> {HEADS / file}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=["minilm-l6", "dinov2-small"])
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    if "minilm-l6" in args.models:
        fit("minilm-l6", minilm_features, rotten_tomatoes("train"), rotten_tomatoes("test"),
            "minilm-l6-rotten-tomatoes.safetensors")
    if "dinov2-small" in args.models:
        fit("dinov2-small", dinov2_features, mnist_5k("train"), mnist_5k("test"),
            "dinov2-small-mnist-5k.safetensors")


if __name__ == "__main__":
    main()
