"""The heap replay's inner loop compiled with numba (``serve/compiled.py`` packs its
inputs and reads its outputs back). Every function here is ``serve/heap.py``'s, with the
same arithmetic in the same order, on arrays instead of objects: a request's part on a
device is (device, request), its messages are indexed by (request slot, message id,
receiver's place in its group), time stays on one heap of (time, order, device).

Kept to the plainest open loop: fixed groups, one request a batch, one shared channel
with no frame errors and no link trace; devices' speeds and the link's delays drawn as
``sim/draws.py``'s ``Streams`` draws them (inputs made beforehand where they do not
depend on time; the slow factor's AR(1) step here, at the moment a part is handed).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from prismsim.serve.compiled_fields import SLOTS, Kernel
from prismsim.serve.compiled_heap import interp, pop, schedule

COMPUTE, SEND, POST, RECEIVE = 0, 1, 2, 3  # operation kinds
WAITING, AT_SEND, DONE = 0, 1, 2  # where a device's operations stop (run_ops)

ADVANCE, START = 0, 1  # frames: a device going on; a group's devices begun in turn


# the open loop


@njit(cache=True)
def serve_all(k: Kernel, arrivals_s: np.ndarray) -> tuple[int, float, bool]:
    """Serve requests arriving at ``arrivals_s``: the bytes on the air, the channel's
    busy seconds and whether the mail's slots overflowed (the rest is in k's arrays)."""
    run(k, arrivals_s)
    return k.on_air, k.busy_s, k.overflow


@njit(cache=True)
def run(k: Kernel, arrivals_s: np.ndarray) -> None:
    at = 0.0
    for i in range(arrivals_s.shape[0]):
        due = arrivals_s[i]
        while k.h_n > 0 and k.h_t[0] < due:
            drive(k, ADVANCE, pop(k))
            if k.overflow:
                return
        if due > at:
            at = at + (due - at)
        k.now = at
        admit(k, i, at)
        if k.overflow:
            return
    while k.h_n > 0 and not k.overflow:
        drive(k, ADVANCE, pop(k))


@njit(cache=True)
def push(k: Kernel, kind: int, a: int) -> None:
    if k.f_n == k.f_kind.shape[0]:
        k.overflow = True
        return
    k.f_kind[k.f_n], k.f_a[k.f_n], k.f_i[k.f_n] = kind, a, 0
    k.f_n += 1


@njit(cache=True)
def drive(k: Kernel, kind: int, a: int) -> None:
    """What the Python replay does by calls that nest (a device's part ends, so it
    begins its next, or its group's master takes the next request and each free
    device begins its part, each going as far as it can), depth first, by frames."""
    push(k, kind, a)
    while k.f_n > 0 and not k.overflow:
        top = k.f_n - 1
        if k.f_kind[top] == START:
            i, g0 = k.f_i[top], k.f_a[top] * k.n
            if i == k.n:
                k.f_n -= 1
                continue
            k.f_i[top] += 1
            if k.cur[g0 + i] < 0:
                begin(k, g0 + i)
                push(k, ADVANCE, g0 + i)
            continue
        d = k.f_a[top]
        k.f_n -= 1
        if advance(k, d):
            after_end(k, d)


@njit(cache=True)
def after_end(k: Kernel, d: int) -> None:
    """Device d's part ended: it begins its next, or its master starts a request."""
    g = d // k.n
    if k.todo_tail[d] > k.todo_head[d]:
        begin(k, d)
        push(k, ADVANCE, d)
    elif d == g * k.n and k.q_tail[g] > k.q_head[g]:
        start_job(k, g)
        push(k, START, g)


@njit(cache=True)
def admit(k: Kernel, r: int, at: float) -> None:
    k.arr_s[r] = at
    g = dispatch(k)
    k.group[r] = g
    if k.limit >= 0 and k.q_tail[g] - k.q_head[g] >= k.limit:
        k.dropped[r] = True
        return
    k.outstanding[g] += 1
    k.queue[g, k.q_tail[g]] = r
    k.q_tail[g] += 1
    if k.cur[g * k.n] < 0:  # the master is free: it takes it
        start_job(k, g)
        drive(k, START, g)


@njit(cache=True)
def dispatch(k: Kernel) -> int:
    if k.shortest:
        best = 0
        for g in range(1, k.groups):
            if k.outstanding[g] < k.outstanding[best]:
                best = g
        return best
    g = k.turn
    k.turn = (k.turn + 1) % k.groups
    return g

# requests and parts


@njit(cache=True)
def start_job(k: Kernel, g: int) -> None:
    r = k.queue[g, k.q_head[g]]
    k.q_head[g] += 1
    k.start_s[r], k.left[r], k.base[r] = k.now, k.n, k.next_key
    k.next_key += k.n_msgs
    slot = k.started % SLOTS
    k.started += 1
    if k.in_slot[slot] >= 0 and k.left[k.in_slot[slot]] > 0:
        k.overflow = True  # too many requests in flight for the mail's slots
        return
    k.slot_of[r], k.in_slot[slot] = slot, r
    k.arrival[slot, :, :] = np.nan
    k.waiter[slot, :, :] = -1
    g0 = g * k.n
    for i in range(k.n):
        p = i + 1 if i + 1 < k.n else 0  # drawn in the SimPy replay's order
        hand(k, g0 + p, r)


@njit(cache=True)
def hand(k: Kernel, d: int, r: int) -> None:
    """Device d is given its part of request r: its slow factor drawn now."""
    at = k.todo_tail[d]
    if at - k.todo_head[d] >= SLOTS:
        k.overflow = True
        return
    k.todo[d, at % SLOTS], k.part_k[d, at % SLOTS] = r, k.taken[d]
    k.slow[d, at % SLOTS] = slow_factor(k, d) if k.varies[d] else 1.0
    k.todo_tail[d] += 1


@njit(cache=True)
def slow_factor(k: Kernel, d: int) -> float:
    """``Streams.part_factors``'s slow factor: its normal score an AR(1) in time."""
    innovation = k.innov[d, k.taken[d]]
    k.taken[d] += 1
    score = innovation if not k.scored[d] else k.score[d]
    last = k.now if not k.scored[d] else k.score_at[d]
    keep = math.exp(-(k.now - last) / k.corr_s[d]) \
        if k.corr_s[d] > 0 and k.scored[d] else 0.0
    score = keep * score + math.sqrt(1 - keep * keep) * innovation
    k.score[d], k.score_at[d], k.scored[d] = score, k.now, True
    return interp(0.5 * (1.0 + math.erf(score / math.sqrt(2.0))), k.slow_q[d],
                  k.slow_v[d])


@njit(cache=True)
def begin(k: Kernel, d: int) -> None:
    """Device d, free, begins its next part now: each operation's seconds held."""
    slot = k.todo_head[d] % SLOTS
    r, part, slow = k.todo[d, slot], k.part_k[d, slot], k.slow[d, slot]
    k.todo_head[d] += 1
    p = d % k.n
    k.held[d, :] = 0.0
    if k.varies[d]:
        for j in range(k.n_steps[p]):
            factor = slow if k.sigma[d] == 0 else slow * k.fast[
                d, part * k.n_steps[p] + j]
            k.held[d, k.owner[p, j]] += k.step_s[d, j] * factor
    else:
        for i in range(k.n_ops[p]):
            k.held[d, i] = k.mean_s[d, i]
    k.cur[d], k.pc[d], k.t[d] = r, 0, k.now
    k.before_s[d], k.staged[d] = k.compute_s[d], False


@njit(cache=True)
def end(k: Kernel, d: int) -> None:
    """Device d ran the last operation of its part, now."""
    r, g = k.cur[d], d // k.n
    k.active_j[r] += k.w_compute[d] * (k.compute_s[d] - k.before_s[d])
    k.cur[d] = -1
    k.done_s[d] = k.now
    k.left[r] -= 1
    if k.left[r] == 0:
        k.energy_j[r] = k.active_j[r] / 1
    if d == g * k.n + k.out_p or (k.out_p < 0 and k.left[r] == 0):
        k.finish_s[r] = k.now
        k.outstanding[g] -= 1

# one device's operations


@njit(cache=True)
def run_ops(k: Kernel, d: int, now: float) -> int:
    """Device d's computes and receives from where it stopped: WAITING (a receive
    waits for a message not yet sent), AT_SEND (a send staged, not handed over), or
    DONE (its part's operations all run)."""
    p = d % k.n
    while k.pc[d] < k.n_ops[p]:
        i, kind = k.pc[d], k.kind[p, k.pc[d]]
        if kind == COMPUTE:
            k.compute_s[d] += k.held[d, i]
            k.t[d] = k.t[d] + k.held[d, i]
        elif kind == RECEIVE:
            if not receive(k, d, i):
                return WAITING
        elif kind == SEND:
            if not k.staged[d] and k.stage_s[d, i] != 0.0:
                k.staging_s[d] += k.stage_s[d, i]
                k.t[d] = k.t[d] + k.stage_s[d, i]
            k.staged[d] = True
            return AT_SEND
        k.pc[d] += 1
    return DONE


@njit(cache=True)
def advance(k: Kernel, d: int) -> bool:
    """Device d goes on from where it stopped, as far as it can without the future;
    True if it ran its part's last operation now (``end`` done: the caller goes on)."""
    now = k.now
    while True:
        at = run_ops(k, d, now)
        if at == WAITING:
            return False
        if k.t[d] > now:  # the medium books in the order of handing over
            schedule(k, k.t[d], d)
            return False
        if at == DONE:
            end(k, d)
            return True
        send_now(k, d, k.msg[d % k.n, k.pc[d]], now)
        k.staged[d] = False
        k.pc[d] += 1


@njit(cache=True)
def air_j(k: Kernel, m: int, g0: int) -> float:
    receiving_j = 0.0
    for j in range(k.dst_at[m], k.dst_at[m + 1]):
        d = g0 + k.dsts[j]
        receiving_j += k.w_rx[d] * k.rx_s[d]
    s = g0 + k.src[m]
    return k.w_tx[s] * k.tx_s[s] + receiving_j


@njit(cache=True)
def send_now(k: Kernel, d: int, m: int, now: float) -> None:
    """Message m of device d's request handed to the shared channel now."""
    r, g0 = k.cur[d], d - d % k.n
    before_j = air_j(k, m, g0)
    extra = k.extra_s[k.base[r] + m]
    first, last = k.dst_at[m], k.dst_at[m + 1]
    if k.bcast[m]:
        copy(k, m, g0, first, last, now)
    else:
        for j in range(first, last):
            copy(k, m, g0, j, j + 1, now)
    for j in range(first, last):  # every copy booked, then each delivered
        deliver(k, r, m, k.dsts[j], k.got_at[j - first] + extra)
    k.active_j[r] += air_j(k, m, g0) - before_j


@njit(cache=True)
def copy(k: Kernel, m: int, g0: int, first: int, last: int, now: float) -> None:
    """One transmission of message m to the receivers dsts[first:last]; each one's
    arrival into ``got_at`` (by its place among the message's receivers)."""
    start = max(now, k.free)
    airtime = k.air_s[m]
    k.free = start + k.hops * airtime
    s = g0 + k.src[m]
    k.tx_s[s] += airtime
    k.sent[s] += k.payload[m]
    k.on_air += k.payload[m] * k.hops
    k.busy_s += k.free - start
    for j in range(first, last):
        k.rx_s[g0 + k.dsts[j]] += airtime
        k.received[g0 + k.dsts[j]] += k.payload[m]
    arrival = k.free + k.delay_s[m]
    for j in range(first, last):
        k.got_at[j - k.dst_at[m]] = arrival


@njit(cache=True)
def deliver(k: Kernel, r: int, m: int, q: int, at: float) -> None:
    """The copy of message m for place q arrives at ``at``; a receive waiting on it
    learns so."""
    slot = k.slot_of[r]
    k.arrival[slot, m, q] = at
    d = k.waiter[slot, m, q]
    if d < 0:
        return
    k.waiter[slot, m, q] = -1
    k.last_s[d] = max(k.last_s[d], at)
    k.unknown[d] -= 1
    if k.unknown[d] == 0:
        resume(k, d, k.last_s[d])


@njit(cache=True)
def receive(k: Kernel, d: int, i: int) -> bool:
    """``HeapReplay._receive``: True once its messages are in (and staged)."""
    p, start = d % k.n, k.t[d]
    if not math.isnan(k.wait_from[d]):  # resumed: every message is in by t
        start, k.wait_from[d] = k.wait_from[d], np.nan
    else:
        slot, last, unknown = k.slot_of[k.cur[d]], start, 0
        for j in range(k.recv_at[p, i], k.recv_at[p, i + 1]):
            at = k.arrival[slot, k.recv_msgs[j], p]
            if math.isnan(at):
                unknown += 1
                k.waiter[slot, k.recv_msgs[j], p] = d
            elif at > last:
                last = at
        if unknown:
            k.wait_from[d], k.unknown[d], k.last_s[d] = start, unknown, last
            return False
        if last > start:
            k.t[d] = start + (last - start)
    k.wait_s[d] += k.t[d] - start
    if k.stage_s[d, i] != 0.0:
        k.staging_s[d] += k.stage_s[d, i]
        k.t[d] = k.t[d] + k.stage_s[d, i]
    return True


@njit(cache=True)
def resume(k: Kernel, d: int, last_s: float) -> None:
    """``HeapReplay.resume``: device d goes on when the SimPy replay's would."""
    now, start = k.now, k.wait_from[d]
    if now < start:
        k.t[d] = start + (last_s - start) if last_s > start else start
    else:
        k.t[d] = now + max(0.0, last_s - now)
    if k.t[d] > now:  # all it does from here lies ahead of now: at once
        ahead(k, d)
    else:
        schedule(k, k.t[d], d)


@njit(cache=True)
def ahead(k: Kernel, d: int) -> None:
    """``advance`` of a device whose clock is past now: it computes and receives
    until a send or its part's end, which it schedules (it never sends now)."""
    if run_ops(k, d, k.now) != WAITING:
        schedule(k, k.t[d], d)
