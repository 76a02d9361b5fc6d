"""A world that moves, measured against predicted (``prismsim validate FILE --dynamic``):
the testbed's shapers replay a link trace (their rate changed on schedule,
``testbed/link_schedule.py``) while the master serves a seeded Poisson stream, choosing
for each request, when it starts it, a candidate (its first device alone, or split over
all) by a performance map at the trace's rate of that moment: the simulator's
``oracle`` policy, live in the runner. The map is the held-out prediction's (operator
table, host model, the measured link: nothing of a candidate timed), made before the run.

The simulator then serves the same stream on the same trace with the same policy
(``pools.AdaptiveReplay``, requests on one device kept on the first, as the testbed's
master serves them) from the same map. Compared: each request's latency, as medians per
window of ``window`` requests, and the choice each request got.

Everything is written to ``validation_dynamic.csv`` (one row per request); the command
reports a folder that has it again without running (``--fresh`` runs again).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prismsim.profiling.gauge import gauge_s
from prismsim.profiling.host_profile import HostProfile
from prismsim.profiling.hoststat import CpuTimes, stolen_share_since
from prismsim.profiling.message_costs import testbed_message_costs
from prismsim.serve.arrivals import arrivals_s
from prismsim.serve.policies import Candidate, PerformanceMap, fastest
from prismsim.serve.pools import AdaptiveSetup, serve_adaptive
from prismsim.sim.link_trace import read_link_trace, trace_steps
from prismsim.sim.specs import LinkSpec
from prismsim.testbed.link_schedule import AdaptiveChoice
from prismsim.testbed.network import Testbed
from prismsim.testbed.runner import RUN_TIMEOUT_S, RealConfig, run_configs
from prismsim.validation import predict
from prismsim.validation.file import DynamicSection, ValidationFile
from prismsim.validation.report import error_pct, options_text

TABLE = "validation_dynamic.csv"
GAUGE_WINDOW = 9  # gauge readings (one a request) in the median of the host's speed
WINDOW_LIMIT_PCT = 15.0  # a window's predicted median this close to the measured one


def dynamic_section(validation: ValidationFile) -> DynamicSection:
    if validation.dynamic is None:
        raise ValueError("validate --dynamic needs a dynamic: section")
    return validation.dynamic


def candidate_configs(validation: ValidationFile) -> list[RealConfig]:
    """The candidates as the runner takes them: single on one device, and each of the
    file's strategies (but single) split over the section's devices."""
    devices = dynamic_section(validation).devices
    return [RealConfig("single", {}, 1), *(RealConfig(e.strategy, e.options, devices)
                                           for e in validation.strategies
                                           if e.strategy != "single")]


def label(config: RealConfig) -> str:
    """A candidate's name in the tables: its strategy, and its options as every
    validation table writes them ("prism {cr: 4}")."""
    return (f"{config.strategy} {options_text(config.options)}" if config.options
            else config.strategy)


def run_dynamic_validation(validation: ValidationFile, out_dir: Path, profile: HostProfile
                           ) -> pd.DataFrame:
    """The stream served on the testbed under the replayed trace and by the simulator;
    one row per request, written to ``out_dir / TABLE``."""
    path = out_dir / TABLE
    section, configs = dynamic_section(validation), candidate_configs(validation)
    predict.require_current_gauge(profile)
    trace = read_link_trace(Path(section.link_trace))
    times = arrivals_s("poisson", section.rate_per_s, section.requests, section.seed)
    first_mbps, map_gauge_s = trace_steps(trace, 1.0)[0][1], gauge_s()
    with Testbed(section.devices, first_mbps * 1e6, section.latency_ms / 1e3) as tb:
        costs = testbed_message_costs(tb)
        link = predict.measured_link(first_mbps, costs).model_copy(update={"trace": trace})
        model = _PredictionModel(validation, profile, costs, link, map_gauge_s)
        cpu0 = CpuTimes.now()
        records = run_configs(tb, validation.model, configs, batch=validation.batch,
                              warmup=validation.warmup, arrivals_s=[float(t) for t in times],
                              adaptive=model.choice(times[-1] + RUN_TIMEOUT_S))
        stolen_pct = 100 * stolen_share_since(cpu0)  # the CPU other machines took
    run_gauge_s = predict.round_gauge_s(records)
    table = _table(records, model.served(times, section, run_gauge_s,
                                         speed_steps(records, run_gauge_s)),
                   [label(c) for c in configs], section.warmup)
    table["stolen_cpu_pct"] = stolen_pct
    table["map_gauge_s"], table["gauge_s"] = model.gauge_s, run_gauge_s
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return table


class _PredictionModel:
    """The held-out prediction of the group on this testbed: the host model, the link as
    measured with the trace on it; the devices at the host's speed before the run for the map (its
    gauge, read then), at the master's reading during it for the service."""

    def __init__(self, validation: ValidationFile, profile: HostProfile, costs: Any,
                 link: LinkSpec, map_gauge_s: float):
        section = dynamic_section(validation)
        self.table, self.gflops = predict.operator_table(profile), profile.concurrent_gflops[1]
        self.gauge_s = map_gauge_s
        self.device = predict.table_device(self.table, self.gauge_s, self.gflops)
        self.host = predict.host_spec(profile, costs, {})
        self.link = link
        self.devices = section.devices
        self.candidates = tuple(
            Candidate(label(c), predict.workload(validation.model, c.strategy, c.options,
                                                 c.devices or section.devices,
                                                 validation.batch))
            for c in candidate_configs(validation))

    def choice(self, until_s: float) -> AdaptiveChoice:
        """The master's policy: at each step of the trace (up to ``until_s``), the
        candidate the simulator's oracle takes for a request on idle devices: the
        fastest on the performance map it reads, at the step's rate."""
        pmap = PerformanceMap(self.candidates, [self.device] * self.devices, self.link,
                              self.host)
        sizes = [c.workload.n_devices for c in self.candidates]
        return AdaptiveChoice([(at_s, mbps, fastest([r.latency_s for r in pmap.at(mbps)],
                                                    sizes))
                               for at_s, mbps in trace_steps(self.link.trace, until_s)])

    def served(self, times: Any, section: DynamicSection, run_gauge_s: float,
               steps: tuple[tuple[float, float], ...] = ()) -> Any:
        """The stream served by the simulator at the host's speed of the run (the
        median gauge reading, moved over the stream by ``steps``), choosing by the map
        made before it (as the master did)."""
        setup = AdaptiveSetup(self.candidates, section.devices, policy="oracle",
                              local="first")
        device = predict.table_device(self.table, run_gauge_s, self.gflops)
        host = self.host.model_copy(update={"speed_steps": steps})
        return serve_adaptive(setup, [float(t) for t in times], device, self.link,
                              host, believed=self.device)


def speed_steps(records: list[dict], run_gauge_s: float) -> tuple[tuple[float, float], ...]:
    """The host's speed over the stream: from each request's start, the median of the
    master's gauge readings around it (GAUGE_WINDOW, centred: one reading is noisy) over
    the run's median reading."""
    read = sorted((r["start_s"], r["gauge_s"]) for r in records if r.get("gauge_s"))
    half, steps = GAUGE_WINDOW // 2, []
    for i, (at_s, _) in enumerate(read):
        near = [g for _, g in read[max(0, i - half):i + half + 1]]
        if not steps or at_s > steps[-1][0]:
            steps.append((at_s, statistics.median(near) / run_gauge_s))
    return tuple(steps)


def _table(records: list[dict], result: Any, labels: list[str], warmup: int
           ) -> pd.DataFrame:
    """One row per request: arrival, and its measured and predicted start, finish,
    latency and choice (the rate the master read at its start beside)."""
    measured = pd.DataFrame(records).sort_values("request").reset_index(drop=True)
    predicted = sorted(result.requests, key=lambda r: r.index)
    return pd.DataFrame({
        "request": measured["request"], "arrival_s": measured["arrival_s"],
        "warmup": measured["request"] < warmup,
        "bandwidth_mbps": measured["bandwidth_mbps"],
        "measured_start_s": measured["start_s"], "measured_finish_s": measured["finish_s"],
        "measured_latency_s": measured["finish_s"] - measured["arrival_s"],
        "measured_choice": [labels[i] for i in measured["choice"]],
        "predicted_start_s": [r.start_s for r in predicted],
        "predicted_finish_s": [r.finish_s for r in predicted],
        "predicted_latency_s": [r.finish_s - r.arrival_s for r in predicted],
        "predicted_choice": [r.choice for r in predicted],
        "gauge_reading_s": measured["gauge_s"]})  # the master's last before the request


def window_table(requests: pd.DataFrame, window: int) -> pd.DataFrame:
    """The requests after the warm-up in windows of ``window`` (in arrival order; a
    last shorter one kept if it has half as many): each one's measured and predicted
    median latency, the error, and how many of its requests got the same choice."""
    kept = requests[~requests["warmup"]].sort_values("request").reset_index(drop=True)
    rows = []
    for start in range(0, len(kept), window):
        part = kept.iloc[start:start + window]
        if len(part) < max(1, window // 2):
            break
        measured_s = float(np.median(part["measured_latency_s"]))
        predicted_s = float(np.median(part["predicted_latency_s"]))
        rows.append({"first_request": int(part["request"].iloc[0]), "requests": len(part),
                     "measured_median_s": measured_s, "predicted_median_s": predicted_s,
                     "error_pct": error_pct(predicted_s, measured_s),
                     "choices_agree": int((part["measured_choice"]
                                           == part["predicted_choice"]).sum())})
    return pd.DataFrame(rows)


def dynamic_lines(requests: pd.DataFrame, windows: pd.DataFrame) -> list[str]:
    """The figures the issue's acceptance reads: windows within WINDOW_LIMIT_PCT, choices
    agreeing, and the CPU other machines took."""
    err = windows["error_pct"]
    within = int((err.abs() <= WINDOW_LIMIT_PCT).sum())
    agree, total = int(windows["choices_agree"].sum()), int(windows["requests"].sum())
    kept = requests[~requests["warmup"]]
    split = {name: int((kept[f"{name}_choice"] != "single").sum())
             for name in ("measured", "predicted")}
    return [f"medians of {int(windows['requests'].max())} requests: {within} of {len(err)} "
            f"windows within {WINDOW_LIMIT_PCT:g} % (mean |error| {err.abs().mean():.1f} %, "
            f"mean signed {err.mean():+.1f} %)",
            f"choices agree on {agree} of {total} requests ({100 * agree / total:.0f} %); "
            f"split: {split['measured']} measured, {split['predicted']} predicted",
            f"other machines took at most {requests['stolen_cpu_pct'].max():.2f} % of the CPU"]
