"""Sequence partitions and Segment Means (PRISM paper, Sec. IV-B, Eq. 8-9, Eq. 16)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def partition_sizes(n_tokens: int, n_parts: int, weights: Sequence[float] | None = None
                    ) -> tuple[int, ...]:
    """Token counts of ``n_parts`` contiguous partitions of ``n_tokens``.

    Equal split: sizes differ by at most one, the first ``n_tokens mod n_parts`` one
    longer (197 over 3 -> 66, 66, 65). With ``weights`` (e.g. device speeds), sizes are
    proportional to them, rounded by largest remainder so they still sum to n_tokens;
    every part gets at least one (3 over weights 10:1:1 -> 1, 1, 1).
    """
    if n_parts < 1 or n_tokens < n_parts:
        raise ValueError(f"cannot split {n_tokens} tokens into {n_parts} partitions")
    if weights is None:
        base, extra = divmod(n_tokens, n_parts)
        return tuple(base + (i < extra) for i in range(n_parts))
    if len(weights) != n_parts or min(weights) <= 0:
        raise ValueError(f"need {n_parts} positive weights, got {list(weights)}")
    shares = [n_tokens * w / sum(weights) for w in weights]
    sizes = [max(1, math.floor(s)) for s in shares]
    while sum(sizes) > n_tokens:  # lifting tiny shares to one took rows from the others
        sizes[max((i for i in range(n_parts) if sizes[i] > 1),
                  key=lambda i: sizes[i] - shares[i])] -= 1
    order = sorted(range(n_parts), key=lambda i: sizes[i] - shares[i])
    for i in order[: n_tokens - sum(sizes)]:
        sizes[i] += 1
    return tuple(sizes)


def n_segments(n_rows: int, cr: float | None = None, segments: int | None = None) -> int:
    """L, the number of Segment Means of a partition of ``n_rows`` tokens.

    Either given directly (``segments``, capped at n_rows) or from the compression rate:
    L = ceil(n_rows / CR) (Eq. 16). A tiny tolerance keeps 99 / 9.9 from becoming 11.
    """
    if (cr is None) == (segments is None):
        raise ValueError("give exactly one of cr or segments")
    if segments is not None:
        if segments < 1:
            raise ValueError(f"segments must be >= 1, got {segments}")
        return min(segments, n_rows)
    if cr < 1:
        raise ValueError(f"compression rate must be >= 1, got {cr}")
    return min(n_rows, max(1, math.ceil(n_rows / cr - 1e-9)))


def segment_sizes(n_rows: int, n_segs: int) -> tuple[int, ...]:
    """Eq. 8: base size s = floor(n / L); the first r = n mod L segments get s + 1
    (n = 10, L = 3 -> 4, 3, 3)."""
    base, extra = divmod(n_rows, n_segs)
    return tuple(base + (i < extra) for i in range(n_segs))


def segment_means(x: Tensor, sizes: Sequence[int]) -> Tensor:
    """Eq. 9: the column-wise mean of each contiguous segment. [B, n, d] -> [B, L, d].

    Segments have two sizes (s + 1 then s), so two reshapes do it without a loop.
    """
    b, n, d = x.shape
    if sum(sizes) != n:
        raise ValueError(f"segment sizes {tuple(sizes)} do not cover {n} rows")
    big, n_big = sizes[0], sum(1 for s in sizes if s == sizes[0])
    head = x[:, : big * n_big].reshape(b, n_big, big, d).mean(dim=2)
    if n_big == len(sizes):
        return head
    small = sizes[-1]
    tail = x[:, big * n_big:].reshape(b, len(sizes) - n_big, small, d).mean(dim=2)
    return torch.cat([head, tail], dim=1)


def segment_ends(offset: int, sizes: Sequence[int]) -> list[int]:
    """Global position of the last token each segment summarizes."""
    ends, pos = [], offset
    for s in sizes:
        pos += s
        ends.append(pos - 1)
    return ends


ROPE_POSITIONS = ("center", "end", "start")


def segment_positions(offset: int, sizes: Sequence[int], where: str = "center") -> list[float]:
    """The token position a segment's mean stands at (for rotary embeddings): its first
    token ("start"), its last ("end") or their midpoint ("center", (first + last) / 2)."""
    if where not in ROPE_POSITIONS:
        raise ValueError(f"rope position must be one of {ROPE_POSITIONS}, got {where!r}")
    out, first = [], offset
    for s in sizes:
        last = first + s - 1
        out.append({"start": float(first), "end": float(last), "center": (first + last) / 2}[where])
        first += s
    return out
