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
from prismsim.strategies import decoding_strategies
from prismsim.strategies.decoding import check_decodable
from prismsim.testbed.cpu_quota import LEAST_SHARE
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
