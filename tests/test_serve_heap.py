"""The heap replay (serve/heap.py) against the SimPy replay it stands in for: the same
request stream in the same sampled world gives the same start, finish and energy of
every request and the same device totals, to the last digit, on the traced PRISM program
over a shared WiFi channel, with frame errors, on two groups, and with a full queue
refusing requests; and its compiled inner loop (serve/compiled.py) the same again where
it applies (no frame errors). (Queueing theory checks the heap replay directly:
tests/test_serve_variability.py, whose seeded runs it serves.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from prismsim.executors.trace_cache import WorkloadCache
from prismsim.serve.arrivals import arrivals_s
from prismsim.serve.compiled import compiled_serves
from prismsim.serve.engine import serve
from prismsim.serve.heap import heap_serves
from prismsim.serve.requests import ServingResult, ServingSetup
from prismsim.sim import simulate
from prismsim.sim.catalog import builtin_devices, builtin_links
from prismsim.sim.link_trace import read_link_trace

BOARD = builtin_devices()["jetson-orin-nano-8gb-15w"]  # the catalog gives it variability
PRISM = WorkloadCache().get("vit-tiny", "prism", 3, cr=4)


def _requests(res: ServingResult) -> list[tuple]:
    return [(r.group, r.start_s, r.finish_s, r.energy_j, r.dropped) for r in res.requests]


def _devices(res: ServingResult) -> list[tuple]:
    return [(d.compute_s, d.staging_s, d.wait_s, d.tx_s, d.rx_s, d.energy_j, d.finish_s,
             d.bytes_sent, d.bytes_received) for d in res.devices]


def _both(setup: ServingSetup, link_name: str, load: float, n: int
          ) -> tuple[ServingResult, ServingResult]:
    link = builtin_links()[link_name]
    rate = load * setup.groups / simulate(PRISM, BOARD, link).latency_s
    arrivals = arrivals_s("poisson", rate, n, 5)
    assert heap_serves(setup, [BOARD] * 3 * setup.groups, link, None, ())
    simpy_run = serve(setup, arrivals, BOARD, link, heap=False)
    heap_run = serve(setup, arrivals, BOARD, link, compiled=False)
    if compiled_serves(setup, [BOARD] * 3 * setup.groups, link, None, ()):
        compiled_run = serve(setup, arrivals, BOARD, link, compiled=True)  # the same
        assert (_requests(compiled_run), _devices(compiled_run), compiled_run.end_s,
                compiled_run.bytes_on_air, compiled_run.channel_busy_s) == (
            _requests(heap_run), _devices(heap_run), heap_run.end_s,
            heap_run.bytes_on_air, heap_run.channel_busy_s)
    return simpy_run, heap_run


@pytest.mark.parametrize("link_name", ["wifi5", "wifi5-lossy"])
def test_heap_replay_equals_the_simpy_replay(link_name):
    """Queues build up at 0.8 of what one group takes one request at a time: requests
    overlap on the devices and contend for the channel."""
    simpy_run, heap_run = _both(ServingSetup({1: PRISM}, seed=11), link_name, 0.8, 600)
    assert _requests(heap_run) == _requests(simpy_run)
    assert _devices(heap_run) == _devices(simpy_run)
    assert (heap_run.end_s, heap_run.bytes_on_air, heap_run.channel_busy_s) == \
        (simpy_run.end_s, simpy_run.bytes_on_air, simpy_run.channel_busy_s)
    waited = [r.start_s - r.arrival_s for r in heap_run.requests]
    assert sum(w > 0 for w in waited) > 100  # the case is one of queues, not idle boards


def test_heap_replay_equals_simpy_on_two_groups_with_a_queue_limit():
    setup = ServingSetup({1: PRISM}, groups=2, dispatch="shortest_queue", queue_limit=1,
                         seed=2)
    simpy_run, heap_run = _both(setup, "wifi5", 1.2, 500)
    assert _requests(heap_run) == _requests(simpy_run)
    assert _devices(heap_run) == _devices(simpy_run)
    assert sum(r.dropped for r in heap_run.requests) > 10
    assert {r.group for r in heap_run.requests} == {0, 1}


def test_a_world_that_stands_still_stays_with_simpy():
    """Without draws, or with nothing to draw, or where the heap replay does not model
    it (a batch of several, device events), SimPy serves."""
    wifi, still = builtin_links()["wifi5"], BOARD.model_copy(update={"variability": None})
    still_link = wifi.model_copy(update={"variability": None})
    assert not heap_serves(ServingSetup({1: PRISM}), [BOARD] * 3, wifi, None, ())
    assert not heap_serves(ServingSetup({1: PRISM}, seed=1), [still] * 3, still_link,
                           None, ())
    assert heap_serves(ServingSetup({1: PRISM}, seed=1), [still] * 3, wifi, None, ())
    assert not heap_serves(ServingSetup({1: PRISM, 2: PRISM}, max_batch=2, seed=1),
                           [BOARD] * 3, wifi, None, ())
    assert not heap_serves(ServingSetup({1: PRISM}, seed=1), [BOARD] * 3, wifi, None,
                           ("an event",))


def test_heap_replay_equals_simpy_under_a_link_trace():
    """Raspberry Pi 5 boards over the shipped WiFi 5 walk (11 to 867 Mbit/s): a
    transmission in flight sees each change of rate, in both replays alike."""
    pi5 = builtin_devices()["raspberry-pi-5"]
    walk = read_link_trace(Path("scenarios/traces/wifi5_walk.csv"), 0.0)
    link = builtin_links()["wifi5"].model_copy(update={"trace": walk})
    arrivals = arrivals_s("poisson", 8.0, 400, 1)
    setup = ServingSetup({1: PRISM}, seed=5)
    simpy_run = serve(setup, arrivals, pi5, link, heap=False)
    heap_run = serve(setup, arrivals, pi5, link)
    assert _requests(heap_run) == _requests(simpy_run)
    assert _devices(heap_run) == _devices(simpy_run)


def test_the_kernel_takes_no_array_it_would_have_to_copy():
    """The compiled kernel writes its figures into the arrays it is given: one of
    another dtype (which would be copied, and its figures lost) is refused."""
    from types import SimpleNamespace

    import numpy as np

    from prismsim.serve.compiled_fields import SPEC, make_kernel

    fields = SimpleNamespace(**{name: 0 for name, _ in SPEC})
    fields.n_ops = np.zeros(3, np.float32)
    with pytest.raises(TypeError, match="kernel field kind: needs a C-contiguous int64"):
        make_kernel(fields)
