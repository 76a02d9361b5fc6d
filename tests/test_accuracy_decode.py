"""A decoding language model's accuracy: bits per byte of its continuations, decoded by
the last device after a prefill under the strategy, checked against token-by-token
teacher-forced decoding (``run_generation``) summed here by hand."""

from __future__ import annotations

import pytest

import prismsim.accuracy as acc
from prismsim import datasets as ds
from tests.conftest import ByteTokenizer, decoded_bits_per_byte

MODEL = "llama-tiny"  # 2 blocks, GQA 8/4, RoPE, SwiGLU; vocabulary 512
PROMPT, GENERATE = 24, 16
TEXT = bytes(range(32, 127)) * 10  # 950 one-byte tokens


@pytest.fixture(autouse=True)
def byte_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acc, "_tokenizer", lambda name: ByteTokenizer())
    monkeypatch.setattr(ds, "dataset", lambda name, split: ds.Dataset(
        name, split, "bytes", TEXT, metric="bits_per_byte"))


def decoded(windows: int, strategy: str, devices: int, **options) -> float:
    return decoded_bits_per_byte(MODEL, TEXT, windows, PROMPT, GENERATE, strategy, devices,
                                 **options)


@pytest.mark.parametrize(("strategy", "devices", "options"),
                         [("single", 1, {}), ("prism", 2, {"cr": 2.0}),
                          ("prism", 3, {"segments": 2})])
def test_a_decoding_model_is_scored_as_it_decodes(strategy: str, devices: int,
                                                  options: dict) -> None:
    r = acc.evaluate(MODEL, "wiki-xml", strategy, devices, limit=3, use_cache=False,
                     decode=(PROMPT, GENERATE), **options)
    assert r["metric"] == "bits_per_byte" and r["n_examples"] == 3
    assert r["value"] == pytest.approx(decoded(3, strategy, devices, **options),
                                       rel=1e-5)
    assert r["ci95_low"] < r["value"] < r["ci95_high"]
    assert "3 windows of 24 prompt tokens" in r["accuracy_source"]
    if strategy == "single":
        assert r["top1_agreement"] == 1.0 and r["mean_kl"] == pytest.approx(0.0, abs=1e-9)
    else:
        assert r["mean_kl"] > 0


def test_without_a_limit_every_whole_window_of_the_text_is_scored() -> None:
    r = acc.evaluate(MODEL, "wiki-xml", limit=None, use_cache=False, decode=(PROMPT, GENERATE))
    assert r["n_examples"] == (len(TEXT) - 1) // (PROMPT + GENERATE)  # 23: the last one cut


def test_decoding_is_scored_only_for_a_causal_model_on_text(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ds, "dataset", lambda name, split: ds.Dataset(
        name, split, "text", ["a b"], labels=None))
    with pytest.raises(ValueError, match="causal language model on text"):
        acc.evaluate(MODEL, "sst2", limit=1, use_cache=False, decode=(PROMPT, GENERATE))
