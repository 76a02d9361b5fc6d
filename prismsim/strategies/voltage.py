"""voltage: position-wise partitioning (Hu & Li, ICDCS 2024).

Device p holds rows X_p [B, n_p, d]. Per block: Q from X_p, K and V from the full
sequence [X_p ; X_r for r != p] ([B, N, d]), so after every block each device sends its
n_p x d output rows to the others (an AllGather: unicast copies, a broadcast, or
torch.distributed's all_gather ring, per ``exchange``). Output equals the single device.
In a causal model a device only attends to earlier rows, so with ``skip_masked`` rows go
only to later devices (fewer bytes and FLOPs, same output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prismsim.models.stack import Inputs, ModelStack
from prismsim.strategies import rowwise, rowwise_decode
from prismsim.strategies.decoding import Decode
from prismsim.strategies.program import DeviceContext, Program


@dataclass(frozen=True)
class Options:
    # True: causal models exchange only rows some query can see. False reproduces the
    # paper's accounting (full score matrix computed, then masked).
    skip_masked: bool = True
    # how rows travel after each block (strategies.EXCHANGES): "p2p" unicast copies,
    # "broadcast" one message, "ring" an all_gather as torch.distributed runs it
    exchange: Literal["p2p", "broadcast", "ring"] = "p2p"
    # decoding (rowwise_decode.DECODE_MODES): "split_kv", each device keeps its rows' K/V
    # and attends each new query over them; "local", the last device keeps every K/V it
    # computed in the prefill and decodes alone (no messages, all the cache on one device)
    decode: Literal["split_kv", "local"] = "split_kv"

    def __post_init__(self) -> None:
        rowwise.check_exchange(self.exchange)
        if self.decode not in rowwise_decode.DECODE_MODES:
            raise ValueError(f"voltage decode must be one of {rowwise_decode.DECODE_MODES}, "
                             f"got {self.decode!r}")


def plan(ctx: DeviceContext, stack: ModelStack, options: Options) -> rowwise.RowwisePlan:
    segments = tuple((1,) * n for n in ctx.sizes)  # every row is its own "segment"
    senders = rowwise.needed_senders(ctx, segments, stack.causal, options.skip_masked)
    return rowwise.RowwisePlan(segments=segments, senders=senders, summarize=lambda r: None,
                               exchange=options.exchange)


def program(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options
            ) -> Program:
    return rowwise.run(ctx, stack, inputs, plan(ctx, stack, options))


def generate(ctx: DeviceContext, stack: ModelStack, inputs: Inputs | None, options: Options,
             decode: Decode) -> Program:
    """Prefill, then decoding as ``options.decode`` says (exact either way)."""
    return rowwise_decode.generate(ctx, stack, inputs, plan(ctx, stack, options), decode,
                                   options.decode)
