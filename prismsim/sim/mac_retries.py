"""Frame errors on a shared medium (WiFi) and how the MAC answers them: retries with
binary exponential backoff (IEEE 802.11 DCF, 802.11-2020 10.3.3).

A copy of ``n_bytes`` (payload and header) goes as ``ceil(n_bytes / frame_bytes)``
frames. Each transmission of a frame is lost with probability ``p`` (the link's
``frame_error_rate``), independently. The copy's airtime at no frame errors (its bits
at the link's goodput rate, which already holds each frame's MAC overhead and first
backoff) stands for one transmission of each frame; a lost transmission adds

- the frame again: its bits at the same rate, and
- the backoff before the retry: after the k-th failure in a row the contention window is
  ``CW_k = min((cw_min + 1) * 2^k - 1, cw_max)`` slots and the backoff is uniform on
  0..CW_k, ``CW_k / 2`` slots on average (taken at its mean here).

After ``retry_limit`` retries the MAC drops the frame; the transport re-sends it at once
(no retransmission timeout is modelled: it would delay the data without occupying the
medium), and the MAC starts over from ``cw_min``. So the failures of a frame before it
gets through are geometric, ``P(F >= k) = p^k``, without a bound, and attempt a (0 the
first) waits the backoff of stage ``a mod (retry_limit + 1)``. In closed form, a frame
takes ``p / (1 - p)`` retransmissions and ``sum_s p^s W_s / (1 - p^L) - W_0`` slots of
backoff more than at no errors on average (``W_s = CW_s / 2``, ``L = retry_limit + 1``).

A sampled world draws each frame's failures (one uniform each, by inverse transform)
and charges the copy its total: the retransmitted frames at the copy's mean frame size
(whose mean is the closed form's), the backoff of each failure's stage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from prismsim.cost.units import bytes_to_bits, us_to_s
from prismsim.sim.specs import LinkSpec

CHUNK_VALUES = 1 << 22  # uniforms drawn at a time (32 MiB of floats)


@dataclass(frozen=True)
class MacRetries:
    """A shared link's frame errors, retries and backoff, as the medium charges them."""

    error_rate: float  # p: share of a frame's transmissions that are lost
    frame_bytes: int
    slot_s: float
    mean_slots: tuple[float, ...]  # W_s = CW_s / 2 of stage s = 0..retry_limit

    @classmethod
    def of(cls, link: LinkSpec) -> MacRetries | None:
        """The link's MAC retries; None where it has no frame errors or is not shared
        (frame errors are modelled on shared media only)."""
        if link.frame_error_rate == 0 or link.medium != "shared":
            return None
        windows = [min((link.cw_min + 1) * 2 ** k - 1, link.cw_max)
                   for k in range(link.retry_limit + 1)]
        return cls(link.frame_error_rate, link.frame_bytes, us_to_s(link.slot_us),
                   tuple(cw / 2 for cw in windows))

    def frames(self, n_bytes: int) -> int:
        """Frames a copy of ``n_bytes`` goes as (one at least)."""
        return max(1, -(-n_bytes // self.frame_bytes))

    @property
    def retries_per_frame(self) -> float:
        """Mean retransmissions of a frame: p / (1 - p)."""
        p = self.error_rate
        return p / (1 - p)

    @property
    def extra_slots_per_frame(self) -> float:
        """Mean backoff slots of a frame beyond its first transmission's."""
        p, w = self.error_rate, self.mean_slots
        cycle = sum(p ** s * slots for s, slots in enumerate(w))
        return cycle / (1 - p ** len(w)) - w[0]

    def expected_backoff_s(self, n_bytes: int) -> float:
        """Mean backoff seconds of a copy of ``n_bytes`` beyond its frames' first ones."""
        return self.frames(n_bytes) * self.extra_slots_per_frame * self.slot_s

    def expected_extra_s(self, n_bytes: int, bits_per_s: float) -> tuple[float, float]:
        """(retransmissions, backoff) seconds a copy of ``n_bytes`` at ``bits_per_s``
        takes beyond its airtime at no frame errors, on average."""
        resend_s = bytes_to_bits(n_bytes) / bits_per_s * self.retries_per_frame
        return resend_s, self.expected_backoff_s(n_bytes)

    def frame_s(self, n_bytes: int, bits_per_s: float) -> float:
        """The mean frame's seconds of a copy of ``n_bytes`` at ``bits_per_s``: what each
        drawn retransmission of one of its frames takes."""
        return bytes_to_bits(n_bytes) / bits_per_s / self.frames(n_bytes)

    @cached_property
    def _stages(self) -> tuple[np.ndarray, float, float, float]:
        """(cumulative mean slots by stage, one cycle's slots, W_0, 1 / log p)."""
        w = np.asarray(self.mean_slots)
        return np.cumsum(w), float(w.sum()), float(w[0]), 1.0 / math.log(self.error_rate)

    def slots_after(self, failures: np.ndarray) -> np.ndarray:
        """Backoff slots beyond the first transmission's of frames that failed
        ``failures`` times (integers): attempt a waits W of stage a mod L."""
        cumulative, cycle, first, _ = self._stages
        cycles, stage = np.divmod(failures, len(cumulative))
        return cycles * cycle + cumulative[stage] - first

    def draw(self, rng: np.random.Generator, frames: int, rows: int, hops: int
             ) -> tuple[np.ndarray, np.ndarray]:
        """[rows, hops] retransmissions and extra backoff slots of copies of ``frames``
        frames: each frame's failures geometric, by inverse transform of one uniform
        (rows in order, so row i is the same whatever ``rows``)."""
        if rows * hops * frames <= CHUNK_VALUES:  # at once
            failures = self._failures(rng, (rows, hops, frames))
            return failures.sum(axis=-1), self.slots_after(failures).sum(axis=-1)
        retries, slots = np.empty((rows, hops)), np.empty((rows, hops))
        step = max(1, CHUNK_VALUES // (hops * frames))
        for r0 in range(0, rows, step):
            failures = self._failures(rng, (min(step, rows - r0), hops, frames))
            retries[r0:r0 + step] = failures.sum(axis=-1)
            slots[r0:r0 + step] = self.slots_after(failures).sum(axis=-1)
        return retries, slots

    def _failures(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Failures of frames before they get through: P(F >= k) = p^k, by inverse
        transform (1 - u in (0, 1], log over log p, rounded down)."""
        return (np.log1p(-rng.random(shape)) * self._stages[3]).astype(np.int64)
