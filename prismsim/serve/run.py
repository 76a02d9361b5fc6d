"""``prismsim serve``: every configuration of a serving file at every offered load,
replicated, and its capacity under the SLO; each finished run is kept (``parts/``), so an
interrupted run resumes where it stopped."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from prismsim.executors.trace_cache import WorkloadCache
from prismsim.progress import Progress
from prismsim.serve.arrivals import arrivals_s
from prismsim.serve.engine import serve, serving_replay
from prismsim.serve.file import ADAPTIVE, LoadedServe, ServeError, ServingConfiguration
from prismsim.serve.pools import AdaptiveSetup, Candidate, adaptive_replay
from prismsim.serve.requests import ServingResult, ServingSetup
from prismsim.serve.resplit import Resplit
from prismsim.serve.stats import aggregate, request_table, run_summary
from prismsim.serve.streams import closed_loop, open_loop
from prismsim.sim import simulate
from prismsim.strategies import CannotRunError
from prismsim.workload import Workload

CAPACITY_STEPS = 12  # bisection halvings: the capacity to 1/4096 of the upper bound


class Offered(NamedTuple):
    """An offered load: ("rate", requests per s), ("clients", N) or ("trace", 0); a run's
    columns ``load`` and ``value``."""

    kind: str
    value: float


@dataclass
class Served:
    """A configuration ready to serve: its workloads and the run settings."""

    index: int
    label: str
    config: ServingConfiguration
    setup: ServingSetup | AdaptiveSetup
    fingerprint: str  # of everything a run's result depends on but the offered load, seed

    @property
    def devices(self) -> int:
        return self.config.groups * self.config.devices


def prepare(loaded: LoadedServe, cache: WorkloadCache, progress: Progress) -> list[Served]:
    """Trace (or take from the cache) each configuration's workloads, one per batch size."""
    out = []
    for i, c in enumerate(loaded.file.configurations):
        progress(f"workloads of {loaded.label(i)}", 0)
        try:
            setup = (_adaptive_setup(loaded, c, cache) if c.strategy == ADAPTIVE
                     else _fixed_setup(loaded, c, cache))
        except CannotRunError as err:  # the model's heads were known only once loaded
            raise ServeError(f"{loaded.path.name}: configurations[{i}]: {err}") from None
        out.append(Served(i, loaded.label(i), c, setup, _fingerprint(loaded, c)))
    return out


def _fixed_setup(loaded: LoadedServe, c: ServingConfiguration, cache: WorkloadCache
                 ) -> ServingSetup:
    options = {k: v for k, v in (("cr", c.cr), ("segments", c.segments),
                                 ("exchange", c.exchange)) if v is not None}
    def workloads(weights: tuple[float, ...] | None = None) -> dict[int, Workload]:
        return {b: cache.get(loaded.model, c.strategy, c.devices, batch=b,
                             tokens=loaded.file.model.tokens, weights=weights, **options)
                for b in range(1, c.max_batch + 1)}

    resplit = None if c.resplit is None else Resplit(
        workloads, c.resplit.window_ms / 1e3, c.resplit.threshold)
    return ServingSetup(workloads(), c.groups, c.dispatch, c.queue_limit, c.max_batch,
                        c.max_wait_ms / 1e3, resplit=resplit)


def _adaptive_setup(loaded: LoadedServe, c: ServingConfiguration, cache: WorkloadCache
                    ) -> AdaptiveSetup:
    assert c.candidates
    candidates = tuple(
        Candidate(k.label(), cache.get(loaded.model, k.strategy, k.on(c.devices),
                                       batch=1, tokens=loaded.file.model.tokens,
                                       **k.options()))
        for k in c.candidates)
    return AdaptiveSetup(candidates, c.devices, c.groups, c.dispatch, c.queue_limit,
                         policy=c.policy, detect_s=c.detect_ms / 1e3)


# what a serving run's figures do not depend on unless it draws from it (the serving
# file's variability: true): a device's or a link's variability leaves the runs of mean
# times, and their names, as they were
MEAN_TIMES_ONLY = {"variability"}
# a device's memory: what fits is not a serving run's figure (left out of its name)
MEMORY = {"memory_gib", "runtime_gib", "memory_source"}
# the rates of other weight precisions: a serving run's weights are fp32's
PRECISIONS = {"peak_gflops_by_dtype"}
# a link's frame errors and MAC retries: left out of the names when there are none
FRAME_ERRORS = {"frame_error_rate", "frame_bytes", "retry_limit", "cw_min", "cw_max",
                "slot_us"}


def _fingerprint(loaded: LoadedServe, c: ServingConfiguration) -> str:
    stream = loaded.file.serving
    unused = set() if stream.variability else MEAN_TIMES_ONLY
    device = loaded.devices[c.profile].model_dump(exclude=unused | MEMORY | PRECISIONS)
    # as before traces and frame errors existed, when the link has neither
    steady = {"trace"} if loaded.link.trace is None else set()
    if loaded.link.frame_error_rate == 0:
        steady |= FRAME_ERRORS
    config = c.model_dump(exclude=_unused_keys(loaded, c))
    for k in config.get("candidates") or []:  # as before a candidate could be re-planned
        if k.get("devices") is None:
            k.pop("devices", None)
    what = {"model": loaded.model, "tokens": loaded.file.model.tokens, "config": config,
            "device": device,
            "link": loaded.link.model_dump(exclude=unused | steady),
            "stream": stream.model_dump(exclude={"rates_per_s", "clients", "replications",
                                                 "slo_p99_ms", "max_drop_share"} | unused)}
    if events := loaded.events_for(c):
        what["events"] = [e.model_dump(mode="json", exclude={"source"}) for e in events]
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()
                          ).hexdigest()[:16]


def _unused_keys(loaded: LoadedServe, c: ServingConfiguration) -> set[str]:
    """Configuration keys left out of its fingerprint when they change nothing (so runs
    saved before they existed keep their names)."""
    unused = {"resplit"} if c.resplit is None else set()
    if c.policy == "nominal" and not loaded.file.events:
        unused |= {"policy", "detect_ms"}
    return unused


def _serve_once(loaded: LoadedServe, sv: Served, offered: Offered, seed: int
                ) -> ServingResult:
    stream, device = loaded.file.serving, loaded.devices[sv.config.profile]
    setup = replace(sv.setup, seed=seed) if stream.variability else sv.setup
    events = loaded.events_for(sv.config)
    adaptive = isinstance(setup, AdaptiveSetup)
    if offered.kind == "clients":
        replay = (adaptive_replay(setup, device, loaded.link, events=events) if adaptive
                  else serving_replay(setup, device, loaded.link, events=events))
        rng = np.random.default_rng(seed)
        return replay.run_stream(lambda out: closed_loop(
            replay, int(offered.value), lambda: rng.exponential(stream.think_ms / 1e3),
            stream.requests, out))
    if offered.kind == "trace":
        assert loaded.trace_s is not None
        times = loaded.trace_s
    else:
        times = arrivals_s(stream.arrivals, offered.value, stream.requests, seed,
                           on_s=stream.on_s, off_s=stream.off_s)
    if adaptive:
        replay = adaptive_replay(setup, device, loaded.link, events=events)
        return replay.run_stream(lambda out: open_loop(replay, times, out))
    return serve(setup, times, device, loaded.link, events=events)  # heap replay if it may


class Parts:
    """Finished runs on disk: a summary (JSON) and the requests (parquet) per run."""

    def __init__(self, out: Path):
        self.dir = out / "parts"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _name(self, sv: Served, offered: Offered, rep: int) -> str:
        return f"{sv.fingerprint}-{offered.kind}-{offered.value!r}-r{rep}"

    def get(self, sv: Served, offered: Offered, rep: int) -> dict[str, Any] | None:
        path = self.dir / f"{self._name(sv, offered, rep)}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, sv: Served, offered: Offered, rep: int, summary: dict[str, Any],
            requests: pd.DataFrame | None) -> None:
        name = self._name(sv, offered, rep)
        if requests is not None:
            tmp = self.dir / f"{name}.parquet.tmp"
            requests.to_parquet(tmp, index=False)
            tmp.replace(self.dir / f"{name}.parquet")
        tmp = self.dir / f"{name}.json.tmp"
        tmp.write_text(json.dumps(summary))
        tmp.replace(self.dir / f"{name}.json")  # last: the run counts as done

    def requests(self, sv: Served, offered: Offered, rep: int) -> pd.DataFrame:
        return pd.read_parquet(self.dir / f"{self._name(sv, offered, rep)}.parquet")


def run_one(loaded: LoadedServe, sv: Served, parts: Parts, offered: Offered, rep: int,
            keep_requests: bool) -> dict[str, Any]:
    """One replication at one offered load: its summary row (from ``parts`` if done
    before)."""
    done = parts.get(sv, offered, rep)
    if done is not None:
        return done
    stream = loaded.file.serving
    result = _serve_once(loaded, sv, offered, stream.seed + rep)
    table = request_table(result, stream.warmup)
    row = {"label": sv.label, "configuration": sv.index, "load": offered.kind,
           "value": offered.value, "replication": rep, **run_summary(result, table)}
    parts.put(sv, offered, rep, row, table if keep_requests else None)
    return row


def offered_loads(loaded: LoadedServe) -> list[Offered]:
    stream = loaded.file.serving
    if stream.arrivals == "trace":
        return [Offered("trace", 0.0)]
    if stream.arrivals == "closed":
        return [Offered("clients", float(n)) for n in stream.clients]
    return [Offered("rate", r) for r in stream.rates_per_s]


def replications(loaded: LoadedServe) -> int:
    """A replayed trace is the same every time: one replication."""
    stream = loaded.file.serving
    return 1 if stream.arrivals == "trace" else stream.replications


def grid_runs(loaded: LoadedServe, served: list[Served], parts: Parts, progress: Progress
              ) -> Iterator[dict[str, Any]]:
    for sv in served:
        for offered in offered_loads(loaded):
            at = f"{sv.label} at {offered.kind} {offered.value:g}"
            for rep in range(replications(loaded)):
                progress(f"{at}, replication {rep + 1}", 0)
                yield run_one(loaded, sv, parts, offered, rep, True)
                progress(at, 1)


def _batch_workloads(sv: Served) -> list[tuple[int, Workload]]:
    """(batch size, workload) of every way the configuration serves a batch."""
    if isinstance(sv.setup, AdaptiveSetup):
        return [(1, c.workload) for c in sv.setup.candidates]
    return list(sv.setup.workloads.items())


def one_inference_s(loaded: LoadedServe, sv: Served) -> float:
    """One request's latency on idle devices, batch 1 (adaptive: its fastest way)."""
    device = loaded.devices[sv.config.profile]
    return min(simulate(wl, device, loaded.link).latency_s
               for b, wl in _batch_workloads(sv) if b == 1)


def upper_rate(loaded: LoadedServe, sv: Served) -> float:
    """No offered load above this can be served: each group's busiest device is busy all
    the time, or (one shared channel) the channel carries something all the time, with
    batches of the best size (adaptive: its best candidate, a local one on every device;
    a mix of candidates is never above the best of them)."""
    device, link, groups = loaded.devices[sv.config.profile], loaded.link, sv.config.groups
    best = 0.0
    for b, wl in _batch_workloads(sv):
        r = simulate(wl, device, link)
        busy = max(max(d.compute_s + d.staging_s, d.tx_s) for d in r.devices)
        copies = groups * (sv.config.devices if wl.n_devices < sv.config.devices else 1)
        rate = copies * b / busy
        if link.medium == "shared":  # every transmission of every group takes its turn
            channel_s = (2 if link.relay else 1) * sum(d.tx_s for d in r.devices)
            rate = min(rate, b / channel_s) if channel_s > 0 else rate
        best = max(best, rate)
    return best


def check_slo(loaded: LoadedServe, served: list[Served]) -> None:
    """An SLO no configuration meets even on idle devices is a mistake in the file."""
    slo_ms = loaded.file.serving.slo_p99_ms
    if slo_ms is None:
        return
    idle_ms = [one_inference_s(loaded, sv) * 1e3 for sv in served]
    if min(idle_ms) > slo_ms:
        best = served[idle_ms.index(min(idle_ms))].label
        raise ServeError(f"{loaded.path.name}: serving.slo_p99_ms: {slo_ms:g} ms is below "
                         f"one inference on idle devices of every configuration (fastest: "
                         f"{best}, {min(idle_ms):.1f} ms): no load meets it")


def _meets(loaded: LoadedServe, rows: list[dict[str, Any]]) -> bool:
    stream = loaded.file.serving
    agg = aggregate(pd.DataFrame(rows), ["label"]).iloc[0]
    assert stream.slo_p99_ms is not None
    return bool(agg["latency_p99_s"] * 1e3 <= stream.slo_p99_ms
                and agg["drop_share"] <= stream.max_drop_share)


def capacity(loaded: LoadedServe, sv: Served, parts: Parts, progress: Progress
             ) -> dict[str, Any]:
    """The highest rate (of the file's arrival pattern) whose mean p99 over the
    replications stays within the SLO with few enough drops, by bisection between 0 and
    the upper bound; the same seeds at every rate. 0 when one inference on idle devices
    already takes longer than the SLO."""
    slo_ms = loaded.file.serving.slo_p99_ms
    assert slo_ms is not None
    upper, idle_ms = upper_rate(loaded, sv), one_inference_s(loaded, sv) * 1e3
    lo, hi, rows_at_lo = 0.0, upper, []
    for _ in range(CAPACITY_STEPS if idle_ms <= slo_ms else 0):
        mid = (lo + hi) / 2
        progress(f"capacity of {sv.label}: {mid:.3g}/s", 0)
        rows = [run_one(loaded, sv, parts, Offered("rate", mid), rep, False)
                for rep in range(replications(loaded))]
        if _meets(loaded, rows):
            lo, rows_at_lo = mid, rows
        else:
            hi = mid
    progress(f"capacity of {sv.label}", 1)
    agg = aggregate(pd.DataFrame(rows_at_lo), ["label"]).iloc[0] if rows_at_lo else None
    return {"label": sv.label, "capacity_per_s": lo, "upper_bound_per_s": upper,
            "slo_p99_ms": slo_ms, "single_inference_ms": idle_ms,
            "p99_at_capacity_ms": math.nan if agg is None else agg["latency_p99_s"] * 1e3}


def count_steps(loaded: LoadedServe) -> int:
    n_conf = len(loaded.file.configurations)
    grid = n_conf * len(offered_loads(loaded)) * replications(loaded)
    cap = n_conf if loaded.file.serving.slo_p99_ms is not None else 0
    return grid + cap


@dataclass
class ServingRun:
    runs: pd.DataFrame  # one row per configuration x offered load x replication
    requests: pd.DataFrame  # every request of those runs
    capacity: pd.DataFrame | None  # one row per configuration (with an SLO)


def run_serving(loaded: LoadedServe, out: Path, progress: Progress,
                cache: WorkloadCache | None = None, fresh: bool = False) -> ServingRun:
    """Every configuration at every offered load (and its capacity, with an SLO); runs
    finished by an earlier call with the same settings are read back, not simulated
    again."""
    cache = cache or WorkloadCache()
    served = prepare(loaded, cache, progress)
    check_slo(loaded, served)
    parts = Parts(out)
    if fresh:
        for f in parts.dir.iterdir():
            f.unlink()
    runs = pd.DataFrame(list(grid_runs(loaded, served, parts, progress)))
    frames = []
    for row in runs.itertuples():
        table = parts.requests(served[row.configuration], Offered(row.load, row.value),
                               row.replication)
        frames.append(table.assign(label=row.label, load=row.load, value=row.value,
                                   replication=row.replication))
    cap = None
    if loaded.file.serving.slo_p99_ms is not None:
        cap = pd.DataFrame([capacity(loaded, sv, parts, progress) for sv in served])
    requests = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return ServingRun(runs, requests, cap)
