"""What serving deals in: the requests, how groups of devices serve them
(``ServingSetup``) and what a stream gives (``ServingResult``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from prismsim.serve.resplit import Resplit
from prismsim.sim.results import DeviceStats
from prismsim.sim.specs import DeviceSpec
from prismsim.workload import Workload

DISPATCH = ("round_robin", "shortest_queue")  # how a request picks its group


@dataclass
class Request:
    index: int  # in arrival order
    arrival_s: float
    group: int = -1
    start_s: float | None = None  # the master took it (None: dropped, or never served)
    finish_s: float | None = None  # its output is ready
    batch: int = 0  # requests served together with it (itself included)
    dropped: bool = False  # refused: the group's queue was full
    devices: int = 0  # devices that ran it (the requests table's column ``boards``)
    choice: str = ""  # adaptive groups: the candidate that served it
    energy_j: float = math.nan  # its share of its batch's active energy (above idle)
    restarts: int = 0  # times it was started again after a device of its run left

    @property
    def lost(self) -> bool:
        """Admitted, and never answered (a device it needed left for good)."""
        return not self.dropped and self.finish_s is None


@dataclass
class ServingResult:
    requests: list[Request]
    devices: list[DeviceStats]  # G x P of them, group by group
    end_s: float  # when the last device finished its last task
    bytes_on_air: int
    channel_busy_s: float | None = None  # one shared channel: its time carrying frames
    events: bool = False  # devices slowed down or left: requests may be lost or restarted
    resplits: int | None = None  # times a group split its tokens anew (None: never may)


@dataclass(frozen=True)
class ServingSetup:
    """How the groups serve: ``workloads[b]`` is one request batch of b inputs."""

    workloads: dict[int, Workload]
    groups: int = 1
    dispatch: str = "round_robin"
    queue_limit: int | None = None  # requests waiting (not yet taken) per group; None: any
    max_batch: int = 1
    max_wait_s: float = 0.0  # dynamic batching: longest the master waits for a fuller batch
    # a request alone on idle devices takes the one-inference timeline (serve/shortcut.py:
    # exactly the same times); False: every request replayed task by task
    shortcut: bool = True
    # each request's steps and messages drawn from the devices' and the link's
    # variability (sim/draws.py: Streams), seeded; None: every one at its mean time
    seed: int | None = None
    # straggler-aware re-split (serve/resplit.py): after a detection window a group splits
    # its tokens in proportion to its devices' measured speeds; None: never
    resplit: Resplit | None = None


def check_setup(setup: ServingSetup) -> None:
    if setup.dispatch not in DISPATCH:
        raise ValueError(f"dispatch must be one of {', '.join(DISPATCH)}, "
                         f"got {setup.dispatch!r}")
    missing = [b for b in range(1, setup.max_batch + 1) if b not in setup.workloads]
    if missing:
        raise ValueError(f"no workload for batch sizes {missing}")


def device_list(device: DeviceSpec | Sequence[DeviceSpec], groups: int, per_group: int
                ) -> list[DeviceSpec]:
    """One spec per device: ``device`` for all, or the given one per device."""
    n = groups * per_group
    specs = [device] * n if isinstance(device, DeviceSpec) else list(device)
    if len(specs) != n:
        raise ValueError(f"{groups} groups of {per_group} devices need {n} specs, "
                         f"got {len(specs)}")
    return specs
