import functools
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from prismsim.cost.op_table import Bandwidth, OperatorTable, Product
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


class ByteTokenizer:
    """A tokenizer of one token per byte (language-model tests without a real one)."""

    def __call__(self, text: str, add_special_tokens: bool = False):
        return type("Out", (), {"input_ids": list(text.encode())})()

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode()


def decoded_bits_per_byte(model: str, text: bytes, windows: int, prompt: int, generate: int,
                          strategy: str, devices: int, **options) -> float:
    """Token-by-token teacher-forced decoding of the first ``windows`` windows of ``text``
    (one byte a token): the continuations' summed NLL over their bytes, in bits."""
    import math

    from prismsim.executors.memory import run_generation

    ids = torch.tensor(list(text[:windows * (prompt + generate)])).view(windows, -1)
    gen = run_generation(load_model(model), ids[:, :prompt], generate, strategy, devices,
                         forced=ids[:, prompt:], **options)
    logp = torch.log_softmax(gen.logits.double(), -1)  # [windows, generate, V]
    nats = -logp.gather(-1, ids[:, prompt:, None]).sum()
    return float(nats) / (windows * generate * math.log(2))


# an operator table by hand: one product of each kind, a copy bandwidth, gauged at 1 ms
HAND_TABLE = OperatorTable(
    source="by hand", mm=(Product(dims=(1, 2, 2), seconds=1e-5),),
    bmm=(Product(dims=(1, 1, 1, 1), seconds=2e-6),),
    ew={"copy": Bandwidth(fixed_s=1e-6, bytes_per_s=1e9)}, view_s=1e-7, reference_s=1e-3)

