"""prismsim: what happens when one Transformer is split across P edge devices."""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

__all__ = ["__version__", "load_model", "run_numerics"]


def __getattr__(name: str) -> Any:
    # Lazy: ``prismsim --help`` and ``check`` must not pay for importing torch and transformers.
    if name == "run_numerics":
        from prismsim.executors.memory import run_numerics

        return run_numerics
    if name == "load_model":
        from prismsim.models.load import load_model

        return load_model
    raise AttributeError(f"module 'prismsim' has no attribute {name!r}")
