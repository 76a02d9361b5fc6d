"""The validation file (``prismsim validate FILE``): which model and strategies run on
which device counts and network points, how many rounds, and what else to measure
(serving under an offered load, generation); read and checked in one place, each
mistake one line naming the file and the key. See ``scenarios/validate_vit_tiny.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, PositiveFloat, PositiveInt

from prismsim.models.load import load_model
from prismsim.names import check_model, check_strategies
from prismsim.sim.link_trace import read_link_trace, shortest_step_s
from prismsim.strategies import decoding_strategies
from prismsim.strategies.decoding import check_decodable
from prismsim.testbed.cpu_quota import LEAST_SHARE
from prismsim.testbed.link_schedule import MIN_STEP_S
from prismsim.userfiles import StrictModel, UserFileError, load_model_file, renamed_key


class DecodeRun(StrictModel):
    """What each timed round generates."""

    prompt_tokens: PositiveInt = 64  # the prompt's length, prefilled by the strategy
    generate: int = Field(32, ge=2)  # tokens generated greedily (>= 2: a time per token)

    def pair(self) -> tuple[int, int]:
        return self.prompt_tokens, self.generate


class ValidationFileError(UserFileError):
    """A validation file that does not validate; names the file and the key."""


class StrategyEntry(StrictModel):
    strategy: str
    options: dict[str, Any] = Field(default_factory=dict)  # the strategy's options


class OfferedLoadSection(StrictModel):
    """``validate --load``: each strategy serving a seeded Poisson trace, at offered
    loads set relative to its predicted idle latency L (``under_load.py``)."""

    # offered requests a second x L: below, near and above the knee (1 saturates a group)
    load_factors: list[PositiveFloat] = Field(default_factory=lambda: [0.3, 0.6, 1.2])
    requests: int = Field(200, ge=2)  # per offered load
    warmup: int = Field(20, ge=0)  # first requests left out of the figures
    seed: int = 0  # of the arrival trace
    # times each load is served, on the same trace, a whole grid apart: the spread of
    # the measurement (3 or more: its median is what the prediction is judged against)
    repeats: int = Field(1, ge=1)


class DynamicSection(StrictModel):
    """``validate --dynamic``: a link trace replayed by the testbed's shapers under a
    seeded Poisson stream; an adaptive group chooses each request's candidate at the
    trace's rate of the moment (``dynamic.py``): single on its first device, or one of
    the file's strategies split over all its devices."""

    # time_s, bandwidth_mbps CSV (or a Mahimahi file) beside the validation file; each
    # step at least half a second (the shapers are changed by tc)
    link_trace: str
    devices: int = Field(2, ge=2)  # the group (2: one process per core here)
    latency_ms: float = Field(0.0, ge=0)  # one-way delay, fixed while the rate moves
    rate_per_s: PositiveFloat = 4.0  # offered requests a second (Poisson)
    requests: int = Field(300, ge=2)  # in the stream
    warmup: int = Field(10, ge=0)  # first requests left out of the figures
    window: int = Field(10, ge=2)  # requests per window whose medians are compared
    seed: int = 0  # of the arrival trace


class ValidationFile(StrictModel):
    model: str = "vit-tiny"  # small enough that P processes fit on 2 cores
    batch: int = Field(1, ge=1)  # images per inference
    strategies: list[StrategyEntry]  # single is always run beside them, as the baseline
    devices: list[int] = Field(default_factory=lambda: [2, 3])  # process groups
    bandwidth_mbps: list[PositiveFloat] = Field(default_factory=lambda: [50.0, 200.0, 1000.0])
    latency_ms: list[float] = Field(default_factory=lambda: [1.0, 10.0])  # one-way delay
    warmup: int = Field(2, ge=0)  # untimed rounds before the timed ones
    runs: int = Field(7, ge=1)  # timed rounds per point (strategies interleaved)
    profile: str | None = None  # a saved `prismsim profile-device` file; None: measure now
    profile_rounds: int = Field(3, ge=1)  # measuring now: interleaved windows per k ...
    profile_window_s: float = Field(3.0, gt=0)  # ... of this many seconds each
    # validate --load (formerly load:); None: that mode is not asked for
    offered_load: OfferedLoadSection | None = Field(
        None, validation_alias=renamed_key("offered_load", "load"))
    # each round a prompt's prefill and greedy generation (causal LMs); None: one forward
    decode: DecodeRun | None = None
    # a slowed device: device -> the share of one core its process may use (a CPU quota
    # for the whole run, testbed/cpu_quota.py; single runs on device 0); {}: none
    cpu_share: dict[int, float] = Field(default_factory=dict)
    # validate --dynamic: a replayed link trace under load; None: that mode not asked for
    dynamic: DynamicSection | None = None

    def shares(self, devices: int) -> dict[int, float]:
        """The CPU quotas of a run on ``devices`` devices."""
        return {d: s for d, s in self.cpu_share.items() if d < devices}

    def decode_pair(self) -> tuple[int, int] | None:
        return self.decode.pair() if self.decode else None


def load_validation_file(path: Path) -> ValidationFile:
    """The validation file at ``path``, checked: its model and strategies known, and
    with ``decode:`` a causal language model and decoding strategies."""
    validation = load_model_file(path, ValidationFile, "validation fields",
                                 ValidationFileError)
    check_model(validation.model, f"{path.name}: model", ValidationFileError)
    check_strategies([e.strategy for e in validation.strategies], f"{path.name}: strategies",
                     ValidationFileError)
    if validation.decode is not None:
        _check_decode(validation, path.name)
    if validation.dynamic is not None:
        validation = validation.model_copy(
            update={"dynamic": _check_dynamic(validation.dynamic, path)})
    for device, share in validation.cpu_share.items():
        if not 0 <= device < min(validation.devices) or not LEAST_SHARE <= share <= 1:
            raise ValidationFileError(
                f"{path.name}: cpu_share: {device}: {share:g}: a device below "
                f"{min(validation.devices)} (the fewest devices) and a share in "
                f"[{LEAST_SHARE:g}, 1] (the testbed's quota: at least 1 ms every 2 ms)")
    return validation


def _check_decode(validation: ValidationFile, where: str) -> None:
    for i, entry in enumerate(validation.strategies):
        if entry.strategy not in decoding_strategies():
            raise ValidationFileError(f"{where}: strategies[{i}]: {entry.strategy!r} has no "
                                      f"decoding; with decode: use "
                                      f"{', '.join(decoding_strategies())}")
    try:
        check_decodable(load_model(validation.model))
    except ValueError as err:
        raise ValidationFileError(f"{where}: model: {err}") from None


def _check_dynamic(section: DynamicSection, path: Path) -> DynamicSection:
    """The section with its trace's path made absolute, checked: its trace readable and
    replayable."""
    where = f"{path.name}: dynamic"
    trace_path = path.parent / section.link_trace
    trace = read_link_trace(trace_path)
    if trace.latency_ms is not None or trace.loss is not None:
        raise ValidationFileError(f"{where}: link_trace: {trace_path.name}: the testbed "
                                  f"replays the rate alone; leave out latency_ms and loss")
    if not all(trace.bandwidth_mbps):
        raise ValidationFileError(f"{where}: link_trace: {trace_path.name}: the testbed's "
                                  f"shapers need a rate above 0 at every step")
    if (step_s := shortest_step_s(trace)) < MIN_STEP_S:
        raise ValidationFileError(f"{where}: link_trace: {trace_path.name}: a step of "
                                  f"{step_s:g} s; the testbed sets steps of {MIN_STEP_S:g} s "
                                  f"or longer")
    return section.model_copy(update={"link_trace": str(trace_path.resolve())})
