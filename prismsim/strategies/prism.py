"""prism: position-wise partitioning with Segment Means (PRISM paper, Sec. IV).

Device p holds rows X_p [B, n_p, d]. After every block it splits its output rows into
L_p = ceil(n_p / CR) contiguous segments (first n_p mod L_p one longer, Eq. 8) and sends
their means [B, L_p, d] (Eq. 9) instead of the rows. Device p then attends with
Q = X_p Wq and K, V = X~_p Wk, Wv where X~_p = [X_p ; means of the others]
([B, n_p + sum L_r, d], Eq. 6). Scaling-aware softmax (Eq. 13-15): a mean standing for c
tokens adds log(c) to its scores, equal to duplicating it c times (``duplicate=True``
does the duplication, Eq. 11, for comparison). Causal models use global positions
(Eq. 17): a mean is visible to query t only if all its tokens are at positions <= t.
With rotary embeddings (Llama) a mean's key is rotated at one position of its segment
(``rope_position``, the centre by default); queries and own keys at their own positions.
For the first block the master sends each device its partition plus the others' means.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

from prismsim.models.stack import Inputs, ModelStack
from prismsim.numerics.segments import (
    ROPE_POSITIONS,
    n_segments,
    segment_means,
    segment_sizes,
)
from prismsim.strategies import rowwise, rowwise_decode
from prismsim.strategies.decoding import Decode
from prismsim.strategies.program import DeviceContext, Program


@dataclass(frozen=True)
class Options:
    # compression rate CR = n_p / L; L = ceil(n_p / CR). Give this or ``segments``.
    cr: float | None = None
    # L, Segment Means per partition (the paper's Table IV "10/20/30 means").
    segments: int | None = None
    # False: scaling-aware softmax on n_p + sum(L) keys (PRISM). True: means duplicated.
    duplicate: bool = False
    # "global": causal mask on global positions (correct). "local": Fig. 3b's mistake.
    mask: Literal["global", "local"] = "global"
    # True: causal models send means only to later devices (earlier ones mask them out).
    skip_masked: bool = True
    # how means travel after each block (strategies.EXCHANGES): "p2p" unicast copies,
    # "broadcast" one message, "ring" an all_gather as torch.distributed runs it
    exchange: Literal["p2p", "broadcast", "ring"] = "p2p"
    # rotary embeddings (Llama): the position a mean is rotated at, of the segment it
    # stands for: "center" ((first + last) / 2), "end" (its last token) or "start"
    rope_position: Literal["center", "end", "start"] = "center"

    def __post_init__(self) -> None:
        rowwise.check_exchange(self.exchange)
        if self.rope_position not in ROPE_POSITIONS:
            raise ValueError(f"prism rope_position must be one of {ROPE_POSITIONS}, "
                             f"got {self.rope_position!r}")
        if (self.cr is None) == (self.segments is None):
            raise ValueError("prism needs exactly one of cr= or segments=")
        if self.mask not in ("global", "local"):
            raise ValueError(f"prism mask must be 'global' or 'local', got {self.mask!r}")


def plan(ctx: DeviceContext, stack: ModelStack, options: Options) -> rowwise.RowwisePlan:
    segments = tuple(segment_sizes(n, n_segments(n, options.cr, options.segments))
                     for n in ctx.sizes)
    skip = options.skip_masked and options.mask == "global"
    senders = rowwise.needed_senders(ctx, segments, stack.causal, skip)
    return rowwise.RowwisePlan(
        segments=segments, senders=senders,
        summarize=lambda r: partial(segment_means, sizes=segments[r]),
        duplicate=options.duplicate, local_mask=options.mask == "local",
        exchange=options.exchange, rope_position=options.rope_position)


def program(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options
            ) -> Program:
    return rowwise.run(ctx, stack, inputs, plan(ctx, stack, options))


def generate(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options,
             decode: Decode) -> Program:
    """Prefill, then the last device decodes alone: its own rows' K/V and those of the
    earlier partitions' Segment Means, each with its log-count bias; no messages."""
    return rowwise_decode.generate(ctx, stack, inputs, plan(ctx, stack, options), decode,
                                   "local")
