"""A language model in a sweep: its rows scored as it decodes (bits per byte of the
continuations), and its fine-tuned (LoRA) prism rows beside the plain ones with the
gain between them; checked against token-by-token decoding of the same weights."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

import prismsim.accuracy as acc
import prismsim.finetune.language as lm
from prismsim import datasets as ds
from prismsim.scenario import load_scenario
from prismsim.sweep.run import run_sweep
from tests.conftest import ByteTokenizer, decoded_bits_per_byte

PROMPT, GENERATE, WINDOWS = 24, 16, 3
TEST_TEXT = bytes(range(32, 127)) * 2  # 190 one-byte tokens: 4 windows of 40
TRAIN_TEXT = bytes(range(65, 91)) * 700  # 18,200 tokens: 2 + 24 windows of 640
SCENARIO = {
    "name": "tiny_lm", "model": {"name": "llama-tiny"},
    "decode": {"prompt_tokens": PROMPT, "generate": GENERATE},
    "dataset": {"name": "wiki-xml", "limit": WINDOWS},
    "strategies": ["single", "voltage", "prism"], "devices": {"count": [1, 2]},
    "prism": {"cr": [2]},
    "finetune": {"modes": ["none", "lora:2"], "train_limit": 2, "steps": 4, "lr": 0.01,
                 "batch": 1},
    "network": {"link": "ethernet-1g", "bandwidth_mbps": 100, "latency_ms": 1}}


def decoded(model: str, strategy: str, devices: int, **options) -> float:
    return decoded_bits_per_byte(model, TEST_TEXT, WINDOWS, PROMPT, GENERATE, strategy,
                                 devices, **options)


def test_a_language_model_sweep_scores_decoding_and_its_fine_tuned_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acc, "_tokenizer", lambda name: ByteTokenizer())
    monkeypatch.setattr(ds, "dataset", lambda name, split: ds.Dataset(
        name, split, "bytes", TEST_TEXT, metric="bits_per_byte"))
    monkeypatch.setitem(lm.TOKENIZERS, "llama-tiny", ByteTokenizer)
    monkeypatch.setattr(lm, "wiki_bytes", lambda split: TRAIN_TEXT)
    path = tmp_path / "tiny_lm.yaml"
    path.write_text(yaml.safe_dump({**SCENARIO, "output": str(tmp_path / "out")}))
    df = run_sweep(load_scenario(path)).set_index(["strategy", "finetune"])
    single = decoded("llama-tiny", "single", 1)
    assert df.loc[("single", "none"), "accuracy"] == pytest.approx(single, rel=1e-5)
    assert df.loc[("voltage", "none"), "accuracy"] == df.loc[("single", "none"), "accuracy"]
    assert "is exact" in df.loc[("voltage", "none"), "accuracy_source"]
    plain, tuned = df.loc[("prism", "none")], df.loc[("prism", "lora:2")]
    assert plain["accuracy"] == pytest.approx(
        decoded("llama-tiny", "prism", 2, cr=2.0), rel=1e-5)
    name = "llama-tiny@prism-p2-cr2-lora2-s4-lr0.01-b1-n2+wiki-xml"
    assert tuned["accuracy"] == pytest.approx(decoded(name, "prism", 2, cr=2.0),
                                           rel=1e-5)
    assert abs(tuned["accuracy"] - plain["accuracy"]) > 1e-3  # trained: not the base kept
    assert tuned["latency_s"] == plain["latency_s"]
    assert tuned["finetune_gain"] == pytest.approx(plain["accuracy"] - tuned["accuracy"])
    assert math.isnan(plain["finetune_gain"])
