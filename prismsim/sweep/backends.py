"""Where a sweep's needs are computed: in this process, in local worker processes, or on
a Dask cluster (the optional ``prismsim[dask]`` extra)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from prismsim.progress import Progress, duration
from prismsim.sweep.compute import init_worker

BACKENDS = ("local", "dask")  # where a sweep's needs are computed


def run_many(fn: Callable[[Any], Any], needs: Sequence[Any], *, jobs: int = 1,
             backend: str = "local", scheduler: str | None = None,
             progress: Progress | None = None) -> dict:
    """{need: fn(need)} over every need, each reported to ``progress`` as it finishes."""
    if not needs:
        return {}
    if backend == "dask":
        return _run_dask(fn, needs, scheduler, progress)
    if backend != "local":
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if jobs <= 1:
        return _in_turn(fn, needs, progress)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(jobs, initializer=init_worker, initargs=(threads,)) as pool:
        return {n: _done(n, r, progress)
                for n, r in zip(needs, pool.map(fn, needs), strict=True)}


def _in_turn(fn: Callable[[Any], Any], needs: Sequence[Any], progress: Progress | None
             ) -> dict:
    """{need: fn(need)}, one after the other in this process. Each need is reported as it
    starts with its place among needs of its kind and, from the second on, the time the
    rest of them will take at the pace so far (a sweep's units differ a thousandfold in
    cost, so its overall ETA alone misleads while the slow kinds run)."""
    out, start = {}, time.monotonic()
    for i, need in enumerate(needs):
        if progress:
            progress(f"{need.label()} [{_place(i, len(needs), time.monotonic() - start)}]", 0)
        out[need] = _done(need, fn(need), progress)
    return out


def _place(i: int, n: int, elapsed_s: float) -> str:
    """'3/7, the rest about 1 min 20 s' for the 3rd of 7 needs started ``elapsed_s`` after
    the 1st."""
    if i == 0:
        return f"1/{n}"
    return f"{i + 1}/{n}, the rest about {duration(elapsed_s / i * (n - i))}"


def _done(need: Any, result: Any, progress: Progress | None) -> Any:
    if progress:
        progress(need.label())
    return result


def _run_dask(fn: Callable[[Any], Any], needs: Sequence[Any], scheduler: str | None,
              progress: Progress | None) -> dict:
    try:  # optional extra: imported only when asked for
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise RuntimeError("the dask backend needs the extra: pip install 'prismsim[dask]'") \
            from None
    cluster = None if scheduler else LocalCluster(n_workers=2, threads_per_worker=1,
                                                   processes=True, dashboard_address=None)
    with Client(scheduler or cluster) as client:
        futures = client.map(fn, needs, pure=False)
        out = {n: _done(n, f.result(), progress) for n, f in zip(needs, futures, strict=True)}
    if cluster is not None:
        cluster.close()
    return out
