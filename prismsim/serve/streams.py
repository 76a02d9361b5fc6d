"""Where requests come from: an open loop (arrival times given in advance) or a closed
loop (clients that send again a think time after each answer); each a SimPy process
that admits its requests to a serving replay (``ServingReplay.run_stream``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from typing import Any

from prismsim.serve.groups import ServingReplay
from prismsim.serve.requests import Request


def open_loop(replay: ServingReplay, arrivals_s: Sequence[float], out: list[Request]
              ) -> Generator[Any, Any, None]:
    """A request at each of ``arrivals_s`` (increasing seconds)."""
    env = replay.env
    for i, at in enumerate(arrivals_s):
        if at > env.now:
            yield env.timeout(at - env.now)
        out.append(Request(i, env.now))
        replay.shortcut.next_arrival(arrivals_s[i + 1] if i + 1 < len(arrivals_s)
                                     else math.inf)
        replay.admit(out[-1])


def closed_loop(replay: ServingReplay, clients: int, think: Callable[[], float],
                n_requests: int, out: list[Request]) -> Generator[Any, Any, None]:
    """``clients`` users, each sending its next request ``think()`` seconds after
    its previous one was answered (or refused), until ``n_requests`` were sent."""
    replay.shortcut.disable()  # the next arrival is not known in advance
    for _ in range(clients):
        replay.env.process(_client(replay, think, n_requests, out))
    yield replay.env.timeout(0)


def _client(replay: ServingReplay, think: Callable[[], float], n_requests: int,
            out: list[Request]) -> Generator[Any, Any, None]:
    env = replay.env
    while True:
        yield env.timeout(think())
        if len(out) >= n_requests:
            return
        r = Request(len(out), env.now)
        out.append(r)
        replay.admit(r)
        if not r.dropped:
            yield replay.answered(r)
