"""Hardware descriptions the simulator runs on: devices and links (pydantic, SI units
inside; catalogs and scenarios write human units such as GFLOP/s, Mbit/s, ms)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from prismsim.cost.op_table import OperatorTable
from prismsim.cost.units import (
    gbytes_per_s_to_bytes_per_s,
    gflops_per_s_to_flops_per_s,
    mbps_to_bits_per_s,
    ms_to_s,
    us_to_s,
)
from prismsim.sim.link_trace import LinkTrace
from prismsim.sim.variability import LinkVariability, SpeedVariability
from prismsim.userfiles import StrictModel, renamed_key


class DeviceSpec(StrictModel):
    """One edge device. Power is per state; energy adds (P_state - P_idle) for the time
    spent in each active state on top of P_idle for the whole inference."""

    name: str = "device"
    source: str = ""  # where the numbers come from (datasheet, measurement)
    peak_gflops: PositiveFloat  # peak FLOP/s of the compute unit used, in GFLOP/s
    efficiency: float = Field(0.5, gt=0, le=1)  # achieved share of peak; 0.5 until measured
    # memory bandwidth, GB/s (bytes); set to add a roofline term. Formerly mem_bandwidth_gbps.
    mem_bandwidth_gbytes_per_s: PositiveFloat | None = Field(
        None, validation_alias=renamed_key("mem_bandwidth_gbytes_per_s", "mem_bandwidth_gbps"))
    idle_w: float = Field(0.0, ge=0)  # power doing nothing, watts
    compute_w: float = Field(0.0, ge=0)  # power while computing, watts
    tx_w: float = Field(0.0, ge=0)  # power while transmitting, watts
    rx_w: float = Field(0.0, ge=0)  # power while receiving, watts
    # GLOO on a GPU device copies each tensor to host memory before sending and back
    # after receiving; 0 / None for CPU devices, which send from host memory directly.
    staging_us: float = Field(0.0, ge=0)  # fixed cost of one copy, microseconds
    # copy bandwidth, GB/s (bytes); None: no copy. Formerly staging_gbps.
    staging_gbytes_per_s: PositiveFloat | None = Field(
        None, validation_alias=renamed_key("staging_gbytes_per_s", "staging_gbps"))
    # measured operator times (cost/op_table.py): compute steps take the time of their
    # operators at their own sizes; None: FLOPs at peak x efficiency, whatever the sizes
    operators: OperatorTable | None = None
    # how its speed moves from one request and step to the next (sim/variability.py): a
    # sampled replay draws from it; None, and the replay of mean times, ignore it
    variability: SpeedVariability | None = None
    # its memory, GiB (2^30 bytes; CPU and GPU together where they share it); None: not
    # known, so whether a configuration fits is not known either (sim/memory.py)
    memory_gib: PositiveFloat | None = None
    # what the operating system and the framework hold before any model, GiB
    runtime_gib: float = Field(0.0, ge=0)
    memory_source: str = ""  # where memory_gib and runtime_gib come from
    # peak GFLOP/s at other weight precisions (fp16, bf16, int8, int4; sim/precision.py),
    # where a source gives one; empty: every precision computes at peak_gflops
    peak_gflops_by_dtype: dict[Literal["fp16", "bf16", "int8", "int4"], PositiveFloat] = \
        Field(default_factory=dict)

    @property
    def flops_per_s(self) -> float:
        return gflops_per_s_to_flops_per_s(self.peak_gflops) * self.efficiency

    def compute_model(self) -> str:
        """How this device's compute steps are timed, in words (for the output)."""
        if self.operators is not None:
            return (f"{self.name}: shape-aware, by its operator table "
                    f"({self.operators.source})")
        return (f"{self.name}: constant efficiency, every shape at {self.efficiency:g} x "
                f"{self.peak_gflops:g} GFLOP/s (no operator table: small partitions are "
                f"flattered)")

    @property
    def mem_bytes_per_s(self) -> float | None:
        bw = self.mem_bandwidth_gbytes_per_s
        return gbytes_per_s_to_bytes_per_s(bw) if bw else None

    @property
    def stages(self) -> bool:
        """Whether messages are copied between device and host memory (GLOO on a GPU)."""
        return self.staging_gbytes_per_s is not None

    def staging_s(self, n_bytes: int) -> float:
        if self.staging_gbytes_per_s is None:
            return 0.0
        return us_to_s(self.staging_us) + n_bytes / gbytes_per_s_to_bytes_per_s(
            self.staging_gbytes_per_s)


class HostSpec(StrictModel):
    """A machine whose cores the device processes share (``sim/host.py``): all devices
    of a point run on it. Without one, each device has its own hardware."""

    name: str = "host"
    source: str = ""  # where the numbers come from (prismsim profile-device, datasheet)
    cores: PositiveInt  # cores the device processes share
    # per-process speed with k processes computing at once, over what the core share
    # alone predicts (k = 1, 2, ...; the last holds for more); []: 1 for every k
    corun: list[PositiveFloat] = Field(default_factory=list)
    # CPU time each end of a message takes (GLOO's threads, the kernel's network path):
    # a fixed part per message at each end (the sender's in the background, the
    # receiver's before its receive returns) and a part per byte at each end, spread over
    # the copy's airtime (data is handled as it flows)
    message_cpu_us: float = Field(0.0, ge=0)
    message_cpu_gbytes_per_s: PositiveFloat | None = None  # None: no per-byte part
    # CPU the host spends outside the device processes per payload byte on the network
    # (an emulated network on the same machine: veth, shaping, forwarding), spread over
    # each transmission; 0: the network costs the host nothing beyond the processes
    network_cpu_ns_per_byte: float = Field(0.0, ge=0)
    # extra CPU time of a process's first compute step after it was blocked for a while
    # (an idle vCPU comes back slow: clocks, caches), as [[idle ms, extra us], ...] in
    # increasing ms, linear between them and the end values beyond; (): none
    wake_us_by_idle_ms: tuple[tuple[NonNegativeFloat, NonNegativeFloat], ...] = ()
    # how much later a message's data arrives when its sender computed, since it last
    # waited, while every core was busy (GLOO's threads then find no core free: measured
    # by the group's devices exchanging in a ring after a busy loop,
    # profiling/busy_exchange.py), as
    # [[busy ms, extra us], ...] in increasing ms, linear from 0 at 0 and the last value
    # beyond; (): none
    busy_send_us_by_busy_ms: tuple[tuple[NonNegativeFloat, NonNegativeFloat], ...] = ()
    # device -> the share of one core its process may use (a CPU quota, sim/quota.py);
    # a device not listed: no limit
    cpu_share: dict[NonNegativeInt, PositiveFloat] = Field(default_factory=dict)
    # the quota's period, seconds: the process runs freely until it has used its share
    # of a period, then waits for the next (Linux's CFS); 0: a smooth cap at the share
    quota_period_s: float = Field(0.0, ge=0)
    # the host's speed over simulated time, as [[from s, time factor], ...] in increasing
    # seconds: from each moment on, its work takes that factor times its time (1.2: a
    # fifth slower; e.g. a gauge read while serving, over the one the devices' speed is
    # at); before the first, 1; (): constant
    speed_steps: tuple[tuple[NonNegativeFloat, PositiveFloat], ...] = ()

    @field_validator("wake_us_by_idle_ms", "busy_send_us_by_busy_ms", "speed_steps")
    @classmethod
    def _increasing_gaps(cls, table: tuple) -> tuple:
        if any(a[0] >= b[0] for a, b in itertools.pairwise(table)):
            raise ValueError("the times must increase")
        return table

    @property
    def message_cpu_s(self) -> float:
        """The fixed CPU seconds of one message at one end."""
        return us_to_s(self.message_cpu_us)

    def end_cpu_s(self, n_bytes: int) -> float:
        """One end's per-byte CPU seconds for ``n_bytes``."""
        return (n_bytes / gbytes_per_s_to_bytes_per_s(self.message_cpu_gbytes_per_s)
                if self.message_cpu_gbytes_per_s else 0.0)

    def transfer_cpu_s(self, n_bytes: int) -> float:
        """The host's CPU seconds while ``n_bytes`` are on the air: the receiver's
        per-byte part (the sender's is its send's) and the network's own."""
        return self.end_cpu_s(n_bytes) + n_bytes * self.network_cpu_ns_per_byte * 1e-9

    def wake_s(self, idle_s: float) -> float:
        """Extra CPU seconds of the first step after ``idle_s`` blocked."""
        if not self.wake_us_by_idle_ms or idle_s <= 0:
            return 0.0
        return _from_zero(self.wake_us_by_idle_ms, idle_s)

    def busy_send_s(self, busy_s: float) -> float:
        """Extra seconds before a message's data arrives, its sender having computed
        ``busy_s`` with every core busy since it last waited."""
        if not self.busy_send_us_by_busy_ms or busy_s <= 0:
            return 0.0
        return _from_zero(self.busy_send_us_by_busy_ms, busy_s)


def _from_zero(table: tuple[tuple[float, float], ...], seconds: float) -> float:
    """A [[ms, us], ...] table at ``seconds``: linear from 0 at 0, the last value
    beyond; seconds."""
    at_ms, extra_us = zip(*table, strict=True)
    return us_to_s(float(np.interp(seconds * 1e3, (0.0, *at_ms), (0.0, *extra_us))))


def speed_weights(specs: Sequence[DeviceSpec]) -> tuple[float, ...]:
    """Relative speeds of a heterogeneous set, for splits in proportion to them."""
    fastest = max(s.flops_per_s for s in specs)
    return tuple(s.flops_per_s / fastest for s in specs)


class LinkSpec(StrictModel):
    """The network joining the devices."""

    name: str = "link"
    source: str = ""
    # switched: full-duplex port per device to a switch; shared: one half-duplex channel
    # all transmissions take turns on (WiFi); mesh: independent point-to-point links
    medium: Literal["switched", "shared", "mesh"] = "switched"
    bandwidth_mbps: PositiveFloat  # the medium's rate, Mbit/s
    goodput: float = Field(1.0, gt=0, le=1)  # payload share of the rate (framing, MAC, TCP)
    latency_ms: float = Field(0.0, ge=0)  # one-way propagation and forwarding delay
    per_message_us: float = Field(0.0, ge=0)  # fixed protocol cost of each message
    # extra one-way delay of a message's data that does not occupy the medium (TCP window
    # round trips of a bulk message, as a GLOO ping-pong measures them); not charged to
    # a rendezvous handshake
    message_delay_us: float = Field(0.0, ge=0)
    # the same delay by payload size, as measured: [[bytes, us], ...] in increasing bytes,
    # linear between them and the end values beyond; replaces message_delay_us when given
    message_delay_by_bytes: tuple[tuple[PositiveInt, NonNegativeFloat], ...] | None = None
    header_bytes: int = Field(0, ge=0)  # bytes added to each message
    broadcast: bool = False  # a message to every other device is transmitted once
    broadcast_mbps: PositiveFloat | None = None  # shared medium broadcast rate (None: same)
    relay: bool = False  # shared medium through an access point: every frame crosses twice
    # GLOO-style rendezvous: a message's data leaves only once the receiver has posted its
    # receive and told the sender (one latency), so an early send waits for a late receive
    rendezvous: bool = False
    # how each message's one-way delay moves (sim/variability.py): a sampled replay draws
    # from it; None, and the replay of mean times, ignore it
    variability: LinkVariability | None = None
    # its bandwidth (and latency, loss) over simulated time (sim/link_trace.py): the
    # replay's transmissions go at the trace's rate of each moment; None: the nominal one
    trace: LinkTrace | None = None
    # frame errors and MAC retries (sim/mac_retries.py), shared media only (a switched or
    # mesh link retransmits nothing at the MAC: refused there). Share of a frame's
    # transmissions lost, in [0, 1); 0 (the default): none, airtimes as without them
    frame_error_rate: float = Field(0.0, ge=0, lt=1)
    # size of the unit that is lost and retried with a backoff of its own, bytes;
    # 1500 (the default): an Ethernet-sized MPDU (no aggregation). With A-MPDU, an
    # aggregate lost whole (its frame_error_rate then the share of aggregates lost)
    frame_bytes: PositiveInt = 1500
    # retries of a frame before the MAC drops it; 7 (the default): dot11ShortRetryLimit's
    # default (802.11-2020 Annex C). A dropped frame is re-sent at once by the transport,
    # the backoff starting over (no retransmission timeout is modelled)
    retry_limit: NonNegativeInt = 7
    # binary exponential backoff: after the k-th failure in a row the window is
    # min((cw_min + 1) * 2^k - 1, cw_max) slots of slot_us; the defaults 15, 1023 and
    # 9 us are aCWmin, aCWmax and aSlotTime of the OFDM PHY (802.11-2020 Table 17-21;
    # 802.11n/ac/ax at 5 GHz keep them)
    cw_min: PositiveInt = 15
    cw_max: PositiveInt = 1023
    slot_us: PositiveFloat = 9.0

    @model_validator(mode="after")
    def _mac_retries(self) -> LinkSpec:
        if self.frame_error_rate > 0 and self.medium != "shared":
            raise ValueError(f"frame_error_rate: frame errors and MAC retries are modelled "
                             f"on shared media only, not {self.medium}")
        if self.cw_max < self.cw_min:
            raise ValueError(f"cw_max: {self.cw_max} is below cw_min {self.cw_min}")
        return self

    @field_validator("message_delay_by_bytes")
    @classmethod
    def _increasing(cls, table: tuple | None) -> tuple | None:
        if table is not None and any(a[0] >= b[0] for a, b in itertools.pairwise(table)):
            raise ValueError("sizes must increase")
        return table

    @property
    def bits_per_s(self) -> float:
        return mbps_to_bits_per_s(self.bandwidth_mbps) * self.goodput

    @property
    def broadcast_bits_per_s(self) -> float:
        if self.broadcast_mbps is None:
            return self.bits_per_s
        return mbps_to_bits_per_s(self.broadcast_mbps) * self.goodput

    # the same values in seconds, as the simulator uses them
    latency_s = property(lambda self: ms_to_s(self.latency_ms))
    per_message_s = property(lambda self: us_to_s(self.per_message_us))
    message_delay_s = property(lambda self: us_to_s(self.message_delay_us))

    def data_delay_s(self, payload_bytes: int) -> float:
        """One-way time of a message's data after its transmission ends."""
        if not self.message_delay_by_bytes:
            return self.latency_s + self.message_delay_s
        sizes, delays_us = zip(*self.message_delay_by_bytes, strict=True)
        return self.latency_s + us_to_s(float(np.interp(payload_bytes, sizes, delays_us)))
