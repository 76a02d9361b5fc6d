"""What a device waiting for messages waits on (``sim/replay.py``): one event however
many messages it takes."""

from __future__ import annotations

import simpy


class Wake(simpy.Event):
    """What a receive waits on, one event however many messages it takes: a placeholder
    until the arrival times of all its messages are known; then a timeout to the last of
    them, made at that moment (where and with the priority SimPy schedules every
    timeout), takes over the placeholder's waiters. With ``relay`` the waiters stay on
    the placeholder, which the timeout triggers (one event later at the same time): a
    waiter can then be interrupted (a serving run giving a request up)."""

    def __init__(self, env: simpy.Environment, unknown: int, last_s: float,
                 relay: bool = False):
        super().__init__(env)
        self.unknown, self.last_s, self.relay = unknown, last_s, relay

    def known(self, arrival_s: float) -> None:
        self.last_s = max(self.last_s, arrival_s)
        self.unknown -= 1
        if self.unknown == 0:
            fire = self.env.timeout(max(0.0, self.last_s - self.env.now))
            if self.relay:
                fire.callbacks.append(lambda _: self.succeed())
            else:
                fire.callbacks, self.callbacks = self.callbacks, []
