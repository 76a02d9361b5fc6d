"""Seeded draws from the variability of devices and links (``sim/variability.py``): what
one sampled inference's world is, and the draws of n of them at once.

Common random numbers: every draw comes from a stream named by the seed, what it draws
(a device's slow factors, its fast factors, the messages' extra delays) and the device,
and inference i takes the i-th draws of each stream. So two configurations replayed with
one seed see the same slow factor on the same device in the same inference, and the
same fast factors and extra delays where their programs have as many steps and messages:
a difference between them is the configurations', not the dice's. On a shared link with
frame errors, each copy of a message draws its frames' MAC retries (``sim/mac_retries.py``)
from a stream of its own, named by the message's key and the copy's (first) receiver.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prismsim.sim.mac_retries import MacRetries
from prismsim.sim.ops import Op, compute_steps, device_ops, varied_ops
from prismsim.sim.specs import DeviceSpec, LinkSpec
from prismsim.sim.variability import lognormal_sigma, quantile_draws
from prismsim.workload import Workload

# what a stream draws (part of its name)
STREAMS = {"slow": 1, "fast": 2, "delay": 3, "retry": 4}
Retries = tuple[np.ndarray, np.ndarray]  # a copy's [hops] retransmissions, backoff slots


def stream(seed: int, what: str, *index: int) -> np.random.Generator:
    """The generator of one stream: ``what`` it draws, for which device (``index``; 0
    if none), or which message and receiver."""
    return np.random.default_rng([seed, STREAMS[what], *(index or (0,))])


@dataclass(frozen=True)
class Draw:
    """One sampled inference's world: each device's factor on each of its compute tasks
    (program order; None: its mean times) and each message's extra one-way delay in
    seconds (by message id; None: none)."""

    factors: tuple[np.ndarray | None, ...]
    extra_delay_s: np.ndarray | None = None
    # frame errors: each copy's row of the two [copies, hops] arrays, by (message id,
    # receiver), and the arrays (retransmitted frames, extra backoff slots); None: none
    retry_rows: dict[tuple[int, int], int] | None = None
    retries_drawn: Retries | None = None

    @property
    def varies(self) -> bool:
        """Whether this world can differ from the mean times: a device's factors, the
        messages' extra delays or their MAC retries drawn."""
        return any(f is not None for f in self.factors) or self.extra_delay_s is not None \
            or self.retries_drawn is not None

    def ops(self, wl: Workload, device: int, spec: DeviceSpec, merge: bool) -> list[Op]:
        """The device's operations in this world."""
        factors = self.factors[device]
        if factors is None:
            return device_ops(wl, device, spec, merge)
        return varied_ops(wl, device, spec, merge, factors)

    def delay_s(self, key: int) -> float:
        """The extra one-way delay of message ``key`` (0 without link variability)."""
        return 0.0 if self.extra_delay_s is None else float(self.extra_delay_s[key])

    def retries(self, key: int, dst: int, frames: int, hops: int) -> Retries:
        """The [hops] retransmissions and extra backoff slots of message ``key``'s copy
        to ``dst`` (drawn with the world: ``frames`` and ``hops`` are the link's)."""
        if self.retry_rows is None or self.retries_drawn is None:
            raise ValueError("this world drew no MAC retries (its link has no frame errors)")
        row = self.retry_rows[(key, dst)]
        return self.retries_drawn[0][row], self.retries_drawn[1][row]


def _device_factors(spec: DeviceSpec, steps: int, n: int, seed: int, device: int
                    ) -> np.ndarray | None:
    """[n, steps] factors of one device's compute tasks in n inferences (None: it
    does not vary): its slow factor (one an inference) times each step's fast one."""
    v = spec.variability
    if v is None or not v.varies or steps == 0:
        return None
    slow = quantile_draws(v.slow, stream(seed, "slow", device).random(n))  # [n]
    if v.fast_cv == 0:
        return np.repeat(slow[:, None], steps, axis=1)  # [n, steps]
    sigma = lognormal_sigma(v.fast_cv)
    fast = stream(seed, "fast", device).lognormal(-sigma * sigma / 2, sigma, (n, steps))
    return slow[:, None] * fast  # [n, steps]


def _extra_delays_s(link: LinkSpec, messages: int, n: int, seed: int) -> np.ndarray | None:
    """[n, messages] extra one-way delays in seconds (None: the link adds none)."""
    v = link.variability
    if v is None or not v.varies or messages == 0:
        return None
    return quantile_draws(v.delay_us, stream(seed, "delay").random((n, messages))) * 1e-6


def _retries(wl: Workload, link: LinkSpec, n: int, seed: int
             ) -> tuple[dict[tuple[int, int], int], np.ndarray, np.ndarray] | None:
    """Rows by (message, receiver) and the [n, copies, hops] retransmissions and extra
    backoff slots of every possible copy in n inferences (None: no frame errors)."""
    mac = MacRetries.of(link)
    if mac is None:
        return None
    hops = 2 if link.relay else 1
    rows = {(m.id, d): i for i, (m, d) in enumerate(
        (m, d) for m in wl.messages for d in m.dst)}
    retries, slots = np.empty((n, len(rows), hops)), np.empty((n, len(rows), hops))
    for m in wl.messages:
        frames = mac.frames(m.payload_bytes + link.header_bytes)
        for d in m.dst:
            row = rows[(m.id, d)]
            retries[:, row], slots[:, row] = mac.draw(stream(seed, "retry", m.id, d),
                                                      frames, n, hops)
    return rows, retries, slots


def draws(wl: Workload, specs: Sequence[DeviceSpec], link: LinkSpec, n: int, seed: int
          ) -> list[Draw]:
    """The worlds of n inferences of ``wl`` on ``specs`` over ``link``."""
    per_device = [_device_factors(spec, compute_steps(wl, p), n, seed, p)
                  for p, spec in enumerate(specs)]
    delays = _extra_delays_s(link, len(wl.messages), n, seed)
    mac = _retries(wl, link, n, seed)
    return [Draw(tuple(None if f is None else f[i] for f in per_device),
                 None if delays is None else delays[i],
                 None if mac is None else mac[0],
                 None if mac is None else (mac[1][i], mac[2][i])) for i in range(n)]


CHUNK = 4096  # draws made at a time by a stream of a serving run


class _Stream:
    """One stream's values in the order they are taken (made CHUNK at a time)."""

    def __init__(self, rng: np.random.Generator, normal: bool):
        self.rng, self.normal = rng, normal
        self.values, self.taken = np.empty(0), 0

    def take(self, n: int) -> np.ndarray:
        while self.taken + n > len(self.values):
            more = self.rng.standard_normal(CHUNK) if self.normal else self.rng.random(CHUNK)
            self.values = np.concatenate([self.values[self.taken:], more])
            self.taken = 0
        out = self.values[self.taken:self.taken + n]
        self.taken += n
        return out


class Streams:
    """Draws made as a serving run goes: each device's parts in the order it is given
    them (its k-th part takes the k-th draws of its streams, whatever the configuration:
    common random numbers), each message's extra delay by its running key. A device's
    slow factor follows its variability's correlation time: the normal score of the
    factor is an AR(1) process in time, ``exp(-gap / correlation)`` from one part to the
    next (independent parts when the correlation time is 0)."""

    def __init__(self, specs: Sequence[DeviceSpec], link: LinkSpec, seed: int):
        self.specs, self.link, self.seed = specs, link, seed
        self.mac = MacRetries.of(link)
        self._streams: dict[tuple[str, int], _Stream] = {}
        self._score: dict[int, tuple[float, float]] = {}  # device -> (score, at_s)
        self._delays_s: list[np.ndarray] = []  # by running key, CHUNK of them an array
        # what the innermost calls read, worked out once: each device's variability
        # (None: it does not vary) and whether the link's delay varies
        self._speeds = [speed_of(s) for s in specs]
        self._delay_varies = link.variability is not None and link.variability.varies

    def _stream(self, what: str, device: int, normal: bool) -> _Stream:
        key = (what, device)
        if key not in self._streams:
            self._streams[key] = _Stream(stream(self.seed, what, device), normal)
        return self._streams[key]

    def take(self, what: str, device: int, n: int) -> np.ndarray:
        """The next n values of a stream (``what``: slow or fast, standard normal; delay,
        uniform), as the calls below would take them one part or chunk at a time."""
        return self._stream(what, device, what != "delay").take(n)

    def part_factors(self, device: int, steps: int, at_s: float) -> np.ndarray | None:
        """The factors of a part of ``steps`` compute tasks device ``device`` is given at
        ``at_s`` (None: the device does not vary)."""
        speed = self._speeds[device]
        if speed is None or steps == 0:
            return None
        qs, factors, correlation_s, sigma = speed
        innovation = float(self.take("slow", device, 1)[0])
        score, last_s = self._score.get(device, (innovation, at_s))
        keep = math.exp(-(at_s - last_s) / correlation_s) \
            if correlation_s > 0 and device in self._score else 0.0
        score = keep * score + math.sqrt(1 - keep * keep) * innovation
        self._score[device] = (score, at_s)
        slow = float(np.interp(np.array([_normal_cdf(score)]), qs, factors)[0])
        if sigma == 0:
            return np.full(steps, slow)
        return slow * np.exp(self.take("fast", device, steps) * sigma
                             - sigma * sigma / 2)

    def delay_s(self, key: int) -> float:
        """The extra one-way delay of the message with running key ``key``."""
        if not self._delay_varies:
            return 0.0
        chunk, delays = key // CHUNK, self._delays_s
        while chunk >= len(delays):  # key k takes the stream's k-th draw
            v = self.link.variability
            assert v is not None
            more = self.take("delay", 0, CHUNK)
            delays.append(quantile_draws(v.delay_us, more) * 1e-6)
        return float(delays[chunk][key - chunk * CHUNK])

    def retries(self, key: int, dst: int, frames: int, hops: int) -> Retries:
        """The [hops] retransmissions and extra backoff slots of the copy of the message
        with running key ``key`` to ``dst``, of ``frames`` frames: the first draws of its
        own stream."""
        if self.mac is None:
            raise ValueError("the link has no frame errors: no MAC retries to draw")
        retries, slots = self.mac.draw(stream(self.seed, "retry", key, dst), frames, 1, hops)
        return retries[0], slots[0]


def speed_of(spec: DeviceSpec) -> tuple[tuple[float, ...], tuple[float, ...], float, float
                                    ] | None:
    """A device's variability as ``Streams.part_factors`` reads it (None: it does not
    vary): the slow factor's quantiles and values, its correlation time, the fast
    factor's lognormal sigma (0: none)."""
    v = spec.variability
    if v is None or not v.varies:
        return None
    qs, factors = zip(*v.slow, strict=True)
    sigma = lognormal_sigma(v.fast_cv) if v.fast_cv else 0.0
    return qs, factors, v.slow_correlation_s, sigma


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
