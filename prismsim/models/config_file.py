"""A model given as a Hugging Face config.json file (``--model path/to/config.json``):
the architecture it describes with seeded random weights, built as the built-ins are
(``builtin.py``). Shapes, hence FLOPs, bytes and latency, are the real checkpoint's;
accuracy needs real weights (a model directory or hub name)."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import transformers
from torch import nn

from prismsim.models.builtin import build_seeded

# built with their LM head where the config names no class transformers has (as the
# built-in gpt2 and Llama-family models are); the other families as the bare encoder
CAUSAL_TYPES = ("gpt2", "llama", "qwen2")


def read_config(path: str, supported: Collection[str]) -> transformers.PretrainedConfig:
    """The transformers config a config.json file holds, checked first: a JSON mapping
    whose ``model_type`` is one of ``supported``. Each problem is one line naming the
    file (and the key)."""
    fields = _fields(path)
    if "model_type" not in fields:
        raise ValueError(f"{path}: model_type: missing (a Hugging Face config.json names "
                         f"its architecture there; supported: {', '.join(sorted(supported))})")
    model_type = fields["model_type"]
    if model_type not in sorted(supported):
        raise ValueError(f"{path}: model_type: unsupported architecture {model_type!r}; "
                         f"supported: {', '.join(sorted(supported))}")
    return transformers.AutoConfig.from_pretrained(path)


def _fields(path: str) -> dict[str, Any]:
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such config file")
    try:
        fields = json.loads(Path(path).read_bytes())
    except ValueError as err:  # not JSON, or not text
        raise ValueError(f"{path}: not a JSON file ({err})") from None
    if not isinstance(fields, dict):
        raise ValueError(f"{path}: not a mapping of config fields (a JSON "
                         f"{type(fields).__name__})")
    return fields


def build_from_config(config: transformers.PretrainedConfig, seed: int = 0) -> nn.Module:
    """The class the config names (``architectures[0]``) if transformers has it for this
    config, else by ``model_type`` (``CAUSAL_TYPES``: with the LM head), with weights
    drawn from ``seed``."""
    return build_seeded(model_class(config), config, seed)


def model_class(config: transformers.PretrainedConfig) -> type[nn.Module]:
    """The transformers class a config file's model is built as (``build_from_config``)."""
    archs = getattr(config, "architectures", None) or []
    named = getattr(transformers, str(archs[0]), None) if archs else None
    if named is not None and getattr(named, "config_class", None) is type(config):
        return named
    mapping = (transformers.MODEL_FOR_CAUSAL_LM_MAPPING if config.model_type in CAUSAL_TYPES
               else transformers.MODEL_MAPPING)
    return mapping[type(config)]
