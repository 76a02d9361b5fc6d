"""FLOPs of one compute step, counted by fvcore on the step's own code.

fvcore traces the step with TorchScript and counts multiply-accumulates of matmul,
linear, conv, einsum and the normalizations; element-wise ops (softmax, GELU, adds,
means) are not counted, which is the convention of the paper's tables. Attention must
be eager (explicit matmuls): fvcore does not see inside fused SDPA kernels.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from fvcore.nn import FlopCountAnalysis
from torch import Tensor, nn

from prismsim.cost.units import FLOPS_PER_MAC


class _Step(nn.Module):
    """Wraps ``fn(*args)`` so fvcore can trace it with only the tensors as inputs.

    ``sources`` says, per argument, where it comes from: a tensor input, a dict of tensor
    inputs, or a constant (None, numbers) passed as it is.
    """

    def __init__(self, fn: Callable[..., Any], sources: list[tuple[str, Any]]):
        super().__init__()
        self.fn, self.sources = fn, sources

    def forward(self, *tensors: Tensor) -> Any:
        args = []
        for kind, what in self.sources:
            if kind == "tensor":
                args.append(tensors[what])
            elif kind == "dict":
                args.append({k: tensors[i] for k, i in what})
            else:
                args.append(what)
        return self.fn(*args)


def _flatten(args: Sequence[Any]) -> tuple[list[Tensor], list[tuple[str, Any]]]:
    tensors: list[Tensor] = []
    sources: list[tuple[str, Any]] = []
    for a in args:
        if isinstance(a, Tensor):
            sources.append(("tensor", len(tensors)))
            tensors.append(a)
        elif isinstance(a, dict):
            sources.append(("dict", [(k, len(tensors) + i) for i, k in enumerate(a)]))
            tensors.extend(a.values())
        else:
            sources.append(("const", a))
    return tensors, sources


def signature(args: Sequence[Any]) -> tuple:
    """Shapes and dtypes of a step's tensor inputs (equal signatures, equal FLOPs)."""
    tensors, sources = _flatten(args)
    consts = tuple(repr(w) for k, w in sources if k == "const")
    return tuple((tuple(t.shape), str(t.dtype)) for t in tensors) + consts


def count_flops(fn: Callable[..., Any], args: Sequence[Any]) -> int:
    """FLOPs (2 x fvcore's multiply-accumulates) of calling ``fn(*args)`` once."""
    tensors, sources = _flatten(args)
    if not tensors:
        return 0
    analysis = FlopCountAnalysis(_Step(fn, sources), tuple(tensors))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    with warnings.catch_warnings():  # TorchScript's deprecation notice, once per trace
        warnings.simplefilter("ignore", DeprecationWarning)
        return FLOPS_PER_MAC * int(analysis.total())
