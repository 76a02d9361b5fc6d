"""The names users may give for strategies and models, checked without importing torch
(``prismsim check`` stays light): an unknown one is an error naming where it stood. Also
what a named model's heads are, where that is known without loading it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prismsim.models.catalog import BUILTINS, is_config_path, known_model, model_names
from prismsim.strategies import STRATEGIES, Heads

# transformers' default query heads of the built-ins' config classes, for entries that
# leave them at the default (tests/test_strategy_registry.py compares with transformers)
DEFAULT_HEADS = {"ViTConfig": 12, "Dinov2Config": 12, "BertConfig": 12, "GPT2Config": 12,
                 "LlamaConfig": 32}
CONFIG_MAX_BYTES = 2**20  # a config.json (a few KB)


def check_strategies(names: Sequence[str], at: str, error: type[Exception]) -> None:
    """``at``: "file: strategies"; each unknown name is reported with its index."""
    for i, name in enumerate(names):
        if name not in STRATEGIES:
            raise error(f"{at}[{i}]: unknown strategy {name!r}; known: "
                        f"{', '.join(STRATEGIES)}")


def check_model(name: str | None, at: str, error: type[Exception]) -> None:
    """A built-in name, an existing config.json file, or what may be a hub name or a
    local directory."""
    if name is not None and not known_model(name):
        raise error(f"{at}: unknown model {name!r}; built-in: {', '.join(model_names())}, "
                    f"a path to an existing config.json file (its architecture, random "
                    f"weights), or a hub name / local directory")


def model_heads(name: str) -> Heads | None:
    """The heads of a named model, known without loading it: a built-in architecture's
    from the catalog, a config.json file's or a local directory's from that file (a
    fine-tuned model has its base's). None where only loading tells: a hub name, a
    converted pretrained model."""
    name = name.partition("@")[0]
    if name in BUILTINS:
        entry = BUILTINS[name]
        return _config_heads(entry.config, DEFAULT_HEADS.get(entry.config_class))
    config = Path(name) if is_config_path(name) else Path(name) / "config.json"
    try:
        if not config.is_file() or config.stat().st_size > CONFIG_MAX_BYTES:
            return None
        return _config_heads(json.loads(config.read_text()), None)
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not a mapping
        return None


def _config_heads(config: Mapping[str, Any], default: int | None) -> Heads | None:
    """From a transformers config: query heads (``num_attention_heads``, GPT-2's
    ``n_head``) and ``num_key_value_heads`` (absent or null: as many)."""
    query = config.get("num_attention_heads", config.get("n_head", default))
    if not isinstance(query, int) or query < 1:
        return None
    kv = config.get("num_key_value_heads") or query
    return Heads(query, kv) if isinstance(kv, int) and kv >= 1 else None
