"""The names users may give for strategies and models, checked without importing torch
(``prismsim check`` stays light): an unknown one is an error naming where it stood."""

from __future__ import annotations

from collections.abc import Sequence

from prismsim.models.catalog import known_model, model_names
from prismsim.strategies import STRATEGIES


def check_strategies(names: Sequence[str], at: str, error: type[Exception]) -> None:
    """``at``: "file: strategies"; each unknown name is reported with its index."""
    for i, name in enumerate(names):
        if name not in STRATEGIES:
            raise error(f"{at}[{i}]: unknown strategy {name!r}; known: "
                        f"{', '.join(STRATEGIES)}")


def check_model(name: str | None, at: str, error: type[Exception]) -> None:
    """A built-in name, or what may be a hub name or a local directory."""
    if name is not None and not known_model(name):
        raise error(f"{at}: unknown model {name!r}; built-in: {', '.join(model_names())}, "
                    f"or a hub name / local directory")
