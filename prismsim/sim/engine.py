"""One inference simulated: a workload's programs replayed on modelled devices and a
network medium (``sim/replay.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from prismsim.sim.device_events import DeviceEvent
from prismsim.sim.replay import Replay
from prismsim.sim.results import SimResult
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec
from prismsim.workload import Workload


def simulate(wl: Workload, devices: DeviceSpec | Sequence[DeviceSpec], link: LinkSpec,
             record: bool = False, host: HostSpec | None = None,
             events: Sequence[DeviceEvent] = ()) -> SimResult:
    """Simulate one inference. ``devices``: one spec for all, or one per device.
    ``record`` keeps a per-device timeline (spans) for plots and trace export. ``host``:
    every device is a process on this machine, sharing its cores (``sim/host.py``);
    None: each device has its own hardware. ``events``: devices that slow down or leave
    (``sim/device_events.py``); a device that never returns gives a result ``lost``."""
    specs = [devices] * wl.n_devices if isinstance(devices, DeviceSpec) else list(devices)
    if len(specs) != wl.n_devices:
        raise ValueError(f"the workload has {wl.n_devices} devices, got {len(specs)} specs")
    return Replay(wl, specs, link, record, host, events=events).run()
