"""What a compute step is made of, operator by operator: tracing records every aten
operator a step runs (``record_ops``), a matrix product by its sizes (``mm`` m x k x n,
``bmm`` b x m x k x n; a convolution, ``conv``, by the product it is), every other operator by
its kind and the bytes it reads and writes, views by their count. ``op_table`` turns
these into seconds on a device."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from prismsim.cost.op_table import OpCounts, OpKey

_VIEWS = {"_unsafe_view", "lift_fresh", "alias", "detach"}  # no data moved
_LOOKUPS = {"embedding", "index_select", "gather", "index"}  # a few rows of a big table
# Element-wise and reduction operators by the kind whose bandwidth they are given
KINDS = {
    "native_layer_norm": "layer_norm", "_softmax": "softmax", "gelu": "unary",
    "tanh": "unary", "pow": "unary", "exp": "unary", "log": "unary", "sqrt": "unary",
    "rsqrt": "unary", "neg": "unary", "silu": "unary", "relu": "unary", "sigmoid": "unary",
    "add": "binary", "mul": "binary", "sub": "binary", "div": "binary", "where": "binary",
    "le": "binary", "lt": "binary", "masked_fill": "binary", "mean": "reduce",
    "sum": "reduce", "amax": "reduce",
}  # everything else moves memory: "copy" (clone, cat, pad, embedding, gather, ...)


def _name(func: Any) -> str:
    return str(func).removeprefix("aten.").split(".")[0]


def op_key(func: Any, args: Sequence[Any], out: Any) -> OpKey:
    """What one aten operator is, for the compute model."""
    name = _name(func)
    if func.is_view or name in _VIEWS:
        return ("view",)
    tensors = [a for a in args if isinstance(a, Tensor)]
    if name in ("mm", "addmm"):
        a, b = tensors[-2], tensors[-1]
        return ("mm", a.shape[0], a.shape[1], b.shape[1])
    if name in ("bmm", "baddbmm"):
        a, b = tensors[-2], tensors[-1]
        return ("bmm", a.shape[0], a.shape[1], a.shape[2], b.shape[2])
    if name == "convolution":
        x, w = tensors[0], tensors[1]
        positions = out.numel() // (out.shape[0] * out.shape[1])
        return ("conv", x.shape[0] * positions, w[0].numel(), w.shape[0])
    if name in _LOOKUPS:  # reads only the rows it looks up (and writes them)
        moved = 2 * sum(t.numel() * t.element_size() for t in tree_flatten(out)[0]
                        if isinstance(t, Tensor))
    else:
        moved = sum(t.numel() * t.element_size() for t in tree_flatten((args, out))[0]
                    if isinstance(t, Tensor))
    return ("ew", KINDS.get(name, "copy"), moved)


class _Recorder(TorchDispatchMode):
    """Every aten operator run inside: its key, and the bytes all of them move."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[OpKey] = Counter()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        key = op_key(func, args, out)
        self.ops[key] += 1
        if key[0] != "view":
            self.bytes += sum(t.numel() * t.element_size()
                              for t in tree_flatten((args, kwargs, out))[0]
                              if isinstance(t, Tensor))
        return out


def record_ops(fn: Callable[..., Any], args: Sequence[Any]) -> tuple[Any, int, OpCounts]:
    """Call ``fn(*args)``: its result, the bytes its operators read and wrote (unfused,
    the roofline's "bytes moved") and each operator with how often it ran."""
    with _Recorder() as rec:
        result = fn(*args)
    return result, rec.bytes, tuple(sorted(rec.ops.items(), key=repr))
