"""Frame errors on a shared medium: MAC retries and binary exponential backoff
(``sim/mac_retries.py``). Airtimes worked out by hand; no frame errors leaves every
airtime as it was, to the last digit; sampled worlds against the closed form (their mean)
and the geometric law (each frame's failures); seeds and common random numbers; bad
input in one line naming the key."""

import math

import numpy as np
import pytest

from prismsim.sim import DeviceSpec, LinkSpec, mac_retries, simulate
from prismsim.sim.catalog import CatalogError, builtin_links, load_catalog
from prismsim.sim.draws import Draw, Streams, draws
from prismsim.sim.link_trace import LinkTrace
from prismsim.sim.mac_retries import MacRetries
from prismsim.sim.media import MEDIA, Shared
from prismsim.sim.replay import Replay
from prismsim.sim.variability import LinkVariability
from prismsim.workload import Message, Task, Workload

GFLOP = 10**9
CPU = DeviceSpec(peak_gflops=1.0, efficiency=1.0)  # 1 GFLOP takes 1 s


def _msg(payload_bytes: int, dst: tuple[int, ...] = (1,), msg_id: int = 0) -> Message:
    return Message(id=msg_id, src=0, dst=dst, broadcast=False, tag="m",
                   shape=(payload_bytes,), payload_bytes=payload_bytes)


def _link(**fields) -> LinkSpec:
    return LinkSpec(**{"medium": "shared", "bandwidth_mbps": 8.0, **fields})


def _arrival_s(link: LinkSpec, msg: Message, n_devices: int = 2) -> float:
    """When a copy of ``msg`` handed over at 0 on an idle medium arrives (mean times)."""
    return MEDIA[link.medium](link, n_devices).send(msg, 0.0)[0][1]


# the expected airtime of a copy, by hand

def test_a_copy_takes_its_frames_mean_retries_and_backoff():
    # 8 Mbit/s, 100 us per message, 6000 bytes: 4 frames of 1500 bytes, 48,000 bits,
    # 6.0 ms + 0.1 ms without frame errors. At p = 0.5 a frame is sent 1 / (1 - p) = 2
    # times on average: 1 retransmission each, +6.0 ms. Retry limit 1: stages 0 and 1,
    # windows 15 and min(2 x 16 - 1, 1023) = 31 slots, means W0 = 7.5, W1 = 15.5 slots;
    # attempt a waits W of stage a mod 2, so a frame's backoff beyond its first is
    # W1 (p + p^3 + ...) + W0 (p^2 + p^4 + ...) = 15.5 x 2/3 + 7.5 x 1/3 = 12.8333 slots,
    # x 4 frames x 10 us = 0.51333 ms. In all: 6.1 + 6.0 + 0.51333 = 12.61333 ms.
    link = _link(per_message_us=100, frame_error_rate=0.5, retry_limit=1, slot_us=10)
    assert _arrival_s(link, _msg(6000)) == pytest.approx(12.613333e-3, rel=1e-6)
    # through an access point the copy crosses the air twice, each crossing its own
    relayed = link.model_copy(update={"relay": True})
    assert _arrival_s(relayed, _msg(6000)) == pytest.approx(2 * 12.613333e-3, rel=1e-6)
    # the closed form's parts: 1 retransmission and 12.8333 slots a frame
    mac = MacRetries.of(link)
    assert mac is not None
    assert (mac.retries_per_frame, mac.extra_slots_per_frame) == pytest.approx((1, 77 / 6))


def test_under_a_trace_the_bits_go_at_its_rate_and_the_backoff_takes_its_slots():
    # the first test's copy over a trace at 4 Mbit/s, half the nominal rate: 0.1 ms
    # fixed, 2 x (6.0 + 6.0) ms of bits sent and sent again, 0.51333 ms of backoff
    trace = LinkTrace(times_s=(0.0,), bandwidth_mbps=(4.0,))
    link = _link(per_message_us=100, frame_error_rate=0.5, retry_limit=1, slot_us=10,
                 trace=trace)
    assert _arrival_s(link, _msg(6000)) == pytest.approx(24.613333e-3, rel=1e-6)


def test_the_802_11_defaults_at_a_tenth_of_frames_lost():
    # 1500 bytes at 100 Mbit/s: one frame, 120 us. p = 0.1: 1/9 retransmission, 13.333
    # us. Retry limit 7, windows 15, 31, 63, 127, 255, 511, 1023, 1023 (capped), means
    # W = 7.5 ... 511.5 slots: sum_s p^s W_s = 7.5 + 1.55 + 0.315 + 0.0635 + 0.01275
    # + 0.002555 + 0.0005115 + 0.00005115 = 9.44436765; over 1 - p^8 (the transport's
    # re-send after 8 failures starts again from stage 0), less the first W0:
    # 1.944367744 slots x 9 us = 17.49931 us. In all 150.83264 us.
    link = _link(bandwidth_mbps=100, frame_error_rate=0.1)
    assert _arrival_s(link, _msg(1500)) == pytest.approx(150.83264e-6, rel=1e-7)


def test_no_frame_errors_leaves_every_airtime_as_it_was():
    msg = _msg(123_457, dst=(1, 2))
    for medium in ("shared", "switched", "mesh"):
        link = LinkSpec(medium=medium, bandwidth_mbps=866.7, goodput=0.55, header_bytes=66,
                        per_message_us=37, relay=medium == "shared")
        explicit = link.model_copy(update={"frame_error_rate": 0.0, "frame_bytes": 700})
        plain_s = 37e-6 + (123_457 + 66) * 8 / (866.7e6 * 0.55)  # the formula before
        assert MEDIA[medium](explicit, 3).airtime_s(msg, link.bits_per_s) == plain_s
        assert MEDIA[medium](explicit, 3).send(msg, 0.0) == MEDIA[medium](link, 3).send(
            msg, 0.0)
    # the catalog's WiFi entries have none: their figures stand
    assert all(builtin_links()[w].frame_error_rate == 0 for w in ("wifi4", "wifi5", "wifi6"))
    assert builtin_links()["wifi5-lossy"].frame_error_rate == 0.1


def test_frame_errors_slow_a_mean_time_replay_by_the_closed_form():
    # 1 s of compute, 1 MB (667 frames of 1500 bytes) at 8 Mbit/s, 1 s of compute
    link = _link(frame_error_rate=0.2)
    mac = MacRetries.of(link)
    assert mac is not None
    resend_s, backoff_s = mac.expected_extra_s(1_000_000, link.bits_per_s)
    assert resend_s == pytest.approx(1.0 * 0.2 / 0.8)
    assert simulate(_chain(), CPU, link).latency_s == pytest.approx(
        3.0 + resend_s + backoff_s, rel=1e-12)


# sampled worlds

def test_a_one_frame_message_is_retried_with_the_frame_error_rate():
    # one uniform a frame: P(at least k retries) = p^k (geometric); 40,000 copies, the
    # share within 4 binomial standard deviations sqrt(q (1 - q) / n)
    p, n = 0.2, 40_000
    mac = MacRetries.of(_link(frame_error_rate=p))
    assert mac is not None
    retries, slots = mac.draw(np.random.default_rng(3), 1, n, 1)
    for k in (1, 2, 3):
        q = p**k
        assert (retries >= k).mean() == pytest.approx(q, abs=4 * math.sqrt(q * (1 - q) / n))
    # one retry waits the second stage's mean window, 15.5 slots; two, 15.5 + 31.5
    assert set(slots[retries == 1]) == {15.5}
    assert set(slots[retries == 2]) == {47.0}


def test_draws_made_in_chunks_are_those_made_at_once(monkeypatch):
    mac = MacRetries.of(_link(frame_error_rate=0.4))
    assert mac is not None
    at_once = mac.draw(np.random.default_rng(1), 7, 50, 2)
    monkeypatch.setattr(mac_retries, "CHUNK_VALUES", 30)  # 2 rows of 2 x 7 frames a chunk
    chunked = mac.draw(np.random.default_rng(1), 7, 50, 2)
    assert all((a == c).all() for a, c in zip(at_once, chunked, strict=True))


def test_sampled_airtimes_average_to_the_closed_form():
    # 10 frames at p = 0.3: retransmissions have mean 10 p / (1 - p) and variance
    # 10 p / (1 - p)^2 (a sum of 10 geometrics); n = 20,000 copies, 4 standard errors
    p, frames, n = 0.3, 10, 20_000
    link = _link(frame_error_rate=p)
    mac = MacRetries.of(link)
    assert mac is not None
    retries, slots = mac.draw(np.random.default_rng(11), frames, n, 2)
    mean, var = frames * p / (1 - p), frames * p / (1 - p) ** 2
    assert retries.mean() == pytest.approx(mean, abs=4 * math.sqrt(var / (2 * n)))
    # the backoff's spread from the draws themselves (its variance has no short form)
    assert slots.mean() == pytest.approx(frames * mac.extra_slots_per_frame,
                                         abs=4 * slots.std() / math.sqrt(2 * n))


def test_a_sampled_world_gives_each_copy_its_drawn_airtime():
    link = _link(frame_error_rate=0.25, relay=True)
    wl, n = _chain(), 4000
    worlds = draws(wl, [CPU, CPU], link, n, seed=5)
    assert all(w.varies for w in worlds[:3])
    ends = np.array([Shared(link, 2, None, w).send(wl.messages[0], 0.0, key=0)[0][1]
                     for w in worlds])
    mean_s = _arrival_s(link, wl.messages[0])  # both crossings at their mean
    # two crossings of 667 independent frames each; 4 standard errors
    sd_s = math.sqrt(2 * 667 * _frame_variance_s2(link, 1.0 / 667))
    assert ends.mean() == pytest.approx(mean_s, abs=4 * sd_s / math.sqrt(n))
    assert ends.std() == pytest.approx(sd_s, rel=0.1)
    # without a key (or a world) the medium charges the mean
    assert Shared(link, 2, None, worlds[0]).send(wl.messages[0], 0.0)[0][1] == mean_s


def _frame_variance_s2(link: LinkSpec, frame_s: float) -> float:
    """The variance of one frame's time beyond its first transmission, from its law:
    k failures (probability (1 - p) p^k) cost k frame times and their backoff slots."""
    mac = MacRetries.of(link)
    assert mac is not None
    k = np.arange(400)
    pmf = (1 - mac.error_rate) * mac.error_rate ** k
    extra_s = k * frame_s + mac.slots_after(k) * mac.slot_s
    return float(pmf @ extra_s**2 - (pmf @ extra_s) ** 2)


class _Keyed(Replay):
    """The replay with its medium told the world and each message's key: what
    ``sim/replay.py`` does once it hands them over (``MEDIA[...](..., draw)`` and
    ``medium.send(msg, at_s, key)``); the same replay if it already does."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.medium.draw, send, self.key = self.draw, self.medium.send, None
        self.medium.send = lambda msg, at_s, key=None: send(
            msg, at_s, self.key if key is None else key)

    def transmit(self, key: int, msg: Message, at_s: float) -> None:
        self.key = key
        super().transmit(key, msg, at_s)


def test_sampled_inferences_average_to_the_mean_time_replay():
    link = _link(frame_error_rate=0.1)
    wl, n = _chain(), 2000
    latency = np.array([_Keyed(wl, [CPU, CPU], link, False, None, w).run().latency_s
                        for w in draws(wl, [CPU, CPU], link, n, seed=2)])
    sd_s = math.sqrt(667 * _frame_variance_s2(link, 1.0 / 667))  # 667 frames, 0.0152 s
    assert latency.std() == pytest.approx(sd_s, rel=0.1)
    assert latency.mean() == pytest.approx(simulate(wl, CPU, link).latency_s,
                                           abs=4 * sd_s / math.sqrt(n))


# seeds and common random numbers

def test_the_same_seed_draws_the_same_retries_and_other_streams_stay():
    delays = LinkVariability(delay_us=((0.0, 0.0), (1.0, 1000.0)))
    lossy = _link(frame_error_rate=0.3, variability=delays)
    wl = _two_messages()
    a, b = draws(wl, [CPU] * 3, lossy, 50, seed=9), draws(wl, [CPU] * 3, lossy, 50, seed=9)
    assert [u.retries(1, 2, 0, 1)[0][0] for u in a] == [v.retries(1, 2, 0, 1)[0][0] for v in b]
    other = draws(wl, [CPU] * 3, lossy, 50, seed=10)
    assert [u.retries(1, 2, 0, 1)[0][0] for u in a] != \
        [w.retries(1, 2, 0, 1)[0][0] for w in other]
    # world i is the same however many are drawn
    few = draws(wl, [CPU] * 3, lossy, 5, seed=9)
    assert [w.retries(0, 1, 0, 1)[1][0] for w in few] == \
        [w.retries(0, 1, 0, 1)[1][0] for w in a[:5]]
    # the delays' stream is the one it was without frame errors
    clean = draws(wl, [CPU] * 3, lossy.model_copy(update={"frame_error_rate": 0.0}), 50, 9)
    assert all((u.extra_delay_s == c.extra_delay_s).all() for u, c in zip(a, clean, strict=True))
    assert clean[0].retries_drawn is None and not Draw((None,)).varies


def test_a_serving_run_draws_each_copys_retries_by_its_key():
    link = _link(frame_error_rate=0.3, relay=True)
    streams, again = Streams([CPU] * 2, link, 4), Streams([CPU] * 2, link, 4)
    draws_ = [streams.retries(k, 1, 10, 2)[0] for k in range(5000)]
    assert (draws_[7] == again.retries(7, 1, 10, 2)[0]).all()  # by key, in any order
    assert np.mean(draws_) == pytest.approx(10 * 0.3 / 0.7,
                                            abs=4 * math.sqrt(10 * 0.3 / 0.49 / 10_000))
    with pytest.raises(ValueError, match="no frame errors"):
        Streams([CPU] * 2, _link(), 4).retries(0, 1, 10, 2)


# bad input

@pytest.mark.parametrize(("entry", "message"), [
    ("frame_error_rate: 1", "links.lan.frame_error_rate: Input should be less than 1"),
    ("frame_error_rate: -0.1", "links.lan.frame_error_rate: Input should be greater than "
                               "or equal to 0"),
    ("frame_bytes: 0", "links.lan.frame_bytes: Input should be greater than 0"),
    ("cw_min: 31, cw_max: 15", "links.lan: cw_max: 15 is below cw_min 31"),
    ("frame_error_rate: 0.1, medium: switched", "links.lan: frame_error_rate: "
                                                "frame errors and MAC retries are modelled "
                                                "on shared media only, not switched"),
])
def test_bad_frame_error_settings_are_one_line_naming_the_key(tmp_path, entry, message):
    f = tmp_path / "bad.yaml"
    f.write_text(f"links:\n  lan: {{medium: shared, bandwidth_mbps: 100, {entry}}}\n")
    with pytest.raises(CatalogError) as err:
        load_catalog(f)
    assert str(err.value).startswith(f"{f}: {message}")
    assert len(str(err.value).splitlines()) == 1


# workloads

def _chain() -> Workload:
    """Device 0 computes 1 s, sends 1 MB to device 1, which computes 1 s."""
    return Workload(meta={}, messages=[_msg(1_000_000)], tasks=[
        [Task("compute", "a", GFLOP), Task("send", "m", 0, (0,))],
        [Task("recv", "r", 0, (0,)), Task("compute", "b", GFLOP)]])


def _two_messages() -> Workload:
    """Device 0 sends 3000 bytes to 1 and 2; 1 sends 1500 bytes to 2."""
    msgs = [_msg(3000, (1, 2)), Message(id=1, src=1, dst=(2,), broadcast=False, tag="n",
                                        shape=(1500,), payload_bytes=1500)]
    return Workload(meta={}, messages=msgs, tasks=[
        [Task("send", "m", 0, (0,))], [Task("recv", "r", 0, (0,)), Task("send", "n", 0, (1,))],
        [Task("recv", "s", 0, (0, 1))]])
