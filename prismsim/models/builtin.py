"""Built-in architectures (``catalog.BUILTINS``) built from their Hugging Face config
with seeded random weights."""

from __future__ import annotations

import torch
import transformers
from torch import nn

from prismsim.models.catalog import BUILTINS


def build_builtin(name: str, seed: int = 0) -> nn.Module:
    """The named architecture with weights drawn from ``seed`` (dropout off)."""
    entry = BUILTINS[name]
    config = getattr(transformers, entry.config_class)(**entry.config)
    config._attn_implementation = "eager"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = getattr(transformers, entry.model_class)(config)
    return model.eval()
