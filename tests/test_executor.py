"""The in-memory executor and the collectives written as messages."""

import pytest
import torch

from prismsim.executors.memory import DeadlockError, InMemoryNetwork, run_in_memory
from prismsim.numerics.segments import partition_sizes
from prismsim.strategies.collectives import allreduce
from prismsim.strategies.program import DeviceContext, Expect, Post, Recv, Tag, send


def _ctxs(n: int, tokens: int = 6) -> list[DeviceContext]:
    sizes = partition_sizes(tokens, n)
    return [DeviceContext(device=p, sizes=sizes, batch=1, hidden=2) for p in range(n)]


def _allreduce_program(ctx, x, algorithm):
    out = yield from allreduce(ctx, x, Tag("t"), algorithm)
    return out


@pytest.mark.parametrize("algorithm", ["ring", "direct"])
def test_allreduce_sums_and_counts_bytes(algorithm):
    n, tokens, hidden = 3, 6, 2
    parts = [torch.full((1, tokens, hidden), float(10 ** p)) for p in range(n)]  # 1, 10, 100
    net = InMemoryNetwork(n)
    results = run_in_memory([_allreduce_program(c, parts[c.device], algorithm)
                             for c in _ctxs(n, tokens)], net)
    for r in results:
        assert torch.equal(r, torch.full((1, tokens, hidden), 111.0))
    elems = tokens * hidden
    # ring: 2 (P-1) steps of one N/P chunk each; direct: the whole tensor to P-1 peers
    per_device = 2 * (n - 1) * (elems // n) if algorithm == "ring" else (n - 1) * elems
    assert net.sent_bytes == [per_device * 4] * n


def test_deadlock_is_reported():
    def waits(ctx):
        yield Recv((Expect(1 - ctx.device, Tag("never"), (1,)),))

    with pytest.raises(DeadlockError):
        run_in_memory([waits(c) for c in _ctxs(2)])


def test_wrong_shape_is_an_error():
    def sender(ctx):
        yield send(0, (1,), Tag("x"), torch.zeros(3))

    def receiver(ctx):
        yield Recv((Expect(0, Tag("x"), (4,)),))

    ctxs = _ctxs(2)
    with pytest.raises(ValueError, match="expected"):
        run_in_memory([sender(ctxs[0]), receiver(ctxs[1])])


def test_posted_receives_are_taken_by_later_receives():
    def sender(ctx):
        yield send(0, (1,), Tag("a"), torch.ones(2))
        yield send(0, (1,), Tag("b"), torch.full((3,), 2.0))

    def receiver(ctx):
        reply = yield Post((Expect(0, Tag("b"), (3,)), Expect(0, Tag("a"), (2,))))
        assert reply is None  # a post returns at once, with nothing
        a = (yield Recv((Expect(0, Tag("a"), (2,)),))).get(0, Tag("a"))
        b = (yield Recv((Expect(0, Tag("b"), (3,)),))).get(0, Tag("b"))
        return a.sum() + b.sum()

    ctxs = _ctxs(2)
    assert run_in_memory([sender(ctxs[0]), receiver(ctxs[1])])[1].item() == 8.0
