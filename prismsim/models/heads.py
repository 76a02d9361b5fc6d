"""Task heads prismsim fits itself on top of pretrained encoders."""

from __future__ import annotations

from pathlib import Path

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
               seed: int = 0) -> nn.Linear:
    """Multinomial logistic regression (L-BFGS, full batch) on standardized features,
    folded back into one linear layer on the raw features."""
    torch.manual_seed(seed)
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    z = (features - mean) / std
    layer = nn.Linear(features.shape[1], n_classes)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
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
