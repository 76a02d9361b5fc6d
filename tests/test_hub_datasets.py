"""Hub datasets offline: a fake ``datasets`` module serves small in-memory tables."""

import math
import sys
import types

import numpy as np
import pytest
import torch

from prismsim import accuracy, datasets
from prismsim.accuracy import ClozeOption, cloze_input, evaluate, span_logprob
from prismsim.datasets import ClozeExample, carve_held_out, hub_dataset

CAT = "The cat sat on the mat."  # 23 bytes; 20 of them joined by spaces: 479 bytes
CBT_CN_TEST = {
    "sentences": [[CAT] * 20, ["Tom has a red ball.", "He likes it."]],
    "question": ["The cat sat on the XXXXX .", "Tom threw the XXXXX ."],
    "answer": ["mat", "ball"],
    "options": [["dog", "mat", "sky"], ["ball", "tree", "cat"]],
}
TABLES = {
    ("LTCB/enwik8", "enwik8-raw", "train"): {"text": ["ab", "cé", "ef", "gh"]},
    ("afmck/text8-chunked1024", None, "test"): {"text": ["one tw", "o three "] * 40},
    ("cam-cst/cbt", "CN", "test"): CBT_CN_TEST,
}


@pytest.fixture
def fake_hub(monkeypatch):
    """A ``datasets`` module whose load_dataset reads TABLES; the calls it got."""
    calls = []

    def load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        if (path, name, split) not in TABLES:
            raise FileNotFoundError(f"no {path}/{name} {split}")
        return TABLES[path, name, split]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    datasets.dataset.cache_clear()
    yield calls
    datasets.dataset.cache_clear()


def test_enwik8_standard_splits_on_joined_bytes(fake_hub, monkeypatch):
    # joined: b"ab\nc\xc3\xa9\nef\ngh", 12 bytes ("é" is two); held-out parts of 3
    monkeypatch.setattr(datasets, "ENWIK8_HELD_OUT", 3)
    parts = {s: hub_dataset("enwik8", s) for s in ("train", "validation", "test")}
    assert parts["train"].examples == b"ab\nc\xc3\xa9"
    assert parts["validation"].examples == b"\nef"
    assert parts["test"].examples == b"\ngh"
    assert parts["test"].kind == "bytes" and parts["test"].metric == "bits_per_byte"
    assert fake_hub == [("LTCB/enwik8", "enwik8-raw", "train")] * 3  # one hub split, carved
    with pytest.raises(ValueError, match="train, validation, test"):
        carve_held_out(b"0123456789", "valid")
    with pytest.raises(ValueError, match="cannot hold"):
        carve_held_out(b"01234", "test")


def test_text8_chunks_joined_without_separator(fake_hub):
    data = hub_dataset("text8", "test")
    assert data.examples == b"one two three " * 40  # 560 bytes
    assert (data.kind, data.metric) == ("bytes", "bits_per_character")
    with pytest.raises(ValueError, match="could not be loaded"):
        hub_dataset("text8", "nope")


def test_char_gpt2_on_text8_in_bits_per_character(fake_hub):
    result = evaluate("char-gpt2", "text8", limit=2, use_cache=False)
    ids = torch.tensor([list(b"one two three " * 40)[:512]]).view(2, 256)
    logits = accuracy._model("char-gpt2").hf(input_ids=ids).logits
    nats = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 256),
                                             ids[:, 1:].reshape(-1), reduction="sum")
    assert result["metric"] == "bits_per_character"
    assert result["value"] == pytest.approx(float(nats) / (2 * 255) / math.log(2), rel=1e-5)


def test_cbt_rows_become_cloze_examples(fake_hub):
    data = hub_dataset("cbt/cn", "test")
    assert data.kind == "cloze" and data.metric == "accuracy"
    assert list(data.labels) == [1, 0]  # "mat" is option 1, "ball" option 0
    assert data.examples[1] == ClozeExample("Tom has a red ball. He likes it.",
                                            "Tom threw the XXXXX .", ("ball", "tree", "cat"))
    assert data.source == "hub:cam-cst/cbt/CN"
    assert data.head(1).examples == data.examples[:1] and list(data.head(1).labels) == [1]


def test_candidates_fill_the_blank():
    example = ClozeExample("A b. C d.", "E XXXXX f.", ("g", "hh"))
    assert example.candidates() == [("A b. C d.", " E g f."), ("A b. C d.", " E hh f.")]


def test_cloze_truncation_keeps_the_last_tokens():
    ids, start = cloze_input([1, 2, 3, 4, 5], [6, 7, 8], 10)
    assert ids.tolist() == [[1, 2, 3, 4, 5, 6, 7, 8]] and start == 5
    ids, start = cloze_input([1, 2, 3, 4, 5], [6, 7, 8], 4)
    assert ids.tolist() == [[5, 6, 7, 8]] and start == 1
    ids, start = cloze_input([1, 2, 3, 4, 5], [6, 7, 8], 2)  # 6 cut; 7 has no context left
    assert ids.tolist() == [[7, 8]] and start == 1


def _toy_logits(probs: list[list[float]]) -> torch.Tensor:
    """Logits whose softmax at each position is the given distribution."""
    return torch.tensor(probs).log()[None]


def test_span_logprob_by_hand():
    logits = _toy_logits([[0.2, 0.3, 0.5], [0.25, 0.25, 0.5], [0.1, 0.8, 0.1], [1 / 3] * 3])
    ids = torch.tensor([[0, 1, 2, 1]])
    # position 2 (id 2) from row 1: 0.5; position 3 (id 1) from row 2: 0.8
    assert span_logprob(logits, ids, 2) == pytest.approx(math.log(0.5 * 0.8))
    assert span_logprob(logits, ids, 1) == pytest.approx(math.log(0.3 * 0.5 * 0.8))


def test_cloze_tally_picks_the_best_option():
    ids = torch.tensor([[0, 1, 2]])
    likely = _toy_logits([[0.05, 0.9, 0.05], [0.05, 0.05, 0.9], [1 / 3] * 3])  # 0.81
    unlikely = _toy_logits([[0.25, 0.5, 0.25], [0.25, 0.25, 0.5], [1 / 3] * 3])  # 0.25
    tally = accuracy._Tally("cloze")
    # example 0 (answer 1): option 1 likelier, right; example 1 (answer 0): wrong
    for example, label, options in ((0, 1, (unlikely, likely)), (1, 0, (unlikely, likely))):
        for logits in options:
            tally.add(logits, logits, ClozeOption(ids, 1, example, label))
    result = tally.result("accuracy")
    assert result["value"] == 0.5
    assert result["top1_agreement"] == 1.0 and result["n_positions"] == 12  # 4 x 3


def _char_gpt2_choice(example: ClozeExample) -> int:
    """The option char-gpt2 scores highest, computed here from its raw logits."""
    hf = accuracy._model("char-gpt2").hf
    scores = []
    for option in example.options:
        scored = (" " + example.question.replace("XXXXX", option)).encode()
        ids = list(example.context.encode() + scored)[-256:]
        logp = torch.log_softmax(hf(input_ids=torch.tensor([ids])).logits[0].double(), -1)
        first = max(len(ids) - len(scored), 1)
        scores.append(sum(float(logp[t - 1, ids[t]]) for t in range(first, len(ids))))
    return int(np.argmax(scores))


def test_char_gpt2_on_cbt_end_to_end(fake_hub):
    result = evaluate("char-gpt2", "cbt/cn", limit=2, use_cache=False)
    data = hub_dataset("cbt/cn", "test")
    choices = [_char_gpt2_choice(example) for example in data.examples]
    expected = np.mean(np.array(choices) == data.labels)
    assert result["metric"] == "accuracy" and result["value"] in {0.0, 0.5, 1.0}
    assert result["value"] == expected
    assert result["top1_agreement"] == 1.0 and result["mean_kl"] == 0.0
    # example 0: 479 context bytes, cut to 256 a candidate; example 1: 32 context bytes +
    # " Tom threw the ball ." (21), "tree" (21), "cat" (20)
    assert result["n_positions"] == 3 * 256 + (53 + 53 + 52)


def test_missing_datasets_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(ValueError, match=r"pip install 'prismsim\[hub\]'"):
        hub_dataset("cbt/cn", "test")


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'imdb'") as err:
        hub_dataset("imdb", "test")
    for name in ("wiki-xml", "cifar10", "glue/rte", "enwik8", "text8", "cbt/cn", "cbt/ne"):
        assert name in str(err.value)
