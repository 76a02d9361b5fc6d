"""Serving speed with variability on: the time to serve 120,000 requests of ViT-B/16
prism P=3 (CR 4) on three Jetson Orin Nano 15 W boards over WiFi 5 (the catalog's
assumed variability: each request draws its boards' slow factors and each step's and
message's own), Poisson arrivals at half the rate one group could take one request at a
time (1 / the mean-times latency), every message of every request simulated, in one
process (one core). Target: within 20 s on a 2-core machine.

    python bench/serve_speed.py [--requests 120000] [--load 0.5] [--mean-times]
                                [--python | --simpy] [--profile FILE]

A sampled world is served by the heap replay with its inner loop compiled
(serve/compiled.py; compiled once a process, in the warm-up, its time printed apart);
``--python`` by the heap replay in Python (serve/heap.py), ``--simpy`` by the SimPy
replay (the same figures, to the last digit, slower).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

from prismsim.executors.trace_cache import WorkloadCache
from prismsim.serve.arrivals import arrivals_s
from prismsim.serve.engine import serve
from prismsim.serve.requests import ServingSetup
from prismsim.serve.stats import request_table, run_summary
from prismsim.sim import simulate
from prismsim.sim.catalog import builtin_devices, builtin_links

BOARD, LINK = "jetson-orin-nano-8gb-15w", "wifi5"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=120_000)
    ap.add_argument("--load", type=float, default=0.5,
                    help="arrival rate as a share of 1 / one inference's latency")
    ap.add_argument("--mean-times", action="store_true",
                    help="variability off (every step at its mean time): the reference")
    ap.add_argument("--simpy", action="store_true",
                    help="serve by the SimPy replay, not the heap replay")
    ap.add_argument("--python", action="store_true",
                    help="serve by the heap replay in Python, not its compiled loop")
    ap.add_argument("--profile", default=None,
                    help="write a cProfile of the serving run here and print its top costs")
    args = ap.parse_args()
    wl = WorkloadCache().get("vit-base", "prism", 3, cr=4)  # traced once, then cached
    board, wifi = builtin_devices()[BOARD], builtin_links()[LINK]
    assert board.variability and wifi.variability, "the catalog gives their variability"
    one_s = simulate(wl, board, wifi).latency_s
    rate = args.load / one_s
    # seeded: every request's steps and messages drawn; None: mean times (and requests
    # alone on idle boards take the one-inference timeline, serve/shortcut.py)
    setup = ServingSetup({1: wl}, seed=None if args.mean_times else 0)
    arrivals = arrivals_s("poisson", rate, args.requests, 0)
    compiled = not (args.python or args.simpy)
    start = time.perf_counter()  # warm-up: prepares each device's steps (and compiles)
    serve(setup, arrivals[:200], board, wifi, compiled=compiled)
    args.warmup_s = time.perf_counter() - start
    profiler = cProfile.Profile() if args.profile else None
    cpu0, start = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    result = serve(setup, arrivals, board, wifi, heap=not args.simpy, compiled=compiled)
    if profiler:
        profiler.disable()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    start = time.perf_counter()
    summary = run_summary(result, request_table(result, warmup=1000))
    stats_s = time.perf_counter() - start
    _report(args, one_s, rate, wall, cpu, stats_s, summary)
    if profiler:
        profiler.dump_stats(args.profile)
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)


def _report(args: argparse.Namespace, one_s: float, rate: float, wall: float, cpu: float,
            stats_s: float, summary: dict) -> None:
    n = args.requests
    engine = "SimPy" if args.simpy or args.mean_times else (
        "heap, in Python" if args.python else "heap, compiled")
    print(f"ViT-B/16 prism P=3 CR 4 on 3 x {BOARD} over {LINK}, variability "
          f"{'off' if args.mean_times else 'on'} ({engine} replay): one "
          f"inference {one_s * 1e3:.1f} ms of mean times; Poisson at {rate:.2f} requests/s "
          f"({args.load:g} / that latency)")
    print(f"{n:,} requests served in {wall:.2f} s wall, {cpu:.2f} s CPU: "
          f"{n / wall:,.0f} requests/s (load average {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} cores; target <= 20 s); request table and summary "
          f"{stats_s:.2f} s more; warm-up of 200 requests (compiling, where it does) "
          f"{args.warmup_s:.1f} s before")
    print(f"mean {summary['latency_mean_s'] * 1e3:.1f} ms, p50 "
          f"{summary['latency_p50_s'] * 1e3:.1f}, p99 {summary['latency_p99_s'] * 1e3:.1f} "
          f"ms; busiest board computing {summary['compute_util_max']:.0%} of the time, "
          f"channel busy {summary['channel_util']:.0%}")


if __name__ == "__main__":
    main()
