"""Where prismsim keeps what it computed or fetched once: workloads, accuracies,
converted weights and assets (each in a folder of its own under one root)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def cache_root() -> Path:
    """$PRISMSIM_CACHE_DIR, else $XDG_CACHE_HOME/prismsim, else ~/.cache/prismsim."""
    if os.environ.get("PRISMSIM_CACHE_DIR"):
        return Path(os.environ["PRISMSIM_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "prismsim"


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temp file in the same folder and rename it over ``path``, so a reader
    (or a concurrent converter) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
