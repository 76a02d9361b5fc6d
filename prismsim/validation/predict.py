"""Held-out prediction of a testbed point (``prismsim validate --predict-only``): nothing
of the predicted strategy is ever timed. What the prediction is made of, all measured
without running it:

- compute: the host's operator table (``profile-device``: matrix products over a grid of
  sizes, element-wise kinds, the in-sequence and convolution factors of a generic probe
  stack), scaled to the host's speed of the moment by the gauge the master reads each
  round (a small generic probe stack, ``gauge.py``);
- the host: the P device processes share its cores (``sim/host.py``: processor sharing,
  the co-run factors of the profile, each GLOO message's CPU time from the testbed's own
  ping-pong, and the CPU the shaped network itself takes per byte, read from the whole
  host during the ping-pong's bulk stream, what a process's first step after a wait
  pays, from the profile's probe stack, ``wake.py``, and how much later a message
  arrives after its sender computed with every core busy, from the ping-pong's exchanges
  after a busy loop, ``busy_exchange.py``);
- the network: the rate the testbed was set to, and what a GLOO ping-pong in it measured
  (latency, each message size's extra delay, GLOO's rendezvous).

The same host and link with each compute step's own timed seconds instead of the
operator table (``timed_steps``) is the validation's "simulated" column: it tells the
compute model's share of the error from the rest's.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import replace
from typing import Any

from prismsim.cost.op_table import OperatorTable
from prismsim.executors.trace_cache import WorkloadCache
from prismsim.profiling.gauge import GAUGE_NAME
from prismsim.profiling.host_profile import HostProfile
from prismsim.profiling.message_costs import MessageCosts, fit_message_cost
from prismsim.sim import simulate
from prismsim.sim.specs import DeviceSpec, HostSpec, LinkSpec
from prismsim.sim.tokens import token_times
from prismsim.testbed.cpu_quota import PERIOD_US
from prismsim.testbed.network import GOODPUT
from prismsim.workload import Workload

SMALL_BYTES = 4096  # ping-pong messages this small cost their fixed part alone


class PredictError(ValueError):
    """A profile that cannot back a held-out prediction."""


def operator_table(profile: HostProfile) -> OperatorTable:
    """The profile's operator table; it must carry the gauge it was measured against."""
    table = profile.operators
    if table is None:
        raise PredictError("the profile has no operator table: measure it again with "
                           "`prismsim profile-device`")
    if table.reference_s is None:
        raise PredictError("the profile's operator table was not gauged (an older "
                           "profile-device): measure it again")
    return table


def require_current_gauge(profile: HostProfile) -> None:
    """A profile for a new testbed run: its table gauged by the reference the runs read
    (a table gauged otherwise puts every step at the wrong speed)."""
    table = operator_table(profile)
    if table.gauge != GAUGE_NAME:
        raise PredictError(f"the profile's operator table was gauged by "
                           f"{table.gauge or 'an older reference'}, not by today's "
                           f"({GAUGE_NAME}): measure it again with `prismsim profile-device`")


def round_gauge_s(records: list[dict]) -> float:
    """The median of the master's gauge readings over the timed rounds."""
    readings = [r["gauge_s"] for r in records if r.get("gauge_s")]
    if not readings:
        raise PredictError("the testbed run recorded no gauge readings")
    return statistics.median(readings)


def message_fixed_s(profile: HostProfile, costs: MessageCosts) -> float:
    """CPU seconds of one message at one end, fixed part: as the testbed's ping-pong ran
    it through the real runs' runtime (driver loop, GLOO transport), or, where it did
    not, its plain small messages plus the runtime's overhead the profile measured on
    loopback."""
    if costs.runtime_cpu_s is not None:
        return costs.runtime_cpu_s
    plain_s = statistics.median(v for k, v in costs.cpu_s.items() if k <= SMALL_BYTES)
    return plain_s + profile.runtime_overhead_us * 1e-6


def host_spec(profile: HostProfile, costs: MessageCosts,
              cpu_share: dict[int, float] | None = None) -> HostSpec:
    """This host: its cores, the profile's co-run factors (never above 1: a process is
    not faster for having company; a measurement saying so is noise), the CPU one GLOO
    message costs an end (fixed: ``message_fixed_s``; per byte: the ping-pong's bulk
    stream, or a fit over its sizes where it has none), what the host spends beyond
    the processes per byte on the shaped network (the stream), and how much later a
    message arrives after a busy stretch (the exchanges after a busy loop);
    ``cpu_share``: the devices whose process runs under the testbed's CPU quota, and its
    share of one core (in the testbed's periods)."""
    fixed_s = message_fixed_s(profile, costs)
    per_byte_s = costs.stream_cpu_s_per_byte
    if per_byte_s is None:
        per_byte_s = fit_message_cost(costs.cpu_s)[1]
    corun = [min(1.0, c) for c in profile.corun]
    return HostSpec(cores=profile.cores or os.cpu_count() or 1, corun=corun,
                    message_cpu_us=fixed_s * 1e6,
                    message_cpu_gbytes_per_s=1e-9 / per_byte_s if per_byte_s else None,
                    network_cpu_ns_per_byte=(costs.network_cpu_s_per_byte or 0.0) * 1e9,
                    wake_us_by_idle_ms=tuple(profile.wake_us_by_idle_ms),
                    busy_send_us_by_busy_ms=tuple(costs.busy_send_us),
                    cpu_share=dict(cpu_share or {}), quota_period_s=PERIOD_US * 1e-6)


def measured_link(bandwidth_mbps: float, costs: MessageCosts) -> LinkSpec:
    """The testbed's link as a user knows it (tbf's rate less TCP/IP framing) with what
    the ping-pong measured of it: the latency is half a small late receive's time (GLOO's
    notification one way, the data the other), and each size's extra delay of the data
    is what its late receive took beyond two latencies and its bytes at the rate (TCP's
    window and acknowledgements: milliseconds at 10 ms for 16-64 KB, nothing for the
    largest); between the measured sizes it is interpolated. The bulk stream's rate is
    not used: on this kind of host it is 0.2-0.8 of the set rate and depends on the
    window and the delay more than on the link (docs/validation.md)."""
    late = costs.rendezvous_s
    if not late:
        raise PredictError("the ping-pong has no late-receive times: run the testbed again")
    bytes_per_s = bandwidth_mbps * 1e6 * GOODPUT / 8
    latency_s = late[min(late)] / 2
    extra = tuple((size, max(0.0, late[size] - 2 * latency_s - size / bytes_per_s) * 1e6)
                  for size in sorted(late))
    return LinkSpec(name="testbed-measured", source="tbf rate; GLOO late receives measured",
                    medium="switched", bandwidth_mbps=bandwidth_mbps, goodput=GOODPUT,
                    latency_ms=latency_s * 1e3, message_delay_by_bytes=extra,
                    rendezvous=True)


def nominal_link(bandwidth_mbps: float, latency_ms: float) -> LinkSpec:
    """The testbed's link as it was set, nothing measured: tbf's rate less TCP/IP
    framing, the set one-way delay, GLOO's rendezvous."""
    return LinkSpec(name="testbed-nominal", source="tbf rate, TCP/IPv4 framing, set delay",
                    medium="switched", bandwidth_mbps=bandwidth_mbps, goodput=GOODPUT,
                    latency_ms=latency_ms, rendezvous=True)


def table_device(table: OperatorTable, gauge_s: float, gflops: float) -> DeviceSpec:
    """The host as its operator table at the speed the gauge read (``gflops``: the rate
    of a step traced without its operators, none in practice)."""
    return DeviceSpec(name="host-operators", source="operator table at the gauged speed",
                      peak_gflops=gflops, efficiency=1.0, operators=table.at_speed(gauge_s))


def timed_steps(wl: Workload, seconds: list[list[float]], speed: float
                ) -> tuple[Workload, DeviceSpec]:
    """``wl`` whose compute steps take their timed ``seconds`` times ``speed`` (the
    gauge during the run over the gauge when they were timed), and the device that
    runs them so."""
    device = DeviceSpec(name="host-timed-steps", source="each step timed in isolation",
                        peak_gflops=1.0, efficiency=1.0)
    scaled = [[s * speed for s in dev] for dev in seconds]
    return timed_workload(wl, scaled, device.flops_per_s), device


def timed_workload(wl: Any, seconds: list[list[float]], flops_per_s: float) -> Any:
    """A copy of ``wl`` whose compute tasks take the measured ``seconds`` on a device of
    ``flops_per_s`` (their FLOPs rescaled), so a slower device still scales them."""
    tasks = []
    for d, device_tasks in enumerate(wl.tasks):
        measured = iter(seconds[d])
        tasks.append([replace(t, flops=round(next(measured) * flops_per_s))
                      if t.kind == "compute" else t for t in device_tasks])
        if next(measured, None) is not None:
            raise ValueError(f"device {d}: more timed steps than traced compute tasks")
    return Workload(meta=wl.meta, tasks=tasks, messages=wl.messages,
                    resident_bytes=wl.resident_bytes, kv_cache_bytes=wl.kv_cache_bytes)


def workload(model: str, strategy: str, options: dict[str, Any], devices: int, batch: int,
             decode: tuple[int, int] | None = None) -> Workload:
    """The traced workload; ``decode`` (prompt tokens, tokens generated): the
    generation's."""
    if decode is None:
        return WorkloadCache().get(model, strategy, devices, batch=batch, **options)
    return WorkloadCache().get(model, strategy, devices, batch=batch, tokens=decode[0],
                               generate=decode[1], **options)


def predict_point(wl: Workload, device: DeviceSpec, host: HostSpec, link: LinkSpec
                  ) -> dict[str, Any]:
    """Latency (ms: when the master has the output, as the testbed times it) and when
    the master finishes each layer; for a generation, its last token's end instead, and
    its time to first token and per output token (ms)."""
    result = simulate(wl, device, link, record=True, host=host)
    ends: dict[int, float] = {}
    for s in result.spans:
        if s.device == 0 and s.lane == "compute" and s.layer is not None:
            ends[s.layer] = max(ends.get(s.layer, 0.0), s.end_s * 1e3)
    out: dict[str, Any] = {"ms": result.latency_s * 1e3, "layer_ms": ends}
    if wl.meta.get("generate"):  # the request ends with its last token
        times = token_times(wl, result)
        out.update(ms=times.ends_s[-1] * 1e3, ttft_ms=times.ttft_s * 1e3,
                   tpot_ms=(times.tpot_s or 0.0) * 1e3)
    return out
