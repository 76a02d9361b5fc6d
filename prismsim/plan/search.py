"""The plan's search: every deployment (device kind, count, strategy, CR, link) is
simulated and given its accuracy; those meeting both the accuracy floor and the latency
SLO are ranked by cost (price x count), then energy per inference. The latency judged is
the replay of mean times, or with ``rank: p99`` the 99th percentile of one inference over
worlds drawn from the devices' and the link's variability (``sim/sampling.py``).

The Pareto front is taken over (cost, latency, energy) among the deployments that meet
both constraints, all three minimized: the three things a buyer trades once the accuracy
floor is met (accuracy is a constraint here, not an objective).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from prismsim.accuracy import evaluate
from prismsim.configuration import Configuration
from prismsim.cost.units import ms_to_s
from prismsim.executors.trace_cache import WorkloadCache
from prismsim.metrics import LOWER_IS_BETTER
from prismsim.names import model_heads
from prismsim.pareto import front_rows
from prismsim.plan.file import LoadedPlan, PlanError, PricedDevice, plan_configurations
from prismsim.progress import Progress
from prismsim.serve.under_load import OfferedLoad, under_load
from prismsim.sim import simulate
from prismsim.sim.memory import device_memory, memory_columns, overflow
from prismsim.sim.precision import at_precision, spec_at
from prismsim.sim.sampling import sample_inferences
from prismsim.sim.specs import DeviceSpec, LinkSpec
from prismsim.sim.tokens import decode_summary
from prismsim.strategies import why_not
from prismsim.workload import Workload


@dataclass(frozen=True)
class Deployment:
    """One way to buy and run: ``count`` devices of one kind running a configuration
    over a link ("" for one device: no network)."""

    device: str
    configuration: Configuration
    link: str
    groups: int = 1  # groups of ``count`` devices behind a dispatcher
    dtype: str = "fp32"  # the weights' precision (sim/precision.py)

    @property
    def count(self) -> int:
        return self.configuration.devices


def deployments(plan: LoadedPlan) -> list[Deployment]:
    """Every device kind with every configuration of the plan, one device without a
    link, the others over every link, in each number of groups, at each weight precision.
    Order: devices, counts, strategies as listed, links, groups, precisions."""
    out = []
    for priced in plan.devices:
        for c in plan_configurations(plan.file):
            links = [""] if c.devices == 1 else list(plan.links)
            out += [Deployment(priced.name, c, link, g, dtype) for link in links
                    for g in plan.file.groups for dtype in plan.file.dtypes]
    return out


WorkloadFn = Callable[[Configuration], Workload]
AccuracyFn = Callable[[Configuration, str], dict[str, Any]]  # of a configuration, a dtype


def traced_workloads(plan: LoadedPlan) -> WorkloadFn:
    """Workloads traced from the strategies' own programs (disk-cached, as in sweeps)."""
    m, cache, decode = plan.file.model, WorkloadCache(), plan.file.decode
    tokens = m.tokens if decode is None else decode.prompt_tokens
    generate = None if decode is None else decode.generate

    def get(c: Configuration) -> Workload:
        try:
            return cache.get(m.architecture or m.name, c.strategy, c.devices, tokens=tokens,
                             batch=plan.file.batch, generate=generate, **c.options())
        except (OSError, ValueError) as err:  # a hub model offline, a bad option
            raise PlanError(f"{plan.path.name}: model: cannot trace {c.label()}: {err}") \
                from None
    return get


def table_accuracy(plan: LoadedPlan) -> AccuracyFn:
    """Values from the plan's accuracy table: an entry for this precision beats one for
    every precision, then an entry for this P one for every P."""
    table = plan.file.accuracy
    assert table is not None
    where = plan.path.name

    def get(c: Configuration, dtype: str) -> dict[str, Any]:
        found = {(e.dtype, e.devices): e for e in table.entries
                 if e.strategy == c.strategy and e.cr == c.cr}
        entry = next((found[k] for k in ((dtype, c.devices), (dtype, None),
                                          (None, c.devices), (None, None)) if k in found),
                     None)
        if entry is None:
            raise PlanError(f"{where}: accuracy.entries: no value for {c.label()} at "
                            f"{dtype} weights")
        return {"metric": table.metric, "value": entry.value,
                "accuracy_source": table.source}
    return get


def evaluated_accuracy(plan: LoadedPlan) -> AccuracyFn:
    """The model evaluated on the plan's dataset (disk-cached, shared with sweeps; with
    decode:, as it decodes); with weights at another precision than fp32, not run (the
    numerics run fp32 weights)."""
    d, g = plan.file.dataset, plan.file.decode
    assert d is not None
    decode = (g.prompt_tokens, g.generate) if g else None  # scored as it decodes

    def get(c: Configuration, dtype: str) -> dict[str, Any]:
        if dtype != "fp32":
            return {"metric": None, "value": math.nan,
                    "accuracy_source": f"not run: {dtype} weights (the numerics run fp32)"}
        try:
            r = evaluate(plan.file.model.name, d.name, c.strategy, c.devices, split=d.split,
                         limit=d.limit, batch=d.batch, decode=decode, **c.options())
        except (OSError, RuntimeError, ValueError) as err:  # offline hub model or dataset
            raise PlanError(f"{plan.path.name}: accuracy of {c.label()} unavailable ({err}); "
                            f"give an accuracy: table instead") from None
        return {k: r[k] for k in ("metric", "value", "accuracy_source")}
    return get


COLUMNS = ["device", "count", "groups", "strategy", "cr", "link", "dtype", "unit_price_usd",
           "cost_usd", "latency_s", "energy_j", "bytes_on_air", "memory_peak_bytes", "fits",
           "metric", "accuracy", "p99_load_s", "throughput_per_s", "meets_slo",
           "meets_floor", "meets_load", "feasible", "fails", "rank", "pareto",
           "accuracy_source"]
PARETO_COLUMNS = ("cost_usd", "latency_s", "energy_j")  # all minimized; see the docstring
RANK_COLUMNS = ["cost_usd", "energy_j", "latency_s"]  # cost, then energy; latency breaks ties
# with samples: (or rank: p99): one inference's latency over sampled worlds, after latency_s
SAMPLED = ("latency_mean_sampled_s", "latency_p50_s", "latency_p95_s", "latency_p99_s")
# with decode:, after latency_s (the whole generation): the SLO judges the ttft_s
DECODE = ("ttft_s", "tpot_s", "tokens_per_s")
LATENCY = {"mean": "latency_s", "p99": "latency_p99_s", "decode": "ttft_s"}  # judged


def skipped_configurations(plan: LoadedPlan) -> dict[Configuration, str]:
    """The plan's configurations its model cannot run, and why, where that is known
    without loading the model (a built-in or a local directory; else tracing says so)."""
    m = plan.file.model
    heads = model_heads(m.architecture or m.name)
    reasons = {c: why_not(c.strategy, c.devices, heads) for c in plan_configurations(plan.file)}
    return {c: reason for c, reason in reasons.items() if reason}


def count_steps(plan: LoadedPlan) -> int:
    """Accuracies (one a configuration and precision) and workloads the plan needs: for
    progress."""
    runs = len(plan_configurations(plan.file)) - len(skipped_configurations(plan))
    return runs * (len(plan.file.dtypes) + 1)


def _each(fn: Callable[[Any], Any], items: list[Any], what: str,
          progress: Progress | None) -> dict[Any, Any]:
    """``fn`` of each configuration (or (configuration, dtype) pair), with progress."""
    out = {}
    for item in items:
        out[item] = fn(item)
        if progress:
            label = item.label() if isinstance(item, Configuration) else \
                f"{item[0].label()} at {item[1]} weights"
            progress(f"{what} of {label}")
    return out


def simulate_all(plan: LoadedPlan, workload: WorkloadFn, accuracy: AccuracyFn,
                 progress: Progress | None = None) -> pd.DataFrame:
    """One row a deployment: cost, simulated latency and energy, accuracy; a deployment
    whose configuration the model cannot run says why (``skipped``), its figures empty."""
    skipped = skipped_configurations(plan)
    configs = [c for c in plan_configurations(plan.file) if c not in skipped]
    pairs = [(c, dtype) for c in configs for dtype in plan.file.dtypes]
    # first: table errors come early
    accs = _each(lambda pair: accuracy(*pair), pairs, "accuracy", progress)
    wls = _each(workload, configs, "workload", progress)
    prices = {d.name: d for d in plan.devices}
    rows, tails = [], Tails(plan)
    for dep in deployments(plan):
        priced, c = prices[dep.device], dep.configuration
        base = _deployment_row(dep, priced)
        if c in skipped:
            rows.append({**base, **dict.fromkeys(SKIPPED_EMPTY, math.nan),
                         "skipped": skipped[c]})
            continue
        wl, spec = at_precision(wls[c], dep.dtype), spec_at(priced.spec, dep.dtype)
        rows.append({**base, **_figures(plan, dep, wl, spec, accs[(c, dep.dtype)], tails)})
    return pd.DataFrame(rows)


def _figures(plan: LoadedPlan, dep: Deployment, wl: Workload, spec: DeviceSpec,
             acc: dict[str, Any], tails: Tails) -> dict[str, Any]:
    """What one deployment gives: latency (and its tail), energy, memory, accuracy, the
    figures under the offered load and, for a generation, its per-token figures."""
    link = plan.links.get(dep.link, next(iter(plan.links.values())))  # one device: any
    r = simulate(wl, spec, link, record=plan.file.decode is not None)
    decode = {} if plan.file.decode is None else {
        k: math.nan if v is None else v for k, v in decode_summary(wl, r).items()
        if k in DECODE}
    return {"latency_s": r.latency_s, **decode,
            **tails.figures(dep, wl, spec, link, r.latency_s),
            "energy_j": r.energy_j, **_memory_figures(wl, spec),
            "bytes_on_air": r.bytes_on_air, "metric": acc["metric"],
            "accuracy": acc["value"], "accuracy_source": acc["accuracy_source"],
            **_under_load_figures(plan, dep, wl, r.latency_s, acc)}


# a skipped deployment's figures (empty)
SKIPPED_EMPTY = ("latency_s", "energy_j", "bytes_on_air", "memory_peak_bytes", "metric",
                 "accuracy", "accuracy_source", "p99_load_s", "throughput_per_s")


def _memory_figures(wl: Workload, spec: DeviceSpec) -> dict[str, Any]:
    """The fullest device's memory, whether every device fits (None: the device has no
    capacity in the catalog) and, if one does not, which and by how much (``overflow``:
    not a plan.csv column; its ``fails`` says it)."""
    memory = device_memory(wl, spec)
    return {**memory_columns(memory),
            "overflow": overflow(memory, [spec] * wl.n_devices)}


class Tails:
    """With samples: (or rank: p99), each deployment's latency over n sampled worlds,
    once for all its numbers of groups."""

    def __init__(self, plan: LoadedPlan):
        self.sampling = plan.file.sampling
        self._done: dict[tuple[str, Configuration, str, str], dict[str, float]] = {}

    def figures(self, dep: Deployment, wl: Workload, spec: DeviceSpec, link: LinkSpec,
                latency_s: float) -> dict[str, float]:
        """SAMPLED's figures and ``varies`` (whether its devices or link had variability
        to draw from; not a plan.csv column); none without sampling. Where nothing varies
        every world is the replay of mean times to the last digit (``sim/sampling.py``):
        it is not replayed."""
        if self.sampling is None:
            return {}
        key = (dep.device, dep.configuration, dep.link, dep.dtype)
        if key not in self._done:
            if not _varies(wl, spec, link):
                self._done[key] = {**dict.fromkeys(SAMPLED, latency_s), "varies": False}
            else:
                summary = sample_inferences(wl, spec, link, self.sampling.n,
                                            self.sampling.seed).summary()
                summary["latency_mean_sampled_s"] = summary["latency_mean_s"]
                self._done[key] = {**{k: summary[k] for k in SAMPLED}, "varies": True}
        return self._done[key]


def _varies(wl: Workload, spec: DeviceSpec, link: LinkSpec) -> bool:
    """Whether a sampled world of this deployment can differ from its mean times."""
    device = spec.variability is not None and spec.variability.varies
    return device or (link.variability is not None and link.variability.varies
                      and bool(wl.messages))


def _deployment_row(dep: Deployment, priced: PricedDevice) -> dict[str, Any]:
    """What a deployment is and costs."""
    c = dep.configuration
    return {"device": dep.device, "count": dep.count, "groups": dep.groups,
            "strategy": c.strategy, "cr": math.nan if c.cr is None else c.cr,
            "link": dep.link, "dtype": dep.dtype, "unit_price_usd": priced.price_usd,
            "cost_usd": priced.price_usd * dep.count * dep.groups}


def _under_load_figures(plan: LoadedPlan, dep: Deployment, wl: Workload, latency_s: float,
                        acc: dict[str, Any]) -> dict[str, float]:
    """p99 and throughput under the plan's offered load; simulated only for a deployment that
    meets the floor and whose idle latency is within the p99 (others fail anyway)."""
    offered = plan.file.offered_load
    none = {"p99_load_s": math.nan, "throughput_per_s": math.nan}
    if offered is None or latency_s > ms_to_s(offered.p99_ms) or not _meets_floor(plan, acc):
        return none
    priced = next(d for d in plan.devices if d.name == dep.device)
    link = plan.links.get(dep.link) or next(iter(plan.links.values()))
    figures = under_load(wl, spec_at(priced.spec, dep.dtype), link, OfferedLoad(
        offered.rate_per_s, offered.arrivals, offered.requests, offered.warmup,
        offered.replications, offered.seed), dep.groups)
    return {k: figures[k] for k in none}


def _meets_floor(plan: LoadedPlan, acc: dict[str, Any]) -> bool:
    floor, value = plan.file.accuracy_floor, acc["value"]
    return value <= floor if acc["metric"] in LOWER_IS_BETTER else value >= floor


def judge(df: pd.DataFrame, accuracy_floor: float, latency_slo_s: float,
          offered_p99_s: float | None = None, latency: str = "latency_s",
          tokens_per_s: float | None = None) -> pd.DataFrame:
    """Adds meets_slo, meets_floor, meets_load (``offered_p99_s``: the p99 allowed under
    the plan's offered load; None: none asked), meets_tokens (``tokens_per_s``: a
    generation's floor; None: none), feasible, fails (what a deployment misses, or why it
    was skipped), rank (1 = cheapest feasible, then lowest energy) and pareto; feasible
    rows first in rank order, then the others. ``latency``: the column the SLO, the
    tie-break and the front judge (LATENCY's)."""
    df = df.copy()
    for col, default in (("groups", 1), ("dtype", "fp32"), ("p99_load_s", math.nan),
                         ("throughput_per_s", math.nan), ("memory_peak_bytes", math.nan),
                         ("fits", math.nan)):
        if col not in df:  # (a table made by hand)
            df[col] = default
    lower = df["metric"].isin(LOWER_IS_BETTER)
    df["meets_slo"] = df[latency] <= latency_slo_s
    df["meets_floor"] = (df["accuracy"] <= accuracy_floor).where(
        lower, df["accuracy"] >= accuracy_floor)  # NaN accuracy compares False: fails
    df["meets_load"] = True if offered_p99_s is None else df["p99_load_s"] <= offered_p99_s
    df["meets_tokens"] = True if tokens_per_s is None else df["tokens_per_s"] >= tokens_per_s
    over = df["overflow"] if "overflow" in df else pd.Series([None] * len(df), df.index)
    fits = over.isna()  # a deployment that does not fit its memory is never ranked
    df["feasible"] = (df["meets_slo"] & df["meets_floor"] & df["meets_load"]
                      & df["meets_tokens"] & fits)
    df["fails"] = _fails(df, over, "time to first token" if latency == "ttft_s" else "latency")
    if "skipped" in df:  # a deployment that could not run: why, in place of what it misses
        df["fails"] = df["skipped"].where(df["skipped"].notna(), df["fails"])
    # stable sort: equal keys keep the order deployments were listed in
    ranking = [latency if c == "latency_s" else c for c in RANK_COLUMNS]
    df = df.sort_values(["feasible", *ranking], ascending=[False, True, True, True],
                        kind="stable").reset_index(drop=True)
    n_ok = int(df["feasible"].sum())
    df["rank"] = pd.array(list(range(1, n_ok + 1)) + [None] * (len(df) - n_ok), dtype="Int64")
    objectives = [latency if c == "latency_s" else c for c in PARETO_COLUMNS]
    df["pareto"] = df.index.isin(front_rows(df[df["feasible"]], minimize=objectives))
    return df[table_columns(df)]


def _fails(df: pd.DataFrame, over: pd.Series, slo_name: str) -> list[str]:
    """What each deployment misses, in words (``over``: its memory overflow, or None)."""
    return [", ".join(name for name, ok in (
        (slo_name, slo), ("accuracy", floor), ("load", offered), ("tokens/s", rate),
        (f"memory: {text}", not isinstance(text, str))) if not ok)
        for slo, floor, offered, rate, text in zip(
            df["meets_slo"], df["meets_floor"], df["meets_load"], df["meets_tokens"], over,
            strict=True)]


def table_columns(df: pd.DataFrame) -> list[str]:
    """COLUMNS, with SAMPLED after latency_s where the deployments were sampled, and a
    generation's DECODE figures (and meets_tokens) where they generated."""
    cols = list(COLUMNS)
    if "latency_p99_s" in df:
        at = cols.index("latency_s") + 1
        cols[at:at] = SAMPLED
    if "ttft_s" in df:
        at = cols.index("latency_s") + 1
        cols[at:at] = DECODE
        cols.insert(cols.index("meets_load") + 1, "meets_tokens")
    return cols


@dataclass
class PlanResult:
    table: pd.DataFrame  # every deployment, feasible ones first in rank order
    accuracy_floor: float
    latency_slo_s: float
    name: str
    model: str
    latency: str = "latency_s"  # the latency judged and ranked on (LATENCY's)
    # with sampling: whether any deployment had variability to draw from; None: not sampled
    varies: bool | None = None
    tokens_per_s: float | None = None  # a generation's floor (decode:); None: none

    @property
    def ranked(self) -> pd.DataFrame:
        return self.table[self.table["feasible"]]

    @property
    def front(self) -> pd.DataFrame:
        return self.table[self.table["pareto"]]


def run_plan(plan: LoadedPlan, workload: WorkloadFn | None = None,
             accuracy: AccuracyFn | None = None,
             progress: Progress | None = None) -> PlanResult:
    """Simulate, judge and rank every deployment of the plan. ``workload`` and
    ``accuracy`` default to traced workloads and the plan's accuracy source."""
    s = plan.file
    workload = workload or traced_workloads(plan)
    accuracy = accuracy or (table_accuracy(plan) if s.accuracy else evaluated_accuracy(plan))
    raw = simulate_all(plan, workload, accuracy, progress)
    slo_s = ms_to_s(s.latency_slo_ms)
    model = s.model.name if not s.model.architecture else (
        f"{s.model.architecture} (accuracy of {s.model.name})")
    offered_p99_s = ms_to_s(s.offered_load.p99_ms) if s.offered_load else None
    latency = LATENCY["decode" if s.decode else s.rank]
    varies = bool(raw["varies"].eq(True).any()) if "varies" in raw else None
    floor = s.decode.tokens_per_s if s.decode else None
    return PlanResult(judge(raw, s.accuracy_floor, slo_s, offered_p99_s, latency, floor),
                      s.accuracy_floor, slo_s, s.name, model, latency, varies, floor)
