"""Network media: when each copy of a message occupies the network, and when it arrives.

Each medium keeps, per transmitter or channel, the time it is next free; a message is
booked in first-come-first-served order at the moment the device hands it over, so its
arrival times are known then (one SimPy event per delivery, not per state change).
A copy occupies the medium for ``per_message_s + (bytes + header) * 8 / rate`` and
arrives ``latency_s`` (+ ``message_delay_s``) after its transmission ends. On a shared
medium with frame errors (``sim/mac_retries.py``) each copy takes its frames' retries
and backoff on top: their mean (the replay of mean times), or, with a sampled world
(``draw``) and the message's key, its own drawn ones.
"""

from __future__ import annotations

from collections.abc import Callable

from prismsim.cost.units import bytes_to_bits
from prismsim.sim.draws import Draw, Streams
from prismsim.sim.link_trace import TraceClock
from prismsim.sim.mac_retries import MacRetries
from prismsim.sim.specs import LinkSpec
from prismsim.workload import Message

# receives each transmission as (device, lane, label, start, end) when a timeline is kept
SpanSink = Callable[[int, str, str, float, float], None]
# told of each transmission as (receivers, payload bytes over all of them, start, end)
AirSink = Callable[[tuple[int, ...], int, float, float], None]
Delivery = tuple[int, float]  # (destination, arrival time)
PAIR_COPIES_KEPT = 16  # a pair's latest copies a notice may wait behind (the rest are long gone)


class Medium:
    """Accounting shared by every medium; subclasses book the transmissions."""

    def __init__(self, link: LinkSpec, n_devices: int, span: SpanSink | None = None,
                 draw: Draw | Streams | None = None):
        self.link, self.span = link, span
        # a sampled world, or a serving run's draws: each message's MAC retries on a
        # shared medium with frame errors (sent with its key); None: their mean
        self.draw = draw
        self.mac: MacRetries | None = None  # a shared medium's frame errors, if any
        self.latency_s = link.latency_s  # SI values read once, not per message
        self.data_delay_s: dict[int, float] = {}  # by payload bytes (link.data_delay_s)
        self._airtimes: dict[tuple[int, float], float] = {}  # (payload bytes, rate) -> s
        self.bits_per_s, self.per_message_s = link.bits_per_s, link.per_message_s
        self.broadcast_bits_per_s = link.broadcast_bits_per_s
        self.header_bytes, self.broadcasts = link.header_bytes, link.broadcast
        self.tx_s = [0.0] * n_devices
        self.rx_s = [0.0] * n_devices
        self.bytes_sent = [0] * n_devices
        self.bytes_received = [0] * n_devices
        self.bytes_on_air = 0
        self.air_s = 0.0  # sum of every transmission's time on the medium (all hops)
        self.on_air: AirSink | None = None
        self.clock = None if link.trace is None else TraceClock(link.trace, link.bandwidth_mbps)
        # (sender, receiver) -> (handed over, ends) of the copies booked between them
        self.pair_sent: dict[tuple[int, int], list[tuple[float, float]]] = {}
        self.handed_s = 0.0  # when the copies being booked were handed over

    def finish_s(self, start_s: float, airtime_s: float, backoff_s: float = 0.0) -> float:
        """When a copy that takes ``airtime_s`` at the link's nominal rate, started at
        ``start_s``, ends: at once that much later, or, under a trace, its fixed part
        (and MAC backoff) and then its bits at the trace's rate of each moment."""
        if self.clock is None:
            return start_s + airtime_s
        fixed = self.per_message_s + backoff_s
        return self.clock.finish_s(start_s + fixed, airtime_s - fixed)

    def send(self, msg: Message, now: float, key: int | None = None) -> list[Delivery]:
        """Book every copy of ``msg`` handed over at ``now``; return the deliveries.
        ``key``: the message's running key in the replay (its draws in a sampled world)."""
        raise NotImplementedError

    def notice_s(self, src: int, dst: int, now: float) -> float:
        """When a control message of no size (a rendezvous notice: a receive is posted)
        sent by ``src`` at ``now`` reaches ``dst``: one latency later, once the data
        ``src`` has already handed over for ``dst`` has gone (one connection per pair, as
        GLOO's, delivers in order: the notice waits behind that data; not behind data to
        other peers, nor behind a copy that waits for ``dst``'s own notice: that one is
        not on the connection yet)."""
        queued = [end for handed, end in self.pair_sent.get((src, dst), ()) if handed <= now]
        return max([now, *queued]) + self.latency_s

    def airtime_s(self, msg: Message, bits_per_s: float) -> float:
        """How long one copy of ``msg`` occupies the medium at ``bits_per_s`` (worked out
        once per payload size and rate)."""
        key = (msg.payload_bytes, bits_per_s)
        airtime = self._airtimes.get(key)
        if airtime is None:
            bits = bytes_to_bits(msg.payload_bytes + self.header_bytes)
            airtime = self.per_message_s + bits / bits_per_s
            if self.mac is not None:  # frame errors: their retries' mean on top
                airtime += sum(self.mac.expected_extra_s(
                    msg.payload_bytes + self.header_bytes, bits_per_s))
            self._airtimes[key] = airtime
        return airtime

    def copies(self, msg: Message) -> list[tuple[int, ...]]:
        """Destination groups sent as one transmission each."""
        if msg.broadcast and self.broadcasts:
            return [msg.dst]
        return [(d,) for d in msg.dst]

    def account(self, msg: Message, dsts: tuple[int, ...], start: float, end: float,
                airtime_s: float, hops: int = 1, rx_airtime_s: float | None = None
                ) -> list[Delivery]:
        """The sender transmits for one airtime, each receiver receives for one (its
        own, ``rx_airtime_s``, where the last hop's differs: drawn retries)."""
        self.tx_s[msg.src] += airtime_s
        self.bytes_sent[msg.src] += msg.payload_bytes
        for d in dsts:
            sent = self.pair_sent.setdefault((msg.src, d), [])
            sent.append((self.handed_s, end))
            del sent[:-PAIR_COPIES_KEPT]
        self.bytes_on_air += msg.payload_bytes * hops
        self.air_s += end - start
        rx_s = airtime_s if rx_airtime_s is None else rx_airtime_s
        for d in dsts:
            self.rx_s[d] += rx_s
            self.bytes_received[d] += msg.payload_bytes
        if self.span:
            self.span(msg.src, "tx", f"{msg.tag} -> {list(dsts)}", start, end)
        if self.on_air:
            self.on_air(dsts, msg.payload_bytes * len(dsts), start, end)
        delay = self.data_delay_s.get(msg.payload_bytes)
        if delay is None:
            delay = self.data_delay_s[msg.payload_bytes] = self.link.data_delay_s(
                msg.payload_bytes)
        arrival = end + delay
        if self.clock is not None and (latency_s := self.clock.latency_s(end)) is not None:
            arrival += latency_s - self.latency_s  # the trace's latency of that moment
        return [(d, arrival) for d in dsts]


class Switched(Medium):
    """Full-duplex ports to a switch. A copy needs the sender's uplink and the receivers'
    downlinks free at once (cut-through); unicast to k peers sends k copies one after
    the other through the uplink; a broadcast-capable switch replicates one transmission."""

    def __init__(self, link: LinkSpec, n_devices: int, span: SpanSink | None = None,
                 draw: Draw | Streams | None = None):
        super().__init__(link, n_devices, span, draw)
        self.up_free = [0.0] * n_devices
        self.down_free = [0.0] * n_devices

    def send(self, msg: Message, now: float, key: int | None = None) -> list[Delivery]:
        out, self.handed_s = [], now
        airtime = self.airtime_s(msg, self.bits_per_s)
        for dsts in self.copies(msg):
            start = max(now, self.up_free[msg.src], *(self.down_free[d] for d in dsts))
            end = self.finish_s(start, airtime)
            self.up_free[msg.src] = end
            for d in dsts:
                self.down_free[d] = end
            out += self.account(msg, dsts, start, end,
                                airtime if self.clock is None else end - start)
        return out


class Shared(Medium):
    """One half-duplex channel (WiFi): every transmission takes its turn. Through an
    access point (``relay``) each frame crosses the air twice. A broadcast is one
    transmission at the broadcast rate. With frame errors, every copy's frames are
    retried (a broadcast's as one receiver's), each hop's on its own."""

    def __init__(self, link: LinkSpec, n_devices: int, span: SpanSink | None = None,
                 draw: Draw | Streams | None = None):
        super().__init__(link, n_devices, span, draw)
        self.free = 0.0
        self.mac = MacRetries.of(link)
        self.hops = 2 if link.relay else 1
        self._costs: dict[tuple[int, float], tuple[float, float, int]] = {}  # drawn copies

    def send(self, msg: Message, now: float, key: int | None = None) -> list[Delivery]:
        out, self.handed_s = [], now
        hops = self.hops
        drawn = key is not None and self.mac is not None and self.draw is not None
        for dsts in self.copies(msg):
            rate = self.broadcast_bits_per_s if len(dsts) > 1 else self.bits_per_s
            start = max(now, self.free)
            if drawn:
                assert key is not None
                out += self._drawn_copy(msg, key, dsts, rate, start)
                continue
            airtime = self.airtime_s(msg, rate)
            if self.clock is None:
                self.free = start + hops * airtime  # sender -> (access point ->) receivers
                out += self.account(msg, dsts, start, self.free, airtime, hops)
                continue
            backoff = self._mean_backoff_s(msg)
            first = self.finish_s(start, airtime, backoff)
            self.free = first if hops == 1 else self.finish_s(first, airtime, backoff)
            out += self.account(msg, dsts, start, self.free, first - start, hops)
        return out

    def _mean_backoff_s(self, msg: Message) -> float:
        """A copy's mean MAC backoff beyond its first transmissions' (0 without frame
        errors): under a trace it takes its time whatever the rate."""
        if self.mac is None:
            return 0.0
        return self.mac.expected_backoff_s(msg.payload_bytes + self.header_bytes)

    def _drawn_copy(self, msg: Message, key: int, dsts: tuple[int, ...], rate: float,
                    start: float) -> list[Delivery]:
        """One copy with its own drawn retries on each hop, from ``start``."""
        assert self.mac is not None and self.draw is not None
        plain, frame_s, frames = self._frame_costs(msg.payload_bytes, rate)
        retries, slots = self.draw.retries(key, dsts[0], frames, self.hops)
        end, airtimes, slot_s = start, [], self.mac.slot_s
        for resent, waited in zip(retries.tolist(), slots.tolist(), strict=True):
            backoff_s = waited * slot_s
            begin, end = end, self.finish_s(end, plain + resent * frame_s + backoff_s,
                                            backoff_s)
            airtimes.append(end - begin)
        self.free = end
        return self.account(msg, dsts, start, end, airtimes[0], self.hops, airtimes[-1])

    def _frame_costs(self, payload_bytes: int, rate: float) -> tuple[float, float, int]:
        """A copy's airtime with no frame errors, its mean frame's seconds and its frames
        (worked out once per payload size and rate)."""
        costs = self._costs.get((payload_bytes, rate))
        if costs is None:
            assert self.mac is not None
            n_bytes = payload_bytes + self.header_bytes
            costs = self._costs[(payload_bytes, rate)] = (
                self.per_message_s + bytes_to_bits(n_bytes) / rate,
                self.mac.frame_s(n_bytes, rate), self.mac.frames(n_bytes))
        return costs


class Mesh(Medium):
    """Independent point-to-point links, one per ordered pair: copies to different peers
    go out in parallel."""

    def __init__(self, link: LinkSpec, n_devices: int, span: SpanSink | None = None,
                 draw: Draw | Streams | None = None):
        super().__init__(link, n_devices, span, draw)
        self.free: dict[tuple[int, int], float] = {}

    def send(self, msg: Message, now: float, key: int | None = None) -> list[Delivery]:
        out, self.handed_s = [], now
        airtime = self.airtime_s(msg, self.bits_per_s)
        for d in msg.dst:
            start = max(now, self.free.get((msg.src, d), 0.0))
            end = self.free[(msg.src, d)] = self.finish_s(start, airtime)
            out += self.account(msg, (d,), start, end,
                                airtime if self.clock is None else end - start)
        return out


MEDIA: dict[str, type[Medium]] = {"switched": Switched, "shared": Shared, "mesh": Mesh}
