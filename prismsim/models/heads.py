"""Task heads prismsim fits itself on top of pretrained encoders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers.modeling_outputs import SequenceClassifierOutput

WEIGHTS = Path(__file__).parent / "weights"


class MeanPoolClassifier(nn.Module):
    """A bare BERT encoder, mean pooling over tokens (as sentence-transformers pools
    all-MiniLM-L6-v2), and a linear classifier. Inputs are unpadded sequences."""

    pooling = "mean"

    def __init__(self, bert: nn.Module, classifier: nn.Linear):
        super().__init__()
        self.bert, self.classifier, self.config = bert, classifier, bert.config

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None,
                attention_mask: Tensor | None = None) -> SequenceClassifierOutput:
        hidden = self.bert(input_ids=input_ids, token_type_ids=token_type_ids,
                           attention_mask=attention_mask).last_hidden_state
        return SequenceClassifierOutput(logits=self.classifier(hidden.mean(dim=1)))


def save_linear(layer: nn.Linear, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"weight": layer.weight.detach().contiguous(),
               "bias": layer.bias.detach().contiguous()}, str(path))


def load_linear(path: Path) -> nn.Linear:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: make it with scripts/fit_heads.py")
    tensors = load_file(str(path))
    out_features, in_features = tensors["weight"].shape
    layer = nn.Linear(in_features, out_features)
    with torch.no_grad():
        layer.weight.copy_(tensors["weight"].float())
        layer.bias.copy_(tensors["bias"].float())
    return layer


def fit_linear(features: Tensor, labels: Tensor, n_classes: int, l2: float = 1e-3,
               seed: int = 0, start: nn.Linear | None = None) -> nn.Linear:
    """Multinomial logistic regression (L-BFGS, full batch) on standardized features,
    folded back into one linear layer on the raw features; from ``start`` (a head on
    the raw features) where given, else from zero."""
    torch.manual_seed(seed)
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    z = (features - mean) / std
    layer = nn.Linear(features.shape[1], n_classes)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    if start is not None:  # W x + b = (W std) z + (b + W mean)
        with torch.no_grad():
            layer.weight.copy_(start.weight * std)
            layer.bias.copy_(start.bias + (start.weight * mean).sum(1))
    opt = torch.optim.LBFGS(layer.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(layer(z), labels) + l2 * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    raw = nn.Linear(features.shape[1], n_classes)
    with torch.no_grad():  # W z + b = (W / std) x + (b - W mean / std)
        raw.weight.copy_(layer.weight / std)
        raw.bias.copy_(layer.bias - (layer.weight * (mean / std)).sum(1))
    return raw


L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # strengths tried on the validation examples
VALIDATION_SHARE = 0.2  # of the training examples, held out to choose and to judge


@dataclass(frozen=True)
class HeadChoice:
    """A refitted head, or the base one kept, and what decided it (validation)."""

    head: nn.Linear
    kept_base: bool  # the refitted head was not better on validation
    l2: float  # the strength chosen on validation
    n_validation: int
    before: float  # the base head's accuracy on the validation examples
    after: float  # the best refitted head's


def validation_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of n training examples to fit on and to validate on (disjoint; a seeded
    share ``VALIDATION_SHARE`` held out, at least one of each)."""
    if n < 2:
        raise ValueError(f"fine-tuning a head needs 2 or more training examples, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    held = min(n - 1, max(1, round(n * VALIDATION_SHARE)))
    return np.sort(order[held:]), np.sort(order[:held])


def accuracy_of(head: nn.Linear, features: Tensor, labels: Tensor) -> float:
    with torch.no_grad():
        return float((head(features).argmax(1) == labels).float().mean())


def choose_head(features: Tensor, labels: Tensor, n_classes: int, base: nn.Linear,
                seed: int = 0) -> HeadChoice:
    """What a careful practitioner does: hold out validation examples, choose the L2
    strength on them (ties: the stronger), keep the base head unless the refitted one
    is better there, and refit the chosen one on every example, starting from the base."""
    fit, val = validation_split(len(labels), seed)
    before = accuracy_of(base, features[val], labels[val])
    scored = [(accuracy_of(fit_linear(features[fit], labels[fit], n_classes, l2, seed,
                                      base), features[val], labels[val]), l2)
              for l2 in L2_GRID]
    after, l2 = max(scored, key=lambda s: (s[0], s[1]))
    if after <= before:
        return HeadChoice(base, True, l2, len(val), before, after)
    head = fit_linear(features, labels, n_classes, l2, seed, base)
    return HeadChoice(head, False, l2, len(val), before, after)
