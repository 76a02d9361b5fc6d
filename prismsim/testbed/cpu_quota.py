"""A device slowed down: its worker process held to a share of one core by a CPU quota
(the kernel's CFS bandwidth control: a cgroup's ``cpu.cfs_quota_us`` of every
``cpu.cfs_period_us`` under cgroup v1, ``cpu.max`` under v2). The process runs at full
speed until it has used its quota of a period, then waits for the next period: over
steps much longer than the period it runs at ``share`` of its speed, as a board
throttled by heat or sharing its CPU with other work does.

Groups are named like the testbed's namespaces (``psim`` and a run id) and removed on
exit; :func:`clean` removes what a killed run left.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from prismsim.testbed.network import PREFIX, TestbedError

PERIOD_US = 2000  # the quota's period: the kernel's least quota (1 ms) is half of it
LEAST_SHARE = 0.5  # so a share is at least this
CGROUP_V1 = Path("/sys/fs/cgroup/cpu")  # the v1 cpu controller's hierarchy
CGROUP_V2 = Path("/sys/fs/cgroup")  # the unified hierarchy, where it has the cpu controller


def cpu_root() -> Path:
    """Where CPU quotas can be made here: the v1 cpu hierarchy, else v2's root."""
    if (CGROUP_V1 / "cpu.cfs_quota_us").exists():
        return CGROUP_V1
    controllers = CGROUP_V2 / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        return CGROUP_V2
    raise TestbedError("no CPU quota here: neither cgroup v1's cpu controller nor v2's "
                       "cpu.max is mounted")


@dataclass
class CpuQuota:
    """One cgroup holding processes to ``share`` of one core; a context manager."""

    name: str  # starts with PREFIX
    share: float  # of one core, (0, 1]
    root: Path = field(default_factory=cpu_root)

    def __post_init__(self) -> None:
        if not LEAST_SHARE <= self.share <= 1:
            raise TestbedError(f"cpu share {self.share:g}: must be in [{LEAST_SHARE:g}, 1] "
                               f"of one core (a quota of at least 1 ms every "
                               f"{PERIOD_US / 1000:g} ms)")

    @property
    def path(self) -> Path:
        return self.root / self.name

    def __enter__(self) -> CpuQuota:
        self.path.mkdir(exist_ok=True)
        quota_us = round(self.share * PERIOD_US)
        if self.root == CGROUP_V1:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota_us))
        else:
            (self.path / "cpu.max").write_text(f"{quota_us} {PERIOD_US}")
        return self

    def add(self, pid: int) -> None:
        """Move process ``pid`` (every thread of it) into the group."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def __exit__(self, *exc: object) -> None:
        remove_group(self.path)


def remove_group(path: Path) -> None:
    """Hand what still runs in the group back to its parent, and remove it."""
    if not path.exists():
        return
    with contextlib.suppress(OSError):
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (path.parent / "cgroup.procs").write_text(pid)
    with contextlib.suppress(OSError):
        path.rmdir()


def clean() -> list[str]:
    """Remove every quota group a testbed left behind; returns their names."""
    try:
        root = cpu_root()
    except TestbedError:
        return []
    left = sorted(p for p in root.glob(f"{PREFIX}*") if p.is_dir())
    for path in left:
        remove_group(path)
    return [p.name for p in left]
