"""Where a sweep's needs are computed: in this process, in local worker processes, or on
a Dask cluster (the optional ``prismsim[dask]`` extra)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from prismsim.progress import Progress
from prismsim.sweep.compute import init_worker

EXECUTORS = ("local", "dask")


def run_many(fn: Callable[[Any], Any], needs: Sequence[Any], *, jobs: int = 1,
             executor: str = "local", scheduler: str | None = None,
             progress: Progress | None = None) -> dict:
    """{need: fn(need)} over every need, each reported to ``progress`` as it finishes."""
    if not needs:
        return {}
    if executor == "dask":
        return _run_dask(fn, needs, scheduler, progress)
    if executor != "local":
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if jobs <= 1:
        return {n: _done(n, fn(_started(n, progress)), progress) for n in needs}
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(jobs, initializer=init_worker, initargs=(threads,)) as pool:
        return {n: _done(n, r, progress)
                for n, r in zip(needs, pool.map(fn, needs), strict=True)}


def _started(need: Any, progress: Progress | None) -> Any:
    if progress:
        progress(need.label(), 0)
    return need


def _done(need: Any, result: Any, progress: Progress | None) -> Any:
    if progress:
        progress(need.label())
    return result


def _run_dask(fn: Callable[[Any], Any], needs: Sequence[Any], scheduler: str | None,
              progress: Progress | None) -> dict:
    try:  # optional extra: imported only when asked for
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise RuntimeError("the dask executor needs the extra: pip install 'prismsim[dask]'") \
            from None
    cluster = None if scheduler else LocalCluster(n_workers=2, threads_per_worker=1,
                                                   processes=True, dashboard_address=None)
    with Client(scheduler or cluster) as client:
        futures = client.map(fn, needs, pure=False)
        out = {n: _done(n, f.result(), progress) for n, f in zip(needs, futures, strict=True)}
    if cluster is not None:
        cluster.close()
    return out
