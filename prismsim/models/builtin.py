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
    return build_seeded(getattr(transformers, entry.model_class), config, seed)


def build_seeded(model_class: type[nn.Module], config: transformers.PretrainedConfig,
                 seed: int = 0) -> nn.Module:
    """``model_class(config)`` with eager attention, weights drawn from ``seed`` (the
    global RNG left as it was), in eval mode."""
    config._attn_implementation = "eager"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = model_class(config)
    return model.eval()
