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
from numba.experimental import jitclass

from prismsim.serve.compiled_fields import SLOTS, SPEC

COMPUTE, SEND, POST, RECEIVE = 0, 1, 2, 3  # operation kinds
WAITING, AT_SEND, DONE = 0, 1, 2  # where a device's operations stop (run_ops)

ADVANCE, START = 0, 1  # frames: a device going on; a group's devices begun in turn


@jitclass(SPEC)
class Kernel:
    """State and steps of one serving run (fields set by ``serve/compiled.py``)."""

    def __init__(self, n: int, groups: int, n_devices: int):
        self.n, self.groups = n, groups
        self.h_t = np.empty(n_devices + 1)
        self.h_o = np.empty(n_devices + 1, np.int64)
        self.h_d = np.empty(n_devices + 1, np.int64)
        self.h_n, self.order, self.now, self.free = 0, 0, 0.0, 0.0
        self.on_air, self.busy_s, self.turn, self.next_key, self.started = 0, 0.0, 0, 0, 0
        self.overflow = False
        self.f_kind = np.empty(64, np.int64)
        self.f_a = np.empty(64, np.int64)
        self.f_i = np.empty(64, np.int64)
        self.f_n = 0

    # the heap (unique orders: the pop order is heapq's)

    def schedule(self, at_s: float, d: int) -> None:
        i = self.h_n
        self.h_n += 1
        while i > 0:
            up = (i - 1) // 2
            if self.h_t[up] < at_s or (self.h_t[up] == at_s and self.h_o[up] < self.order):
                break
            self.h_t[i], self.h_o[i], self.h_d[i] = self.h_t[up], self.h_o[up], self.h_d[up]
            i = up
        self.h_t[i], self.h_o[i], self.h_d[i] = at_s, self.order, d
        self.order += 1

    def _less(self, i: int, j: int) -> bool:
        return self.h_t[i] < self.h_t[j] or (self.h_t[i] == self.h_t[j]
                                             and self.h_o[i] < self.h_o[j])

    def pop(self) -> int:
        """The earliest entry off the heap: the clock moves to it; its device."""
        self.now, d = self.h_t[0], self.h_d[0]
        self.h_n -= 1
        last = self.h_n
        self.h_t[0], self.h_o[0], self.h_d[0] = self.h_t[last], self.h_o[last], self.h_d[last]
        i = 0
        while True:
            small, left, right = i, 2 * i + 1, 2 * i + 2
            if left < self.h_n and self._less(left, small):
                small = left
            if right < self.h_n and self._less(right, small):
                small = right
            if small == i:
                return d
            self.h_t[i], self.h_t[small] = self.h_t[small], self.h_t[i]
            self.h_o[i], self.h_o[small] = self.h_o[small], self.h_o[i]
            self.h_d[i], self.h_d[small] = self.h_d[small], self.h_d[i]
            i = small

    # the open loop

    def run(self, arrivals_s: np.ndarray) -> None:
        at = 0.0
        for i in range(arrivals_s.shape[0]):
            due = arrivals_s[i]
            while self.h_n > 0 and self.h_t[0] < due:
                self.drive(ADVANCE, self.pop())
                if self.overflow:
                    return
            if due > at:
                at = at + (due - at)
            self.now = at
            self.admit(i, at)
            if self.overflow:
                return
        while self.h_n > 0 and not self.overflow:
            self.drive(ADVANCE, self.pop())

    def push(self, kind: int, a: int) -> None:
        if self.f_n == self.f_kind.shape[0]:
            self.overflow = True
            return
        self.f_kind[self.f_n], self.f_a[self.f_n], self.f_i[self.f_n] = kind, a, 0
        self.f_n += 1

    def drive(self, kind: int, a: int) -> None:
        """What the Python replay does by calls that nest (a device's part ends, so it
        begins its next, or its group's master takes the next request and each free
        device begins its part, each going as far as it can), depth first, by frames."""
        self.push(kind, a)
        while self.f_n > 0 and not self.overflow:
            top = self.f_n - 1
            if self.f_kind[top] == START:
                i, g0 = self.f_i[top], self.f_a[top] * self.n
                if i == self.n:
                    self.f_n -= 1
                    continue
                self.f_i[top] += 1
                if self.cur[g0 + i] < 0:
                    self.begin(g0 + i)
                    self.push(ADVANCE, g0 + i)
                continue
            d = self.f_a[top]
            self.f_n -= 1
            if self.advance(d):
                self.after_end(d)

    def after_end(self, d: int) -> None:
        """Device d's part ended: it begins its next, or its master starts a request."""
        g = d // self.n
        if self.todo_tail[d] > self.todo_head[d]:
            self.begin(d)
            self.push(ADVANCE, d)
        elif d == g * self.n and self.q_tail[g] > self.q_head[g]:
            self.start_job(g)
            self.push(START, g)

    def admit(self, r: int, at: float) -> None:
        self.arr_s[r] = at
        g = self.dispatch()
        self.group[r] = g
        if self.limit >= 0 and self.q_tail[g] - self.q_head[g] >= self.limit:
            self.dropped[r] = True
            return
        self.outstanding[g] += 1
        self.queue[g, self.q_tail[g]] = r
        self.q_tail[g] += 1
        if self.cur[g * self.n] < 0:  # the master is free: it takes it
            self.start_job(g)
            self.drive(START, g)

    def dispatch(self) -> int:
        if self.shortest:
            best = 0
            for g in range(1, self.groups):
                if self.outstanding[g] < self.outstanding[best]:
                    best = g
            return best
        g = self.turn
        self.turn = (self.turn + 1) % self.groups
        return g

    # requests and parts

    def start_job(self, g: int) -> None:
        r = self.queue[g, self.q_head[g]]
        self.q_head[g] += 1
        self.start_s[r], self.left[r], self.base[r] = self.now, self.n, self.next_key
        self.next_key += self.n_msgs
        slot = self.started % SLOTS
        self.started += 1
        if self.in_slot[slot] >= 0 and self.left[self.in_slot[slot]] > 0:
            self.overflow = True  # too many requests in flight for the mail's slots
            return
        self.slot_of[r], self.in_slot[slot] = slot, r
        self.arrival[slot, :, :] = np.nan
        self.waiter[slot, :, :] = -1
        g0 = g * self.n
        for i in range(self.n):
            p = i + 1 if i + 1 < self.n else 0  # drawn in the SimPy replay's order
            self.hand(g0 + p, r)

    def hand(self, d: int, r: int) -> None:
        """Device d is given its part of request r: its slow factor drawn now."""
        k = self.todo_tail[d]
        if k - self.todo_head[d] >= SLOTS:
            self.overflow = True
            return
        self.todo[d, k % SLOTS], self.part_k[d, k % SLOTS] = r, self.taken[d]
        self.slow[d, k % SLOTS] = self.slow_factor(d) if self.varies[d] else 1.0
        self.todo_tail[d] += 1

    def slow_factor(self, d: int) -> float:
        """``Streams.part_factors``'s slow factor: its normal score an AR(1) in time."""
        innovation = self.innov[d, self.taken[d]]
        self.taken[d] += 1
        score = innovation if not self.scored[d] else self.score[d]
        last = self.now if not self.scored[d] else self.score_at[d]
        keep = math.exp(-(self.now - last) / self.corr_s[d]) \
            if self.corr_s[d] > 0 and self.scored[d] else 0.0
        score = keep * score + math.sqrt(1 - keep * keep) * innovation
        self.score[d], self.score_at[d], self.scored[d] = score, self.now, True
        return interp(0.5 * (1.0 + math.erf(score / math.sqrt(2.0))), self.slow_q[d],
                      self.slow_v[d])

    def begin(self, d: int) -> None:
        """Device d, free, begins its next part now: each operation's seconds held."""
        slot = self.todo_head[d] % SLOTS
        r, k, slow = self.todo[d, slot], self.part_k[d, slot], self.slow[d, slot]
        self.todo_head[d] += 1
        p = d % self.n
        self.held[d, :] = 0.0
        if self.varies[d]:
            for j in range(self.n_steps[p]):
                factor = slow if self.sigma[d] == 0 else slow * self.fast[
                    d, k * self.n_steps[p] + j]
                self.held[d, self.owner[p, j]] += self.step_s[d, j] * factor
        else:
            for i in range(self.n_ops[p]):
                self.held[d, i] = self.mean_s[d, i]
        self.cur[d], self.pc[d], self.t[d] = r, 0, self.now
        self.before_s[d], self.staged[d] = self.compute_s[d], False

    def end(self, d: int) -> None:
        """Device d ran the last operation of its part, now."""
        r, g = self.cur[d], d // self.n
        self.active_j[r] += self.w_compute[d] * (self.compute_s[d] - self.before_s[d])
        self.cur[d] = -1
        self.done_s[d] = self.now
        self.left[r] -= 1
        if self.left[r] == 0:
            self.energy_j[r] = self.active_j[r] / 1
        if d == g * self.n + self.out_p or (self.out_p < 0 and self.left[r] == 0):
            self.finish_s[r] = self.now
            self.outstanding[g] -= 1

    # one device's operations

    def run_ops(self, d: int, now: float) -> int:
        """Device d's computes and receives from where it stopped: WAITING (a receive
        waits for a message not yet sent), AT_SEND (a send staged, not handed over), or
        DONE (its part's operations all run)."""
        p = d % self.n
        while self.pc[d] < self.n_ops[p]:
            i, kind = self.pc[d], self.kind[p, self.pc[d]]
            if kind == COMPUTE:
                self.compute_s[d] += self.held[d, i]
                self.t[d] = self.t[d] + self.held[d, i]
            elif kind == RECEIVE:
                if not self.receive(d, i):
                    return WAITING
            elif kind == SEND:
                if not self.staged[d] and self.stage_s[d, i] != 0.0:
                    self.staging_s[d] += self.stage_s[d, i]
                    self.t[d] = self.t[d] + self.stage_s[d, i]
                self.staged[d] = True
                return AT_SEND
            self.pc[d] += 1
        return DONE

    def advance(self, d: int) -> bool:
        """Device d goes on from where it stopped, as far as it can without the future;
        True if it ran its part's last operation now (``end`` done: the caller goes on)."""
        now = self.now
        while True:
            at = self.run_ops(d, now)
            if at == WAITING:
                return False
            if self.t[d] > now:  # the medium books in the order of handing over
                self.schedule(self.t[d], d)
                return False
            if at == DONE:
                self.end(d)
                return True
            self.send_now(d, self.msg[d % self.n, self.pc[d]], now)
            self.staged[d] = False
            self.pc[d] += 1

    def air_j(self, m: int, g0: int) -> float:
        receiving_j = 0.0
        for j in range(self.dst_at[m], self.dst_at[m + 1]):
            d = g0 + self.dsts[j]
            receiving_j += self.w_rx[d] * self.rx_s[d]
        s = g0 + self.src[m]
        return self.w_tx[s] * self.tx_s[s] + receiving_j

    def send_now(self, d: int, m: int, now: float) -> None:
        """Message m of device d's request handed to the shared channel now."""
        r, g0 = self.cur[d], d - d % self.n
        before_j = self.air_j(m, g0)
        extra = self.extra_s[self.base[r] + m]
        first, last = self.dst_at[m], self.dst_at[m + 1]
        if self.bcast[m]:
            self.copy(m, g0, first, last, now)
        else:
            for j in range(first, last):
                self.copy(m, g0, j, j + 1, now)
        for j in range(first, last):  # every copy booked, then each delivered
            self.deliver(r, m, self.dsts[j], self.got_at[j - first] + extra)
        self.active_j[r] += self.air_j(m, g0) - before_j

    def copy(self, m: int, g0: int, first: int, last: int, now: float) -> None:
        """One transmission of message m to the receivers dsts[first:last]; each one's
        arrival into ``got_at`` (by its place among the message's receivers)."""
        start = max(now, self.free)
        airtime = self.air_s[m]
        self.free = start + self.hops * airtime
        s = g0 + self.src[m]
        self.tx_s[s] += airtime
        self.sent[s] += self.payload[m]
        self.on_air += self.payload[m] * self.hops
        self.busy_s += self.free - start
        for j in range(first, last):
            self.rx_s[g0 + self.dsts[j]] += airtime
            self.received[g0 + self.dsts[j]] += self.payload[m]
        arrival = self.free + self.delay_s[m]
        for j in range(first, last):
            self.got_at[j - self.dst_at[m]] = arrival

    def deliver(self, r: int, m: int, q: int, at: float) -> None:
        """The copy of message m for place q arrives at ``at``; a receive waiting on it
        learns so."""
        slot = self.slot_of[r]
        self.arrival[slot, m, q] = at
        d = self.waiter[slot, m, q]
        if d < 0:
            return
        self.waiter[slot, m, q] = -1
        self.last_s[d] = max(self.last_s[d], at)
        self.unknown[d] -= 1
        if self.unknown[d] == 0:
            self.resume(d, self.last_s[d])

    def receive(self, d: int, i: int) -> bool:
        """``HeapReplay._receive``: True once its messages are in (and staged)."""
        p, start = d % self.n, self.t[d]
        if not math.isnan(self.wait_from[d]):  # resumed: every message is in by t
            start, self.wait_from[d] = self.wait_from[d], np.nan
        else:
            slot, last, unknown = self.slot_of[self.cur[d]], start, 0
            for j in range(self.recv_at[p, i], self.recv_at[p, i + 1]):
                at = self.arrival[slot, self.recv_msgs[j], p]
                if math.isnan(at):
                    unknown += 1
                    self.waiter[slot, self.recv_msgs[j], p] = d
                elif at > last:
                    last = at
            if unknown:
                self.wait_from[d], self.unknown[d], self.last_s[d] = start, unknown, last
                return False
            if last > start:
                self.t[d] = start + (last - start)
        self.wait_s[d] += self.t[d] - start
        if self.stage_s[d, i] != 0.0:
            self.staging_s[d] += self.stage_s[d, i]
            self.t[d] = self.t[d] + self.stage_s[d, i]
        return True

    def resume(self, d: int, last_s: float) -> None:
        """``HeapReplay.resume``: device d goes on when the SimPy replay's would."""
        now, start = self.now, self.wait_from[d]
        if now < start:
            self.t[d] = start + (last_s - start) if last_s > start else start
        else:
            self.t[d] = now + max(0.0, last_s - now)
        if self.t[d] > now:  # all it does from here lies ahead of now: at once
            self.ahead(d)
        else:
            self.schedule(self.t[d], d)

    def ahead(self, d: int) -> None:
        """``advance`` of a device whose clock is past now: it computes and receives
        until a send or its part's end, which it schedules (it never sends now)."""
        if self.run_ops(d, self.now) != WAITING:
            self.schedule(self.t[d], d)


@njit(cache=True)
def interp(x: float, xp: np.ndarray, fp: np.ndarray) -> float:
    """numpy's ``interp`` of one value, its arithmetic (binary search, then
    ``slope * (x - xp[j]) + fp[j]``)."""
    n = xp.shape[0]
    if x <= xp[0]:
        return fp[0]
    if x >= xp[n - 1]:
        return fp[n - 1]
    j = np.searchsorted(xp, x, side="right") - 1
    if x == xp[j]:
        return fp[j]
    slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    return slope * (x - xp[j]) + fp[j]
