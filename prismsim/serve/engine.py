"""Serve a stream of requests on groups of simulated devices: every message of every
request replayed by the same SimPy replay as one inference (``sim/replay.py``).

G groups of P devices share one network medium (a WiFi channel is shared by every group
on it; switched ports are not). A dispatcher sends each arriving request to a group
(round robin, or the group with the fewest outstanding requests); each group serves its
queue (``serve/groups.py``). The requests come from an open or a closed loop
(``serve/streams.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prismsim.serve.compiled import CompiledReplay, compiled_serves
from prismsim.serve.groups import ServingReplay
from prismsim.serve.heap import HeapReplay, heap_serves
from prismsim.serve.requests import ServingResult, ServingSetup, check_setup, device_list
from prismsim.serve.streams import closed_loop, open_loop
from prismsim.sim.device_events import DeviceEvent
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec


def serving_replay(setup: ServingSetup, device: DeviceSpec | Sequence[DeviceSpec],
                   link: LinkSpec, host: HostSpec | None = None,
                   events: Sequence[DeviceEvent] = ()) -> ServingReplay:
    """The replay that serves a stream (``open_loop`` or ``closed_loop``). ``device``:
    one spec for every device, or one per device of every group (G x P, group by group);
    ``events``: devices (numbered so, 0 ... G x P - 1) that slow down or leave."""
    check_setup(setup)
    specs = device_list(device, setup.groups, setup.workloads[1].n_devices)
    return ServingReplay(setup, specs, link, host, events)


# requests from which a run is served by the compiled replay when not told: its one
# compilation (kept on disk by numba: about 12 s the first time, 3 s to load in a later
# process) against 0.35 ms a request saved
COMPILED_FROM = 20_000

def serve(setup: ServingSetup, arrivals_s: Sequence[float],
          device: DeviceSpec | Sequence[DeviceSpec], link: LinkSpec,
          host: HostSpec | None = None, events: Sequence[DeviceEvent] = (),
          heap: bool = True, compiled: bool | None = None) -> ServingResult:
    """Serve requests arriving at ``arrivals_s`` (increasing seconds): in a sampled
    world by the heap replay where it applies (``serve/heap.py``; ``heap=False``: always
    by SimPy), its inner loop compiled where that applies (``serve/compiled.py``) and
    the run is long enough to repay compiling it once a process (``compiled``: None, from
    COMPILED_FROM requests; True: whatever the length; False: never), else by SimPy. The
    same figures whichever serves."""
    check_setup(setup)
    specs = device_list(device, setup.groups, setup.workloads[1].n_devices)
    long_enough = len(arrivals_s) >= COMPILED_FROM if compiled is None else compiled
    if heap and long_enough and compiled_serves(setup, specs, link, host, events):
        return CompiledReplay(setup, specs, link).run_open(arrivals_s)
    if heap and heap_serves(setup, specs, link, host, events):
        return HeapReplay(setup, specs, link).run_open(arrivals_s)
    replay = serving_replay(setup, specs, link, host, events)
    return replay.run_stream(lambda out: open_loop(replay, arrivals_s, out))


def serve_closed(setup: ServingSetup, clients: int, think: Callable[[], float],
                 n_requests: int, device: DeviceSpec | Sequence[DeviceSpec],
                 link: LinkSpec, host: HostSpec | None = None) -> ServingResult:
    """Serve ``clients`` users in a closed loop (``think()`` draws a think time)."""
    replay = serving_replay(setup, device, link, host)
    return replay.run_stream(lambda out: closed_loop(replay, clients, think, n_requests,
                                                     out))
