"""The plan file: candidate devices with prices, counts, strategies, CRs, links and
weight precisions, an accuracy floor and a latency SLO (with ``decode:``, on the time to
first token, beside a tokens-per-second floor) (strict YAML: unknown keys are errors naming
file and key path); and the :class:`LoadedPlan` the search runs on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Tag,
)

from prismsim.configuration import Configuration, configurations, prism_settings
from prismsim.names import check_model, check_strategies
from prismsim.scenario.schema import DatasetSection, ModelSection, SamplesSection, WeightDtype
from prismsim.sim.catalog import builtin_devices, builtin_links
from prismsim.sim.specs import DeviceSpec, LinkSpec
from prismsim.strategies import STRATEGIES, decoding_strategies
from prismsim.userfiles import StrictModel, UserFileError, load_model_file, renamed_key


class PlanError(UserFileError):
    """A plan that cannot run; the message names file and key."""


class ProfileDevice(StrictModel):
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
    # Tags hold a "-" so error key paths leave them out (see userfiles.key_path).
    return "catalog-profile" if isinstance(v, dict) and "profile" in v else "inline-spec"


def _link_kind(v: Any) -> str:
    return "catalog-name" if isinstance(v, str) else "inline-spec"


PlanDevice = Annotated[
    Annotated[ProfileDevice, Tag("catalog-profile")] | Annotated[InlineDevice, Tag("inline-spec")],
    Discriminator(_device_kind)]
PlanLink = Annotated[
    Annotated[str, Tag("catalog-name")] | Annotated[InlineLink, Tag("inline-spec")],
    Discriminator(_link_kind)]


class AccuracyEntry(StrictModel):
    """The metric of one strategy, at one P (or every P), at one CR (prism)."""

    strategy: str
    devices: PositiveInt | None = None  # None: the same value at every device count
    cr: float | None = Field(None, ge=1)  # prism: the compression rate; None otherwise
    value: float
    dtype: WeightDtype | None = None  # the weights' precision; None: the value at every one


class AccuracyTable(StrictModel):
    """Metric values given by hand (measured elsewhere) instead of evaluated."""

    metric: str = "accuracy"  # task metric's name; bits_per_byte-like ones: lower is better
    source: str  # required: where the numbers come from (a paper's table, an earlier run)
    entries: list[AccuracyEntry] = Field(min_length=1)


class PrismCr(StrictModel):
    cr: list[Annotated[float, Field(ge=1)]] = Field(min_length=1)  # CRs tried (CR = n_p / L)


class OfferedLoadSection(StrictModel):
    """A load every deployment must serve (``prismsim serve``'s engine, every message of
    every request simulated): requests at ``rate_per_s`` answered within ``p99_ms``, the
    mean p99 over seeded replications, none dropped."""

    rate_per_s: PositiveFloat  # offered requests per second
    p99_ms: PositiveFloat  # 99th-percentile latency (queueing included) allowed
    arrivals: Literal["poisson", "constant"] = "poisson"  # Poisson: independent users
    requests: PositiveInt = 1000  # per replication
    warmup: int = Field(100, ge=0)  # first requests left out of the figures
    replications: PositiveInt = 3  # seeds seed, seed + 1, ...: the same figures each run
    seed: int = 0


class PlanDecode(StrictModel):
    """Generation: each deployment prefills a prompt and generates tokens; the latency
    SLO judges its time to first token, and its decode rate must reach a floor."""

    prompt_tokens: PositiveInt = 128  # the prompt's length the time to first token is at
    # tokens generated, the first from the prefill: the others give the time per token
    generate: int = Field(8, ge=2)
    tokens_per_s: PositiveFloat  # the floor: tokens a second after the first


class PlanFile(StrictModel):
    name: str
    description: str = ""  # free text for the reader of the file
    model: ModelSection
    dataset: DatasetSection | None = None  # evaluate accuracy on it ...
    accuracy: AccuracyTable | None = None  # ... or take it from this table (exactly one)
    # lowest acceptable metric value (for lower-is-better metrics: the highest)
    accuracy_floor: float
    latency_slo_ms: PositiveFloat  # one inference of ``batch`` inputs must end within it
    batch: PositiveInt = 1  # inputs per inference (1: one request at a time)
    devices: list[PlanDevice] = Field(min_length=1)
    counts: list[PositiveInt] = Field(min_length=1)  # device counts P tried
    strategies: list[str] = Field(min_length=1)
    prism: PrismCr | None = None  # required when prism is among the strategies
    # a switched gigabit LAN: the usual wired setup of devices on one desk or shelf
    links: list[PlanLink] = Field(["ethernet-1g"], min_length=1)
    output: str | None = None  # results folder (default results/<name>)
    # the offered load every deployment must serve (formerly load:); None: one inference
    # at a time is all that is asked
    offered_load: OfferedLoadSection | None = Field(
        None, validation_alias=renamed_key("offered_load", "load"))
    # groups of each device count behind a dispatcher (join-shortest-queue), each group
    # serving whole requests: more than one only matters with a load
    groups: list[PositiveInt] = Field([1], min_length=1)
    # the latency the SLO, the ranking's tie-break and the Pareto front judge: "mean" the
    # replay of mean times; "p99" the 99th percentile of one inference over worlds drawn
    # from the devices' and the link's variability (samples:, default n 1000, seed 0)
    rank: Literal["mean", "p99"] = "mean"
    # each deployment also replayed n times in sampled worlds (as in scenarios): rows add
    # its mean, p50, p95 and p99 latency; None (and rank: mean): mean times only
    samples: SamplesSection | None = None
    # generation (causal LMs): latency_slo_ms then judges the time to first token; None:
    # one forward an inference
    decode: PlanDecode | None = None
    # the weights' precisions tried (sim/precision.py): an axis of the deployments
    dtypes: list[WeightDtype] = Field(["fp32"], min_length=1)
    # true: every candidate device needs a capacity (memory_gib), so that whether each
    # deployment fits is known; false: one without is ranked as if it fitted
    fits_required: bool = False

    @property
    def sampling(self) -> SamplesSection | None:
        """How deployments are sampled: ``samples``, or its defaults for rank: p99."""
        return self.samples or (SamplesSection() if self.rank == "p99" else None)


@dataclass(frozen=True)
class PricedDevice:
    """A device kind to buy: its spec and the price of one."""

    name: str
    spec: DeviceSpec
    price_usd: float


@dataclass
class LoadedPlan:
    path: Path
    file: PlanFile
    devices: list[PricedDevice]
    links: dict[str, LinkSpec]

    @property
    def output(self) -> Path:
        return Path(self.file.output or f"results/{self.file.name}")


def _priced(plan: PlanFile, where: str) -> list[PricedDevice]:
    catalog, out = builtin_devices(), []
    for i, d in enumerate(plan.devices):
        if isinstance(d, InlineDevice):
            fields = d.model_dump(exclude={"price_usd"})
            out.append(PricedDevice(d.name, DeviceSpec(**fields), d.price_usd))
        elif d.profile not in catalog:
            raise PlanError(f"{where}: devices[{i}].profile: unknown device {d.profile!r}; "
                            f"known: {', '.join(sorted(catalog))}")
        else:
            out.append(PricedDevice(d.name or d.profile, catalog[d.profile], d.price_usd))
    _unique([c.name for c in out], where, "devices")
    return out


def _links(plan: PlanFile, where: str) -> dict[str, LinkSpec]:
    catalog, out = builtin_links(), {}
    for i, link in enumerate(plan.links):
        if isinstance(link, LinkSpec):
            out[link.name] = LinkSpec(**link.model_dump())
        elif link not in catalog:
            raise PlanError(f"{where}: links[{i}]: unknown link {link!r}; "
                            f"known: {', '.join(sorted(catalog))}")
        else:
            out[link] = catalog[link]
    _unique([link if isinstance(link, str) else link.name for link in plan.links],
            where, "links")
    return out


def _unique(names: list[str], where: str, key: str) -> None:
    for i, name in enumerate(names):
        if name in names[:i]:
            raise PlanError(f"{where}: {key}[{i}]: {name!r} is listed twice "
                            f"(give one of them another name)")


def _check(plan: PlanFile, where: str) -> None:
    check_strategies(plan.strategies, f"{where}: strategies", PlanError)
    check_model(plan.model.name, f"{where}: model.name", PlanError)
    check_model(plan.model.architecture, f"{where}: model.architecture", PlanError)
    if (plan.dataset is None) == (plan.accuracy is None):
        which = "both" if plan.dataset else "neither"
        raise PlanError(f"{where}: give either dataset: (accuracy is evaluated) or "
                        f"accuracy: (a table of values), not {which}")
    if "prism" in plan.strategies and plan.prism is None:
        raise PlanError(f"{where}: prism: give the compression rates to try, "
                        f"e.g. prism: {{cr: [2, 4]}}")
    if plan.accuracy:
        _check_table(plan.accuracy, where, set(STRATEGIES))
    _check_decode(plan, where)
    offered = plan.offered_load
    if offered and offered.warmup >= offered.requests:
        raise PlanError(f"{where}: offered_load.warmup: {offered.warmup} leaves none of the "
                        f"{offered.requests} requests to measure")


def _check_decode(plan: PlanFile, where: str) -> None:
    """Generation: strategies that decode, the latency of mean times, one request at a
    time."""
    if plan.decode is None:
        return
    for i, name in enumerate(plan.strategies):
        if name not in decoding_strategies():
            raise PlanError(f"{where}: strategies[{i}]: {name!r} has no decoding; with "
                            f"decode: use {', '.join(decoding_strategies())}")
    for key, given in (("rank", plan.rank != "mean"), ("offered_load", plan.offered_load),
                       ("model.tokens", plan.model.tokens)):
        if given:
            raise PlanError(f"{where}: {key}: not with decode: (generation is judged on "
                            f"its mean times, one request at a time, at decode.prompt_tokens)")


def _check_fits(plan: PlanFile, devices: list[PricedDevice], where: str) -> None:
    """With fits_required, every candidate device has a capacity."""
    if not plan.fits_required:
        return
    for i, priced in enumerate(devices):
        if priced.spec.memory_gib is None:
            raise PlanError(f"{where}: devices[{i}]: {priced.name} has no memory_gib, and "
                            f"fits_required: true needs one to say whether a deployment fits")


def _check_table(table: AccuracyTable, where: str, known: set[str]) -> None:
    seen = set()
    for i, e in enumerate(table.entries):
        if e.strategy not in known:
            raise PlanError(f"{where}: accuracy.entries[{i}].strategy: unknown strategy "
                            f"{e.strategy!r}")
        if (e.cr is None) != (e.strategy != "prism"):
            need = "needs a cr" if e.strategy == "prism" else "takes no cr (prism only)"
            raise PlanError(f"{where}: accuracy.entries[{i}]: {e.strategy} {need}")
        key = (e.strategy, e.devices, e.cr, e.dtype)
        if key in seen:
            raise PlanError(f"{where}: accuracy.entries[{i}]: a second value for {key}")
        seen.add(key)


def plan_configurations(plan: PlanFile) -> list[Configuration]:
    """The (strategy, P, CR) the plan tries: single on one device, every other strategy
    at every count above 1, prism at each CR; by count, then strategy as listed."""
    crs = plan.prism.cr if plan.prism else []
    configs = configurations(plan.strategies, plan.counts, prism_settings(crs))
    return sorted(configs, key=lambda c: plan.counts.index(c.devices))  # stable


def load_plan(path: str | Path) -> LoadedPlan:
    """Read, validate and check a plan file; raise PlanError naming file and key."""
    path = Path(path)
    plan, where = load_model_file(path, PlanFile, "plan fields", PlanError), path.name
    _check(plan, where)
    loaded = LoadedPlan(path, plan, _priced(plan, where), _links(plan, where))
    _check_fits(plan, loaded.devices, where)
    if not plan_configurations(plan):
        raise PlanError(f"{where}: no configuration: single needs 1 in counts, "
                        f"the other strategies a count above 1")
    return loaded


