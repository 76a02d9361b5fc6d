"""One deployment under one load: the p99 latency and throughput of a request stream
at a rate, over seeded replications (what ``prismsim plan`` asks of a ``load:``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from prismsim.serve.arrivals import arrivals_s
from prismsim.serve.engine import serve
from prismsim.serve.requests import ServingSetup
from prismsim.serve.stats import aggregate, request_table, run_summary
from prismsim.sim.specs import DeviceSpec, LinkSpec
from prismsim.workload import Workload


@dataclass(frozen=True)
class OfferedLoad:
    rate_per_s: float  # offered requests per second
    arrivals: str = "poisson"  # poisson or constant
    requests: int = 1000  # per replication
    warmup: int = 100  # first requests left out
    replications: int = 3  # seeds seed, seed + 1, ...
    seed: int = 0


def under_load(wl: Workload, device: DeviceSpec | Sequence[DeviceSpec], link: LinkSpec,
               offered: OfferedLoad, groups: int = 1) -> dict[str, float]:
    """Mean p99 latency (and its 95 % half-width), throughput and drop share of
    ``groups`` groups serving the ``offered`` load (join-shortest-queue, no batching)."""
    setup = ServingSetup({1: wl}, groups=groups, dispatch="shortest_queue")
    rows = []
    for rep in range(offered.replications):
        times = arrivals_s(offered.arrivals, offered.rate_per_s, offered.requests,
                           offered.seed + rep)
        result = serve(setup, times, device, link)
        rows.append({"key": 0, **run_summary(result, request_table(result, offered.warmup))})
    agg = aggregate(pd.DataFrame(rows), ["key"]).iloc[0]
    return {"p99_load_s": float(agg["latency_p99_s"]),
            "p99_load_s_ci95": float(agg["latency_p99_s_ci95"]),
            "throughput_per_s": float(agg["throughput_per_s"]),
            "drop_share": float(agg["drop_share"])}
