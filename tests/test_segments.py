"""Partitions and Segment Means against hand-computed values."""

import pytest
import torch

from prismsim.numerics.segments import (
    n_segments,
    partition_sizes,
    segment_ends,
    segment_means,
    segment_sizes,
)


def test_vit_tokens_over_three_devices():
    assert partition_sizes(197, 3) == (66, 66, 65)
    assert partition_sizes(197, 2) == (99, 98)
    assert partition_sizes(256, 3) == (86, 85, 85)


def test_ten_rows_in_three_segments():
    assert segment_sizes(10, 3) == (4, 3, 3)
    assert segment_sizes(65, 17) == (4,) * 14 + (3,) * 3  # 65 = 17*3 + 14


def test_segments_from_compression_rate():
    assert n_segments(99, cr=9.9) == 10  # 99 / 9.9 is 10.000000000000002 in floats
    assert n_segments(98, cr=9.9) == 10
    assert n_segments(66, cr=4) == 17
    assert n_segments(10, cr=1) == 10
    assert n_segments(10, segments=30) == 10  # never more segments than rows
    with pytest.raises(ValueError):
        n_segments(10, cr=0.5)
    with pytest.raises(ValueError):
        n_segments(10)


def test_weighted_partition_by_largest_remainder():
    # 197 * 2/3 = 131.33, 197 * 1/3 = 65.67: floors 131 + 65 = 196, the extra token
    # goes to the larger remainder (0.67)
    assert partition_sizes(197, 2, weights=[2, 1]) == (131, 66)
    assert partition_sizes(10, 3, weights=[1, 1, 2]) == (3, 2, 5)  # 2.5, 2.5, 5
    assert partition_sizes(197, 3, weights=[2, 1, 1]) == (99, 49, 49)  # 98.5, 49.25, 49.25


def test_weighted_partition_gives_every_part_at_least_one():
    # 3 over 10:1:1 = 2.5, 0.25, 0.25: the two small parts are lifted to 1, which the
    # large one gives back
    assert partition_sizes(3, 3, weights=[10, 1, 1]) == (1, 1, 1)
    # 5 over 100:1:1 = 4.90, 0.05, 0.05: floors 4, 1, 1 are one too many
    assert partition_sizes(5, 3, weights=[100, 1, 1]) == (3, 1, 1)


def test_segment_means_by_hand():
    x = torch.arange(10, dtype=torch.float32).reshape(1, 10, 1)  # rows 0..9
    means = segment_means(x, (4, 3, 3))
    # (0+1+2+3)/4, (4+5+6)/3, (7+8+9)/3
    assert means.flatten().tolist() == [1.5, 5.0, 8.0]
    assert segment_ends(20, (4, 3, 3)) == [23, 26, 29]


def test_segment_means_equal_sizes_and_batch():
    x = torch.tensor([[[1.0, 10.0], [3.0, 30.0]], [[5.0, 0.0], [7.0, 2.0]]])  # [2, 2, 2]
    assert segment_means(x, (2,)).tolist() == [[[2.0, 20.0]], [[6.0, 1.0]]]
    with pytest.raises(ValueError):
        segment_means(x, (1,))
