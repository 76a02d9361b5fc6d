"""Offline datasets: sizes of the seeded splits, preprocessing by hand."""

import numpy as np
import pytest
import torch

from prismsim.datasets import digits, mnist_5k, rotten_tomatoes, wiki_bytes
from prismsim.models.pretrained import byte_windows, image_pixels


def test_split_sizes_and_disjointness():
    train, test = mnist_5k("train"), mnist_5k("test")
    assert (len(train.examples), len(test.examples)) == (4000, 1000)  # 20 % of 5,000
    assert train.examples.shape[1:] == (28, 28) and set(np.unique(test.labels)) == set(range(10))
    assert not {x.tobytes() for x in test.examples[:50]} & {x.tobytes() for x in train.examples}
    # 2,455 fresh + 2,411 rotten snippets (156 plot summaries dropped): 20 % is 973
    assert (len(rotten_tomatoes("train").examples), len(rotten_tomatoes("test").examples)) \
        == (3893, 973)
    assert len(digits("test").examples) == 359  # 20 % of 1,797
    with pytest.raises(ValueError):
        mnist_5k("validation")


def test_wiki_held_out_is_the_last_tenth():
    train, test = wiki_bytes("train"), wiki_bytes("test")
    assert len(test) == pytest.approx((len(train) + len(test)) / 10, abs=1)
    assert train.startswith(b"<mediawiki")


def test_image_preprocessing_by_hand():
    white = np.full((1, 28, 28), 255, dtype=np.uint8)
    pixels = image_pixels(white, 196)
    assert pixels.shape == (1, 3, 196, 196)
    # ImageNet normalization of 1.0: (1 - 0.485) / 0.229 in the red channel
    assert pixels[0, 0, 100, 100].item() == pytest.approx((1 - 0.485) / 0.229, rel=1e-5)
    assert pixels[0, 2, 0, 0].item() == pytest.approx((1 - 0.406) / 0.225, rel=1e-5)


def test_byte_windows():
    w = byte_windows(b"abcdefg", 3)
    assert torch.equal(w, torch.tensor([[97, 98, 99], [100, 101, 102]]))
