"""The network's work on a shared host's cores, as the replay runs it (``Replay``'s
part for a host): a send's own work done by the sending program, GLOO's fixed work at
the receiver, and each transmission's per-byte work spread over its airtime, whose data
is through only once that work is done (a host short of CPU slows the transfer)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from prismsim.sim.host import SharedHost
from prismsim.sim.specs import HostSpec
from prismsim.workload import Message


class HostWork:
    """The replay's jobs on a shared host for the network (a mixin of ``Replay``)."""

    env: simpy.Environment
    host: SharedHost | None
    host_spec: HostSpec | None
    transfers: dict[int, tuple[simpy.Event, float]]  # dst -> (CPU done, end)
    _deliver: Callable[[int, int, float], None]  # the replay's: a copy arrives (msg, dst, at)

    def _send_cpu(self, msg: Message) -> simpy.Event | None:
        """The sender's work for a message (fixed and per byte, each copy)."""
        if not (self.host and self.host_spec):
            return None
        spec = self.host_spec
        return self.host.run(len(msg.dst) * (spec.message_cpu_s
                                             + spec.end_cpu_s(msg.payload_bytes)))

    def _message_cpu(self, ids: tuple[int, ...]) -> simpy.Event | None:
        """GLOO's fixed work for received messages, as a job on the shared host."""
        if not (self.host and self.host_spec):
            return None
        return self.host.run(len(ids) * self.host_spec.message_cpu_s)

    def _transfer_cpu(self, dsts: tuple[int, ...], n_bytes: int, start: float, end: float
                      ) -> None:
        """The host's work for a transmission (the receiver's per-byte part, the
        network's own): a job spread over its airtime. Its data is through only once the job is
        done: a host short of CPU slows the transfer (``_arrive``)."""
        assert self.host and self.host_spec
        work_s, done = self.host_spec.transfer_cpu_s(n_bytes), self.env.event()
        self.env.process(self._transfer_job(work_s, start, max(end - start, 1e-9), done))
        for d in dsts:
            self.transfers[d] = (done, end)

    def _transfer_job(self, work_s: float, start: float, airtime_s: float,
                      done: simpy.Event) -> Generator[Any, Any, None]:
        assert self.host
        if start > self.env.now:
            yield self.env.timeout(start - self.env.now)
        yield self.host.run(work_s, cap=work_s / airtime_s)
        done.succeed()

    def _arrive(self, msg_id: int, device: int, at: float) -> None:
        """A copy booked to arrive ``at``; on a shared host, no earlier than its
        transfer's CPU job allows (then as long after it as after the airtime)."""
        transfer = self.transfers.pop(device, None)
        if transfer is None:
            self._deliver(msg_id, device, at)
        else:
            self.env.process(self._arrive_after(msg_id, device, at, *transfer))

    def _arrive_after(self, msg_id: int, device: int, at: float, done: simpy.Event,
                      end: float) -> Generator[Any, Any, None]:
        yield done
        at = max(at, self.env.now + at - end)
        if at > self.env.now:
            yield self.env.timeout(at - self.env.now)
        self._deliver(msg_id, device, at)
