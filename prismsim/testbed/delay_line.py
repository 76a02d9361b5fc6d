"""A one-way delay line in user space: packets queued by an iptables NFQUEUE rule are held
for a fixed time, then accepted in arrival order (the kernel here has no ``netem``).

It speaks the nfnetlink_queue protocol directly (no libnetfilter_queue): bind a queue,
ask for packet metadata only, and release every packet whose time has come with one
batch verdict (ids grow in arrival order and the delay is constant, so FIFO holds).
Run it inside the router namespace: ``python -m prismsim.testbed.delay_line QUEUE DELAY_MS``.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import sys
import time
from collections import deque

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 2, 3
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQA_CFG_MASK, NFQA_CFG_FLAGS = 4, 5
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_GSO = 4  # hand over GSO packets whole: far fewer packets to hold
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
QUEUE_MAXLEN = 20000  # packets the kernel may hold for us before it drops (bypass: passes)


def _attr(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _message(msg_type: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    kind = (NFNL_SUBSYS_QUEUE << 8) | msg_type
    return struct.pack("=IHHII", 16 + len(body), kind, flags, 0, 0) + body


def _check_ack(sock: socket.socket) -> None:
    data = sock.recv(65536)
    _, kind, _, _, _ = struct.unpack_from("=IHHII", data)
    if kind == NLMSG_ERROR:
        (err,) = struct.unpack_from("=i", data, 16)
        if err:
            raise OSError(-err, f"nfnetlink_queue refused the configuration: {os.strerror(-err)}")


def open_queue(queue: int) -> socket.socket:
    """Bind ``queue`` with metadata-only copies and whole GSO packets."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.bind((0, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    config = [
        _attr(NFQA_CFG_CMD, struct.pack("=BBH", NFQNL_CFG_CMD_BIND, 0, 0)),
        _attr(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META)),
        _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", QUEUE_MAXLEN)),
        _attr(NFQA_CFG_MASK, struct.pack(">I", NFQA_CFG_F_GSO))
        + _attr(NFQA_CFG_FLAGS, struct.pack(">I", NFQA_CFG_F_GSO)),
    ]
    for attrs in config:
        sock.send(_message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK))
        _check_ack(sock)
    sock.setblocking(False)
    return sock


def packet_ids(data: bytes) -> list[int]:
    """Packet ids of every NFQNL_MSG_PACKET in one netlink read."""
    ids, pos = [], 0
    while pos + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, pos)
        if length < 16:
            break
        if kind & 0xFF == NFQNL_MSG_PACKET and kind >> 8 == NFNL_SUBSYS_QUEUE:
            ids.extend(_ids_in_attrs(data, pos + 20, pos + length))
        pos += (length + 3) & ~3
    return ids


def _ids_in_attrs(data: bytes, pos: int, end: int) -> list[int]:
    while pos + 4 <= end:
        size, kind = struct.unpack_from("=HH", data, pos)
        if size < 4:
            break
        if kind & 0x7FFF == NFQA_PACKET_HDR:
            return [struct.unpack_from(">I", data, pos + 4)[0]]
        pos += (size + 3) & ~3
    return []


def accept_through(sock: socket.socket, queue: int, packet_id: int) -> None:
    """Accept every held packet with an id up to ``packet_id``."""
    attrs = _attr(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, packet_id))
    sock.send(_message(NFQNL_MSG_VERDICT_BATCH, queue, attrs))


class DelayLine:
    """Holds each packet ``delay_s`` after it reached the queue."""

    def __init__(self, sock: socket.socket, queue: int, delay_s: float):
        self.sock, self.queue, self.delay_s = sock, queue, delay_s
        self.held: deque[tuple[float, int]] = deque()

    def take(self) -> None:
        now = time.monotonic()
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return
            self.held.extend((now + self.delay_s, i) for i in packet_ids(data))

    def release(self) -> None:
        now, last = time.monotonic(), None
        while self.held and self.held[0][0] <= now:
            last = self.held.popleft()[1]
        if last is not None:
            accept_through(self.sock, self.queue, last)

    def wait_s(self) -> float | None:
        return max(0.0, self.held[0][0] - time.monotonic()) if self.held else None

    def serve(self) -> None:
        while True:
            readable, _, _ = select.select([self.sock], [], [], self.wait_s())
            if readable:
                self.take()
            self.release()


def main(argv: list[str]) -> None:
    queue, delay_ms = int(argv[0]), float(argv[1])
    line = DelayLine(open_queue(queue), queue, delay_ms / 1000)
    print("ready", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        line.serve()


if __name__ == "__main__":
    main(sys.argv[1:])
