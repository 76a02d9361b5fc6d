"""What a compute step is made of, operator by operator: tracing records every aten
operator a step runs (``record_ops``), a matrix product by its sizes (``mm`` m x k x n,
``bmm`` b x m x k x n; a convolution, ``conv``, by the product it is), every other operator by
its kind and the bytes it reads and writes, views by their count. ``op_table`` turns
these into seconds on a device.

``record_step`` also gives what a step needs in memory: the resident tensors it reads
(weights: neither its arguments nor made within it) and its peak live bytes (its arguments
throughout, each temporary storage from the operator that makes it to its last use, or
to the end if the step returns it)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from prismsim.cost.op_table import OpCounts, OpKey

_VIEWS = {"_unsafe_view", "lift_fresh", "alias", "detach"}  # no data moved
_LOOKUPS = {"embedding", "index_select", "gather", "index"}  # a few rows of a big table
_CONSTANTS = {"lift_fresh", "lift_fresh_copy", "lift"}  # torch.tensor(...) made in a step
TensorKey = tuple  # the elements a tensor covers: (data_ptr, element size, sorted (size, stride))
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


def _fresh(func: Any) -> bool:
    """Ops that only take their inputs' dtype and shape (``new_zeros``, ``empty_like``)."""
    name = _name(func)
    return name.startswith("new_") or name.endswith("_like")


def tensor_key(t: Tensor) -> tuple[TensorKey, int]:
    """Which elements ``t`` covers, and their bytes (its own, not its storage's): a view
    and its transpose share a key; broadcast dimensions (stride 0) hold no bytes."""
    dims = tuple(sorted((n, s) for n, s in zip(t.shape, t.stride(), strict=True)
                        if n > 1 and s != 0))
    return (t.data_ptr(), t.element_size(), dims), math.prod(n for n, _ in dims) * \
        t.element_size()


def _tensors(tree: Any) -> list[Tensor]:
    return [t for t in tree_flatten(tree)[0]
            if isinstance(t, Tensor) and t.untyped_storage().nbytes() > 0]


def _storage(t: Tensor) -> int:
    return t.untyped_storage().data_ptr()


@dataclass
class _Liveness:
    """Storages an operator reads and makes, in order. A temporary is identified by the
    operator that allocated it: an address freed and allocated again is a new one."""

    args: set[int]  # storages of the step's arguments
    temps: dict[int, int] = field(default_factory=dict)  # storage -> its latest temporary
    born: list[int] = field(default_factory=list)  # per temporary: the op that made it
    last: list[int] = field(default_factory=list)  # ... the last op that used it
    sizes: list[int] = field(default_factory=list)  # ... its storage's bytes
    resident: dict[TensorKey, int] = field(default_factory=dict)
    # bytes of resident tensors (weights) its operators read, counted as ``memory_bytes``
    # counts them: each operator's every input (a lookup's whole table too)
    weight_read_bytes: int = 0
    n_ops: int = 0

    def op(self, func: Any, inputs: Iterable[Tensor], outputs: Iterable[Tensor]) -> None:
        name, i = _name(func), self.n_ops
        reads = not (func.is_view or name in _VIEWS or name in _CONSTANTS or _fresh(func))
        read: set[int] = set()
        made: set[int] = set()
        weights_read = 0
        for t in inputs:
            ptr = _storage(t)
            read.add(ptr)
            if ptr in self.temps:
                self.last[self.temps[ptr]] = i
            elif ptr not in self.args and reads:
                key, size = tensor_key(t)
                self.resident[key] = size
                weights_read += t.numel() * t.element_size()
        self.weight_read_bytes += weights_read
        for t in outputs:
            ptr = _storage(t)
            if (ptr not in read or name in _CONSTANTS) and ptr not in made:  # allocated
                made.add(ptr)
                self.temps[ptr] = len(self.sizes)
                self.born.append(i)
                self.last.append(i)
                self.sizes.append(t.untyped_storage().nbytes())
        self.n_ops += 1

    def peak_bytes(self, args_bytes: int, returned: Iterable[Tensor]) -> int:
        """The most bytes live at any operator (its inputs and outputs included)."""
        for t in returned:
            if (index := self.temps.get(_storage(t))) is not None:
                self.last[index] = self.n_ops - 1
        delta = [0] * (self.n_ops + 1)
        for born, last, size in zip(self.born, self.last, self.sizes, strict=True):
            delta[born] += size
            delta[last + 1] -= size
        live = peak = 0
        for d in delta[:-1]:
            live += d
            peak = max(peak, live)
        return args_bytes + peak


def _args_bytes(args: Sequence[Any]) -> int:
    """The bytes of a step's tensor arguments (each distinct tensor once)."""
    return sum(dict(tensor_key(t) for t in _tensors(list(args))).values())


class _Recorder(TorchDispatchMode):
    """Every aten operator run inside: its key, and the bytes all of them move; with
    ``liveness``, what each reads and makes."""

    def __init__(self, liveness: _Liveness | None = None) -> None:
        super().__init__()
        self.ops: Counter[OpKey] = Counter()
        self.bytes = 0
        self.liveness = liveness

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        key = op_key(func, args, out)
        self.ops[key] += 1
        if key[0] != "view":
            self.bytes += sum(t.numel() * t.element_size()
                              for t in tree_flatten((args, kwargs, out))[0]
                              if isinstance(t, Tensor))
        if self.liveness is not None:
            self.liveness.op(func, _tensors((args, kwargs)), _tensors(out))
        return out


@dataclass(frozen=True)
class StepRecord:
    """What recording one compute step gives."""

    result: Any
    memory_bytes: int  # bytes its operators read and wrote (unfused)
    ops: OpCounts
    resident: dict[TensorKey, int]  # tensors it read that it was not given nor made
    live_bytes: int  # the most bytes of arguments and temporaries live at once
    weight_read_bytes: int = 0  # of memory_bytes, what its operators read of the weights


def record_step(fn: Callable[..., Any], args: Sequence[Any]) -> StepRecord:
    """Call ``fn(*args)`` recording its operators and what it holds in memory."""
    liveness = _Liveness({_storage(t) for t in _tensors(list(args))})
    with _Recorder(liveness) as rec:
        result = fn(*args)
    live_bytes = liveness.peak_bytes(_args_bytes(args), _tensors(result))
    return StepRecord(result, rec.bytes, tuple(sorted(rec.ops.items(), key=repr)),
                      liveness.resident, live_bytes, liveness.weight_read_bytes)


def record_ops(fn: Callable[..., Any], args: Sequence[Any]) -> tuple[Any, int, OpCounts]:
    """Call ``fn(*args)``: its result, the bytes its operators read and wrote (unfused,
    the roofline's "bytes moved") and each operator with how often it ran."""
    with _Recorder() as rec:
        result = fn(*args)
    return result, rec.bytes, tuple(sorted(rec.ops.items(), key=repr))
