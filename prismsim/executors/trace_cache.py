"""On-disk cache of traced workloads, keyed by everything that changes them.

Key: the model's architecture (config, HF class; weights do not change FLOPs or bytes),
strategy and options, device count and split, tokens, batch, wire dtype, and the
versions of prismsim, of the workload format and of transformers. One JSON file a
workload, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import transformers
from torch import nn

import prismsim
from prismsim.cache_dir import cache_root
from prismsim.executors.trace import trace_workload
from prismsim.models.catalog import BUILTINS, PRETRAINED, is_config_path
from prismsim.models.config_file import model_class
from prismsim.models.load import file_config
from prismsim.models.stack import ModelStack
from prismsim.workload import FORMAT, Workload


def model_identity(model: str | nn.Module | ModelStack) -> dict[str, Any]:
    """What identifies a model's architecture, cheaply (built-ins are not instantiated;
    a config.json file by its fields, never its path: editing it traces again)."""
    if isinstance(model, str) and model in BUILTINS:
        return {"builtin": model, "spec": asdict(BUILTINS[model])}
    if isinstance(model, str) and model in PRETRAINED:  # architecture fixed by pinned assets
        spec = PRETRAINED[model]
        return {"pretrained": model, "about": spec.about, "image_size": spec.image_size}
    if isinstance(model, ModelStack):
        model = model.hf
    if isinstance(model, nn.Module):
        config, cls = model.config, type(model).__name__
    elif is_config_path(model):  # checked as loading checks it: one line if unusable
        config = file_config(model)
        cls = model_class(config).__name__
    else:
        config = transformers.AutoConfig.from_pretrained(model)
        cls = (getattr(config, "architectures", None) or ["?"])[0]
    fields = json.loads(config.to_json_string(use_diff=False))
    fields.pop("_name_or_path", None)
    return {"class": cls, "config": fields}


def workload_key(model: str | nn.Module | ModelStack, strategy: str, devices: int,
                 options: dict[str, Any], *, tokens: int | None, batch: int, wire: str,
                 weights: Sequence[float] | None, generate: int | None = None) -> str:
    decode = {} if generate is None else {"generate": generate}  # prefill keys unchanged
    blob = json.dumps({**decode,
        "model": model_identity(model), "strategy": strategy, "devices": devices,
        "options": options, "tokens": tokens, "batch": batch, "wire": wire,
        "weights": list(weights) if weights else None, "prismsim": prismsim.__version__,
        "format": FORMAT,
        "transformers": version("transformers"),
    }, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


MEMORY_WORKLOADS = 32  # workloads a process keeps in memory, the most recently used


class WorkloadCache:
    """``get(...)`` returns the cached workload or traces and stores it. The last
    ``MEMORY_WORKLOADS`` a process got are kept in memory too (shared by every cache of
    the process, by file): a workload is read from disk once, and the simulator's
    preparations of it (``sim/ops.py``, kept per workload object) are reused. Treat a
    workload you get as read-only."""

    _memory: ClassVar[OrderedDict[Path, Workload]] = OrderedDict()

    def __init__(self, root: Path | None = None):
        self.root = (root or cache_root()) / "workloads"

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, model: str | nn.Module | ModelStack, strategy: str, devices: int, *,
            tokens: int | None = None, batch: int = 1, wire: str = "fp32",
            weights: Sequence[float] | None = None, generate: int | None = None,
            **options: Any) -> Workload:
        key = workload_key(model, strategy, devices, options, tokens=tokens, batch=batch,
                           wire=wire, weights=weights, generate=generate)
        path = self.path(key)
        if (wl := self._memory.get(path)) is not None:
            self._memory.move_to_end(path)
            return wl
        wl = self._read(path)
        if wl is None:
            wl = trace_workload(model, strategy, devices, tokens=tokens, batch=batch,
                                wire=wire, weights=weights, generate=generate, **options)
            self._store(path, wl)
        self._memory[path] = wl
        if len(self._memory) > MEMORY_WORKLOADS:
            self._memory.popitem(last=False)
        return wl

    @staticmethod
    def _read(path: Path) -> Workload | None:
        """The workload stored at ``path``; None (and the file gone) if there is none,
        or it is damaged or of another format (it is traced again)."""
        if not path.exists():
            return None
        try:
            return Workload.load(path)
        except (ValueError, KeyError, TypeError, IndexError):
            path.unlink()
            return None

    def _store(self, path: Path, wl: Workload) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(wl.to_json())
        tmp.replace(path)  # atomic: a reader never sees half a file
