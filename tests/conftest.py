import functools
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from prismsim.models.load import load_model, random_inputs
from prismsim.models.stack import ModelStack

torch.set_num_threads(2)


@functools.cache
def _paper(name: str) -> tuple[ModelStack, dict, torch.Tensor]:
    stack = load_model(name, seed=0)
    inputs = random_inputs(stack, batch=2, seed=1)
    return stack, inputs, stack.reference(inputs)


@pytest.fixture(scope="session")
def paper():
    """(stack, inputs, HF eager output) of a paper-size model, built once per session."""
    return _paper


def assert_refused(path: Path, text: str, read: Callable[[Path], object],
                   error: type[Exception], message: str) -> None:
    """``text`` written to ``path`` is refused by ``read`` with ``error``, which says
    ``message`` (the file and the key)."""
    path.write_text(text)
    with pytest.raises(error, match=re.escape(message)):
        read(path)


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).abs().max() / ref.abs().max())


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Tests never write to the user's cache of results; they read the pinned assets
    `prismsim assets fetch` put in the user's asset folder (offline after that)."""
    from prismsim.assets import asset_root

    monkeypatch.setenv("PRISMSIM_ASSET_DIR", str(asset_root()))
    monkeypatch.setenv("PRISMSIM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
