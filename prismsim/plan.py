"""``prismsim plan``: which hardware to buy. From a model, an accuracy floor, a latency
SLO, candidate devices with prices and candidate links, every configuration (device
kind, count, strategy, CR, link) is simulated and given its accuracy; those meeting both
the floor and the SLO are ranked by cost (price x count), then energy per inference.

The Pareto front is taken over (cost, latency, energy) among the configurations that
meet both constraints, all three minimized: the three things a buyer trades once the
accuracy floor is met (accuracy is a constraint here, not an objective). A configuration
is on the front when no other feasible one is at least as good on all three and better
on one; equal configurations do not dominate each other, so both stay.

Plan files are strict YAML (unknown keys are errors naming file and key path). Accuracy
comes from evaluating the model on a dataset (disk-cached, as in sweeps) or from an
explicit table in the file (``accuracy:``), for offline use and tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from matplotlib.figure import Figure
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Tag,
    ValidationError,
)

from prismsim import plots
from prismsim.cost.units import ms_to_s
from prismsim.metrics import LOWER_IS_BETTER
from prismsim.scenario import DatasetSection, ModelSection, read_mapping
from prismsim.sim import DeviceSpec, LinkSpec, simulate
from prismsim.sim.catalog import builtin_devices, builtin_links, validation_message
from prismsim.workload import Workload


class PlanError(ValueError):
    """A plan that cannot run; the message names file and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- the plan file

class ProfileDevice(_Strict):
    """A candidate device from the catalog (prismsim/catalog/devices.yaml)."""

    profile: str
    price_usd: NonNegativeFloat  # list price of one device, US dollars
    name: str | None = None  # label in the tables; None: the profile's name


class InlineDevice(DeviceSpec):
    """A candidate device described in the plan file (DeviceSpec fields)."""

    name: str  # required here (DeviceSpec's default "device"): it labels the table rows
    price_usd: NonNegativeFloat  # list price of one device, US dollars


class InlineLink(LinkSpec):
    """A candidate link described in the plan file (LinkSpec fields)."""

    name: str  # required here: it labels the table rows


def _device_kind(v: Any) -> str:
    # Tags hold a "-" so error key paths leave them out (see catalog._key_path).
    return "catalog-profile" if isinstance(v, dict) and "profile" in v else "inline-spec"


def _link_kind(v: Any) -> str:
    return "catalog-name" if isinstance(v, str) else "inline-spec"


DeviceCandidate = Annotated[
    Annotated[ProfileDevice, Tag("catalog-profile")] | Annotated[InlineDevice, Tag("inline-spec")],
    Discriminator(_device_kind)]
LinkCandidate = Annotated[
    Annotated[str, Tag("catalog-name")] | Annotated[InlineLink, Tag("inline-spec")],
    Discriminator(_link_kind)]


class AccuracyEntry(_Strict):
    """The metric of one strategy, at one P (or every P), at one CR (prism)."""

    strategy: str
    devices: PositiveInt | None = None  # None: the same value at every device count
    cr: float | None = Field(None, ge=1)  # prism: the compression rate; None otherwise
    value: float


class AccuracyTable(_Strict):
    """Metric values given by hand (measured elsewhere) instead of evaluated."""

    metric: str = "accuracy"  # task metric's name; bits_per_byte-like ones: lower is better
    source: str  # required: where the numbers come from (a paper's table, an earlier run)
    entries: list[AccuracyEntry] = Field(min_length=1)


class PrismCr(_Strict):
    cr: list[Annotated[float, Field(ge=1)]] = Field(min_length=1)  # CRs tried (CR = n_p / L)


class PlanSpec(_Strict):
    name: str
    description: str = ""  # free text for the reader of the file
    model: ModelSection
    dataset: DatasetSection | None = None  # evaluate accuracy on it ...
    accuracy: AccuracyTable | None = None  # ... or take it from this table (exactly one)
    # lowest acceptable metric value (for lower-is-better metrics: the highest)
    accuracy_floor: float
    latency_slo_ms: PositiveFloat  # one inference of ``batch`` inputs must end within it
    batch: PositiveInt = 1  # inputs per inference (1: one request at a time)
    devices: list[DeviceCandidate] = Field(min_length=1)
    counts: list[PositiveInt] = Field(min_length=1)  # device counts P tried
    strategies: list[str] = Field(min_length=1)
    prism: PrismCr | None = None  # required when prism is among the strategies
    # a switched gigabit LAN: the usual wired setup of devices on one desk or shelf
    links: list[LinkCandidate] = Field(["ethernet-1g"], min_length=1)
    output: str | None = None  # results folder (default results/<name>)


@dataclass(frozen=True)
class Candidate:
    """A device kind to buy: its spec and the price of one."""

    name: str
    spec: DeviceSpec
    price_usd: float


@dataclass
class LoadedPlan:
    path: Path
    spec: PlanSpec
    devices: list[Candidate]
    links: dict[str, LinkSpec]

    @property
    def output(self) -> Path:
        return Path(self.spec.output or f"results/{self.spec.name}")


def _read(path: Path) -> dict[str, Any]:
    return read_mapping(path, PlanError, "plan")


def _candidates(spec: PlanSpec, where: str) -> list[Candidate]:
    catalog, out = builtin_devices(), []
    for i, d in enumerate(spec.devices):
        if isinstance(d, InlineDevice):
            fields = d.model_dump(exclude={"price_usd"})
            out.append(Candidate(d.name, DeviceSpec(**fields), d.price_usd))
        elif d.profile not in catalog:
            raise PlanError(f"{where}: devices[{i}].profile: unknown device {d.profile!r}; "
                            f"known: {', '.join(sorted(catalog))}")
        else:
            out.append(Candidate(d.name or d.profile, catalog[d.profile], d.price_usd))
    _unique([c.name for c in out], where, "devices")
    return out


def _links(spec: PlanSpec, where: str) -> dict[str, LinkSpec]:
    catalog, out = builtin_links(), {}
    for i, link in enumerate(spec.links):
        if isinstance(link, LinkSpec):
            out[link.name] = LinkSpec(**link.model_dump())
        elif link not in catalog:
            raise PlanError(f"{where}: links[{i}]: unknown link {link!r}; "
                            f"known: {', '.join(sorted(catalog))}")
        else:
            out[link] = catalog[link]
    _unique([link if isinstance(link, str) else link.name for link in spec.links],
            where, "links")
    return out


def _unique(names: list[str], where: str, key: str) -> None:
    for i, name in enumerate(names):
        if name in names[:i]:
            raise PlanError(f"{where}: {key}[{i}]: {name!r} is listed twice "
                            f"(give one of them another name)")


def _check(spec: PlanSpec, where: str) -> None:
    from prismsim.models.builtin import BUILTINS
    from prismsim.models.pretrained import PRETRAINED
    from prismsim.strategies import STRATEGIES

    for i, name in enumerate(spec.strategies):
        if name not in STRATEGIES:
            raise PlanError(f"{where}: strategies[{i}]: unknown strategy {name!r}; "
                            f"known: {', '.join(STRATEGIES)}")
    known = set(BUILTINS) | set(PRETRAINED)
    for key, name in (("model.name", spec.model.name),
                      ("model.architecture", spec.model.architecture)):
        if name and name not in known and "/" not in name and not Path(name).is_dir():
            raise PlanError(f"{where}: {key}: unknown model {name!r}; built-in: "
                            f"{', '.join(sorted(known))}, or a hub name / local directory")
    if (spec.dataset is None) == (spec.accuracy is None):
        which = "both" if spec.dataset else "neither"
        raise PlanError(f"{where}: give either dataset: (accuracy is evaluated) or "
                        f"accuracy: (a table of values), not {which}")
    if "prism" in spec.strategies and spec.prism is None:
        raise PlanError(f"{where}: prism: give the compression rates to try, "
                        f"e.g. prism: {{cr: [2, 4]}}")
    if spec.accuracy:
        _check_table(spec.accuracy, where, set(STRATEGIES))


def _check_table(table: AccuracyTable, where: str, known: set[str]) -> None:
    seen = set()
    for i, e in enumerate(table.entries):
        if e.strategy not in known:
            raise PlanError(f"{where}: accuracy.entries[{i}].strategy: unknown strategy "
                            f"{e.strategy!r}")
        if (e.cr is None) != (e.strategy != "prism"):
            need = "needs a cr" if e.strategy == "prism" else "takes no cr (prism only)"
            raise PlanError(f"{where}: accuracy.entries[{i}]: {e.strategy} {need}")
        key = (e.strategy, e.devices, e.cr)
        if key in seen:
            raise PlanError(f"{where}: accuracy.entries[{i}]: a second value for {key}")
        seen.add(key)


def load_plan(path: str | Path) -> LoadedPlan:
    """Read, validate and check a plan file; raise PlanError naming file and key."""
    path = Path(path)
    data, where = _read(path), path.name
    try:
        spec = PlanSpec(**data)
    except ValidationError as err:
        raise PlanError(validation_message(err, where, "")) from None
    _check(spec, where)
    plan = LoadedPlan(path, spec, _candidates(spec, where), _links(spec, where))
    if not configurations(plan):
        raise PlanError(f"{where}: no configuration: single needs 1 in counts, "
                        f"the other strategies a count above 1")
    return plan


# ---------------------------------------------------------------- configurations

@dataclass(frozen=True)
class Config:
    """One configuration to buy and run. ``link`` is "" for one device (no network)."""

    device: str
    count: int
    strategy: str
    cr: float | None
    link: str

    @property
    def program(self) -> tuple[str, int, float | None]:
        """What decides the workload and the accuracy (not the hardware)."""
        return (self.strategy, self.count, self.cr)


def configurations(plan: LoadedPlan) -> list[Config]:
    """single on one device (no link); every other strategy at every count above 1
    over every link; prism at every CR. Order: devices, counts, strategies as listed."""
    s, out = plan.spec, []
    for cand in plan.devices:
        for p in s.counts:
            for name in s.strategies:
                if (name == "single") != (p == 1):
                    continue
                crs = list(s.prism.cr) if name == "prism" and s.prism else [None]
                links = [""] if p == 1 else list(plan.links)
                out += [Config(cand.name, p, name, cr, link) for cr in crs for link in links]
    return out


def programs(plan: LoadedPlan) -> list[tuple[str, int, float | None]]:
    """The distinct (strategy, P, CR) of the plan, in order of first use."""
    return list(dict.fromkeys(c.program for c in configurations(plan)))


WorkloadFn = Callable[[str, int, float | None], Workload]
AccuracyFn = Callable[[str, int, float | None], dict[str, Any]]
Progress = Callable[[str], None]


def _options(cr: float | None) -> dict[str, float]:
    return {} if cr is None else {"cr": float(cr)}


def traced_workloads(plan: LoadedPlan) -> WorkloadFn:
    """Workloads traced from the strategies' own programs (disk-cached, as in sweeps)."""
    from prismsim.cost.cache import WorkloadCache

    m, cache = plan.spec.model, WorkloadCache()

    def get(strategy: str, devices: int, cr: float | None) -> Workload:
        try:
            return cache.get(m.architecture or m.name, strategy, devices, tokens=m.tokens,
                             batch=plan.spec.batch, **_options(cr))
        except (OSError, ValueError) as err:  # a hub model offline, a bad option
            raise PlanError(f"{plan.path.name}: model: cannot trace "
                            f"{_label(strategy, devices, cr)}: {err}") from None
    return get


def table_accuracy(plan: LoadedPlan) -> AccuracyFn:
    """Values from the plan's accuracy table: an entry for this P beats one for every P."""
    table = plan.spec.accuracy
    assert table is not None
    where = plan.path.name

    def get(strategy: str, devices: int, cr: float | None) -> dict[str, Any]:
        found = {e.devices: e for e in table.entries if e.strategy == strategy and e.cr == cr}
        entry = found.get(devices) or found.get(None)
        if entry is None:
            raise PlanError(f"{where}: accuracy.entries: no value for "
                            f"{_label(strategy, devices, cr)}")
        return {"metric": table.metric, "value": entry.value,
                "accuracy_source": table.source}
    return get


def evaluated_accuracy(plan: LoadedPlan) -> AccuracyFn:
    """The model evaluated on the plan's dataset (disk-cached, shared with sweeps)."""
    from prismsim.accuracy import evaluate

    d = plan.spec.dataset
    assert d is not None

    def get(strategy: str, devices: int, cr: float | None) -> dict[str, Any]:
        try:
            r = evaluate(plan.spec.model.name, d.name, strategy, devices, split=d.split,
                         limit=d.limit, batch=d.batch, **_options(cr))
        except (OSError, RuntimeError, ValueError) as err:  # offline hub model or dataset
            raise PlanError(f"{plan.path.name}: accuracy of {_label(strategy, devices, cr)} "
                            f"unavailable ({err}); give an accuracy: table instead") from None
        return {k: r[k] for k in ("metric", "value", "accuracy_source")}
    return get


def _label(strategy: str, devices: int, cr: float | None) -> str:
    return strategy + ("" if strategy == "single" else f" P={devices}") + (
        "" if cr is None else f" CR={cr:g}")


# ---------------------------------------------------------------- the table

COLUMNS = ["device", "count", "strategy", "cr", "link", "unit_price_usd", "cost_usd",
           "latency_s", "energy_j", "bytes_on_air", "metric", "accuracy", "meets_slo",
           "meets_floor", "feasible", "fails", "rank", "pareto", "accuracy_source"]


def simulate_all(plan: LoadedPlan, workload: WorkloadFn, accuracy: AccuracyFn,
                 progress: Progress | None = None) -> pd.DataFrame:
    """One row a configuration: cost, simulated latency and energy, accuracy."""
    progs = programs(plan)
    accs = _each(accuracy, progs, "accuracy", progress)  # first: table errors come early
    wls = _each(workload, progs, "workload", progress)
    prices = {c.name: c for c in plan.devices}
    first_link = next(iter(plan.links.values()))  # one device sends nothing: any link
    rows = []
    for c in configurations(plan):
        cand = prices[c.device]
        r = simulate(wls[c.program], cand.spec, plan.links.get(c.link, first_link))
        rows.append({"device": c.device, "count": c.count, "strategy": c.strategy,
                     "cr": math.nan if c.cr is None else c.cr, "link": c.link,
                     "unit_price_usd": cand.price_usd, "cost_usd": cand.price_usd * c.count,
                     "latency_s": r.latency_s, "energy_j": r.energy_j,
                     "bytes_on_air": r.bytes_on_air, **_accuracy_columns(accs[c.program])})
    return pd.DataFrame(rows)


def _each(fn: Callable[[str, int, float | None], Any], progs: list, what: str,
          progress: Progress | None) -> dict:
    out = {}
    for prog in progs:
        out[prog] = fn(*prog)
        if progress:
            progress(f"{what} of {_label(*prog)}")
    return out


def _accuracy_columns(acc: dict[str, Any]) -> dict[str, Any]:
    return {"metric": acc["metric"], "accuracy": acc["value"],
            "accuracy_source": acc["accuracy_source"]}


def pareto_rows(df: pd.DataFrame, columns: tuple[str, ...]) -> list:
    """Index labels of the rows no other row beats: at least as low on every column and
    lower on one (all minimized). Equal rows do not dominate each other."""
    values = df[list(columns)].to_numpy(dtype=float)
    front = []
    for label, row in zip(df.index, values, strict=True):
        dominated = ((values <= row).all(axis=1) & (values < row).any(axis=1)).any()
        if not dominated:
            front.append(label)
    return front


PARETO_COLUMNS = ("cost_usd", "latency_s", "energy_j")  # all minimized; see the docstring
RANK_COLUMNS = ["cost_usd", "energy_j", "latency_s"]  # cost, then energy; latency breaks ties


def judge(df: pd.DataFrame, accuracy_floor: float, latency_slo_s: float) -> pd.DataFrame:
    """Adds meets_slo, meets_floor, feasible, fails, rank (1 = cheapest feasible, then
    lowest energy) and pareto; feasible rows first in rank order, then the others."""
    df = df.copy()
    lower = df["metric"].isin(LOWER_IS_BETTER)
    df["meets_slo"] = df["latency_s"] <= latency_slo_s
    df["meets_floor"] = (df["accuracy"] <= accuracy_floor).where(
        lower, df["accuracy"] >= accuracy_floor)  # NaN accuracy compares False: fails
    df["feasible"] = df["meets_slo"] & df["meets_floor"]
    df["fails"] = [", ".join(name for name, ok in (("latency", slo), ("accuracy", floor))
                             if not ok) for slo, floor in zip(df["meets_slo"],
                                                              df["meets_floor"], strict=True)]
    # stable sort: equal keys keep the order configurations were listed in
    df = df.sort_values(["feasible", *RANK_COLUMNS], ascending=[False, True, True, True],
                        kind="stable").reset_index(drop=True)
    n_ok = int(df["feasible"].sum())
    df["rank"] = pd.array(list(range(1, n_ok + 1)) + [None] * (len(df) - n_ok), dtype="Int64")
    df["pareto"] = df.index.isin(pareto_rows(df[df["feasible"]], PARETO_COLUMNS))
    return df[COLUMNS]


@dataclass
class PlanResult:
    table: pd.DataFrame  # every configuration, feasible ones first in rank order
    accuracy_floor: float
    latency_slo_s: float
    name: str
    model: str

    @property
    def ranked(self) -> pd.DataFrame:
        return self.table[self.table["feasible"]]

    @property
    def front(self) -> pd.DataFrame:
        return self.table[self.table["pareto"]]


def run_plan(plan: LoadedPlan, workload: WorkloadFn | None = None,
             accuracy: AccuracyFn | None = None,
             progress: Progress | None = None) -> PlanResult:
    """Simulate, judge and rank every configuration of the plan. ``workload`` and
    ``accuracy`` default to traced workloads and the plan's accuracy source."""
    s = plan.spec
    workload = workload or traced_workloads(plan)
    accuracy = accuracy or (table_accuracy(plan) if s.accuracy else evaluated_accuracy(plan))
    raw = simulate_all(plan, workload, accuracy, progress)
    slo_s = ms_to_s(s.latency_slo_ms)
    model = s.model.name if not s.model.architecture else (
        f"{s.model.architecture} (accuracy of {s.model.name})")
    return PlanResult(judge(raw, s.accuracy_floor, slo_s), s.accuracy_floor, slo_s,
                      s.name, model)


# ---------------------------------------------------------------- output

SHOWN = ["rank", "device", "count", "strategy", "cr", "link", "cost_usd", "latency_s",
         "energy_j", "accuracy", "pareto"]  # the printed tables' columns


def write_plan(result: PlanResult, out: Path) -> list[Path]:
    """plan.csv (every configuration), pareto.csv (the front) and the figure, PNG + SVG."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "plan.csv", out / "pareto.csv"]
    result.table.to_csv(written[0], index=False)
    result.front.to_csv(written[1], index=False)
    fig = plan_figure(result)
    written += plots.save_figure(fig, out, "plan")
    fig.clear()
    return written


def _front_label(row: dict[str, Any]) -> str:
    cr = "" if pd.isna(row["cr"]) else f" CR={row['cr']:g}"
    link = f" / {row['link']}" if row["link"] else ""
    return (f"{row['count']}× {row['device']} {row['strategy']}{cr}{link}, "
            f"{row['energy_j']:.2f} J")


def plan_figure(result: PlanResult) -> Figure:
    """Cost against latency: feasible configurations coloured by strategy, the others
    grey, the Pareto front ringed red and labelled (with its energy), the SLO dashed."""
    df, ms = result.table, plots.MS_PER_S
    fig = Figure(figsize=(10, 6), layout="constrained")
    ax = fig.add_subplot()
    slow = df[~df["meets_slo"]]
    ax.scatter(slow["cost_usd"], slow["latency_s"] * ms, marker="x", s=25, color="0.7",
               label="misses the SLO", zorder=2)
    weak = df[df["meets_slo"] & ~df["meets_floor"]]
    ax.scatter(weak["cost_usd"], weak["latency_s"] * ms, marker="o", s=30, zorder=2,
               facecolors="none", edgecolors="0.55", label="misses the accuracy floor")
    ok = df[df["feasible"]]
    strategies = sorted(ok["strategy"].unique(), key=plots._strategy_rank)
    for name in strategies:
        rows = ok[ok["strategy"] == name]
        ax.scatter(rows["cost_usd"], rows["latency_s"] * ms, s=40, zorder=3,
                   marker=plots._marker(name, strategies),
                   color=plots._strategy_colour(name, strategies), label=name)
    front = result.front
    ax.scatter(front["cost_usd"], front["latency_s"] * ms, s=170, facecolors="none",
               edgecolors="tab:red", linewidths=1.5, zorder=4,
               label="Pareto front (cost, latency, energy)")
    ax.axhline(result.latency_slo_s * ms, color="tab:red", linestyle="--",
               linewidth=1, label=f"SLO {result.latency_slo_s * ms:g} ms")
    _axes(ax, df, result)
    labels = [(r["cost_usd"], r["latency_s"] * ms, _front_label(r), "0.15", ax.transData)
              for r in front.to_dict("records")]
    plots._place_labels(ax, labels)  # last: needs the final layout
    return fig


def _axes(ax: Any, df: pd.DataFrame, result: PlanResult) -> None:
    """Latency axis as in the sweep plots (log beyond a decade), title, legend."""
    ms = [*(df["latency_s"] * plots.MS_PER_S), result.latency_slo_s * plots.MS_PER_S]
    plots._latency_y_axis(ax, ms)
    ax.set_xlabel("hardware cost (US$, price × count)")
    ax.grid(True, which="both", alpha=0.3)
    metric = str(df["metric"].dropna().iloc[0]) if df["metric"].notna().any() else "accuracy"
    bound = "≤" if metric in LOWER_IS_BETTER else "≥"
    plots._title(ax, f"Capacity plan {result.name}: {result.model}; "
                     f"{int(df['feasible'].sum())} of {len(df)} configurations meet "
                     f"{metric.replace('_', ' ')} {bound} {result.accuracy_floor:g} and "
                     f"latency ≤ {result.latency_slo_s * plots.MS_PER_S:g} ms")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
