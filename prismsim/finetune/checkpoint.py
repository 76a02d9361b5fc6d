"""A training run's files: the result written last (so a file that exists is done) and
the checkpoint a long run keeps and resumes from (parameters, optimiser state, and what
else the run needs back, as tensors and a JSON sidecar)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn


def save(path: Path, state: dict[str, Tensor], meta: dict) -> None:
    """Tensors to ``path`` (safetensors) and ``meta`` to its .json sidecar, the tensors
    last: the file counts as done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(tmp))
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    tmp.replace(path)


def checkpoint(path: Path) -> Path:
    return path.with_suffix(".ckpt.safetensors")


def drop_checkpoint(path: Path) -> None:
    checkpoint(path).unlink(missing_ok=True)
    checkpoint(path).with_suffix(".json").unlink(missing_ok=True)


def save_checkpoint(path: Path, params: dict[str, nn.Parameter], opt: torch.optim.Optimizer,
                    step: int, extra: dict[str, Tensor] | None = None,
                    meta: dict | None = None) -> None:
    """Parameters, optimiser state and ``extra`` tensors after ``step`` steps; ``meta``
    in the sidecar beside the step."""
    state = {f"param.{n}": p for n, p in params.items()}
    for n, p in params.items():
        for k, v in opt.state.get(p, {}).items():
            state[f"opt.{n}.{k}"] = torch.as_tensor(v)
    state.update({f"extra.{k}": v for k, v in (extra or {}).items()})
    save(checkpoint(path), state, {"step": step, **(meta or {})})


def resume(path: Path, params: dict[str, nn.Parameter], opt: torch.optim.Optimizer
           ) -> tuple[int, dict[str, Tensor], dict]:
    """Steps already done (0 without a checkpoint), with parameters and optimiser state
    put back; the extra tensors and the sidecar."""
    ckpt = checkpoint(path)
    if not ckpt.exists():
        return 0, {}, {}
    state = load_file(str(ckpt))
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(state[f"param.{n}"])
            kept = {k.split(".")[-1]: v for k, v in state.items() if k.startswith(f"opt.{n}.")}
            if kept:
                opt.state[p] = kept
    meta = json.loads(ckpt.with_suffix(".json").read_text())
    extra = {k[len("extra."):]: v for k, v in state.items() if k.startswith("extra.")}
    return int(meta["step"]), extra, meta
