"""A shaped network between processes on one Linux host: one network namespace per
device, each joined to a router namespace by a veth pair.

Every link is full duplex at ``rate_bits_per_s`` each way: a ``tbf`` on the device's end
shapes its uplink, one on the router's end its downlink (the simulator's switched
medium). One-way delay comes from a user-space delay line in the router namespace
(iptables NFQUEUE, :mod:`prismsim.testbed.delay_line`), since this kernel has no netem.
Names start with ``psim`` and a per-run id; :func:`clean` removes leftovers of any run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

PREFIX = "psim"  # every namespace and interface the testbed makes starts with this
MTU_BYTES = 1500  # Ethernet's; tbf's burst is a few frames of it
BURST_FRAMES = 2  # tbf bucket: small, so a message is never let through at line rate
BURST_S = 100e-6  # ... but at least this long at the rate: fewer shaper wake-ups at 1 Gbit/s
QUEUE_LIMIT_BYTES = 8 << 20  # tbf backlog; large, so shaping never drops (no retransmits)
QUEUE_NUMBER = 7  # NFQUEUE number inside the router namespace (namespaces are separate)
CONGESTION_CONTROL = "reno"  # TCP's in each device namespace (one every kernel allows there)
FRAME_OVERHEAD_BYTES = 14  # Ethernet header, counted by tbf; no preamble or FCS on veth
TCP_PAYLOAD_BYTES = MTU_BYTES - 52  # IPv4 20 + TCP 20 + timestamps 12 per frame
GOODPUT = TCP_PAYLOAD_BYTES / (MTU_BYTES + FRAME_OVERHEAD_BYTES)  # what tbf's rate carries


class TestbedError(RuntimeError):
    """The testbed cannot be built here (no root, no ip/tc/iptables) or a command failed."""

    __test__ = False  # not a pytest class


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise TestbedError(f"`{' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc


def require_tools() -> None:
    """Refuse clearly where the testbed cannot work."""
    if os.geteuid() != 0:
        raise TestbedError("the real-network testbed needs root (network namespaces, tc)")
    missing = [t for t in ("ip", "tc", "iptables") if shutil.which(t) is None]
    if missing:
        raise TestbedError(f"the testbed needs {', '.join(missing)} on PATH "
                           "(Debian: apt-get install iproute2 iptables)")


@dataclass
class Testbed:
    """``n_devices`` namespaces around a router; use as a context manager."""

    __test__ = False  # not a pytest class

    n_devices: int
    rate_bits_per_s: float
    delay_s: float = 0.0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    _delay_proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def router(self) -> str:
        return f"{PREFIX}{self.run_id}-r"

    def namespace(self, device: int) -> str:
        return f"{PREFIX}{self.run_id}-d{device}"

    def interface(self, device: int, side: str) -> str:
        return f"{PREFIX}{self.run_id}{side}{device}"  # side "d": device end, "r": router end

    @staticmethod
    def address(device: int) -> str:
        return f"10.77.{device}.2"

    def exec_prefix(self, device: int) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(device)]

    def namespaces(self) -> list[str]:
        return [self.router] + [self.namespace(p) for p in range(self.n_devices)]

    def __enter__(self) -> Testbed:
        require_tools()
        try:
            self._build()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def _build(self) -> None:
        _run("ip", "netns", "add", self.router)
        self._in(self.router, "ip", "link", "set", "lo", "up")
        self._in(self.router, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
        for p in range(self.n_devices):
            self._add_device(p)
        self.shape(self.rate_bits_per_s, self.delay_s)

    def _in(self, ns: str, *args: str) -> None:
        _run("ip", "netns", "exec", ns, *args)

    def _add_device(self, p: int) -> None:
        ns, dev, rtr = self.namespace(p), self.interface(p, "d"), self.interface(p, "r")
        _run("ip", "netns", "add", ns)
        _run("ip", "link", "add", dev, "type", "veth", "peer", "name", rtr)
        _run("ip", "link", "set", dev, "netns", ns)
        _run("ip", "link", "set", rtr, "netns", self.router)
        self._in(ns, "ip", "addr", "add", f"{self.address(p)}/24", "dev", dev)
        self._in(self.router, "ip", "addr", "add", f"10.77.{p}.1/24", "dev", rtr)
        for where, name in ((ns, "lo"), (ns, dev), (self.router, rtr)):
            self._in(where, "ip", "link", "set", name, "up")
        self._in(ns, "ip", "route", "add", "default", "via", f"10.77.{p}.1")
        # GLOO keeps its connections open: no slow start again after a pause between layers
        self._in(ns, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/tcp_slow_start_after_idle")
        # Reno, whose window only grows on a link that never drops (tbf queues instead):
        # a message goes at the link's rate. A host's default may pace at an estimate of
        # the rate instead (BBR), which GLOO's short bursts keep low: messages of 16-64 KB
        # then took 6-9 ms more at 10 ms one-way than their bytes at the rate
        self._in(ns, "sysctl", "-qw", f"net.ipv4.tcp_congestion_control={CONGESTION_CONTROL}")
        if shutil.which("ethtool"):  # coalesce at the router: the delay line sees ~64 KB packets
            self._in(self.router, "ethtool", "-K", rtr, "gro", "on")

    def shape(self, rate_bits_per_s: float, delay_s: float) -> None:
        """Set every link's rate and the one-way delay (replacing the previous ones)."""
        self._tbf("replace", rate_bits_per_s)
        self.delay_s = delay_s
        self._set_delay(delay_s)

    def set_rate(self, rate_bits_per_s: float) -> None:
        """Change every link's rate in place, the delay kept: ``tc qdisc change`` keeps
        what each shaper holds queued (``replace`` would drop it, and TCP would wait out
        a retransmission). The namespaces are changed at once, one process each."""
        self._tbf("change", rate_bits_per_s)

    def _tbf(self, verb: str, rate_bits_per_s: float) -> None:
        self.rate_bits_per_s = rate_bits_per_s
        burst = int(max(BURST_FRAMES * (MTU_BYTES + FRAME_OVERHEAD_BYTES),
                        rate_bits_per_s / 8 * BURST_S))
        spec = (f"root tbf rate {int(rate_bits_per_s)}bit burst {burst} "
                f"limit {QUEUE_LIMIT_BYTES}")
        lines: dict[str, list[str]] = {}
        for p in range(self.n_devices):
            lines.setdefault(self.namespace(p), []).append(
                f"qdisc {verb} dev {self.interface(p, 'd')} {spec}")
            lines.setdefault(self.router, []).append(
                f"qdisc {verb} dev {self.interface(p, 'r')} {spec}")
        procs = {ns: subprocess.Popen(["tc", "-n", ns, "-batch", "-"], stdin=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
                 for ns in lines}
        errors = [proc.communicate("\n".join(lines[ns]) + "\n")[1]
                  for ns, proc in procs.items()]
        failed = [err.strip() for proc, err in zip(procs.values(), errors, strict=True)
                  if proc.returncode != 0]
        if failed:
            raise TestbedError(f"`tc qdisc {verb}` failed: {failed[0]}")

    def _set_delay(self, delay_s: float) -> None:
        self._stop_delay()
        self._in(self.router, "iptables", "-F", "FORWARD")
        if delay_s <= 0:
            return
        self._delay_proc = subprocess.Popen(
            ["ip", "netns", "exec", self.router, sys.executable, "-m",
             "prismsim.testbed.delay_line", str(QUEUE_NUMBER), str(delay_s * 1000)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._delay_proc.stdout.readline()
        if line.strip() != "ready":
            err = self._delay_proc.stderr.read()
            raise TestbedError(f"the delay line did not start: {line.strip()} {err.strip()}")
        self._in(self.router, "iptables", "-A", "FORWARD", "-j", "NFQUEUE",
                 "--queue-num", str(QUEUE_NUMBER))

    def _stop_delay(self) -> None:
        if self._delay_proc is not None:
            self._delay_proc.terminate()
            try:
                self._delay_proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._delay_proc.kill()
            self._delay_proc = None

    def destroy(self) -> None:
        """Remove everything this testbed made (safe to call twice)."""
        self._stop_delay()
        for ns in self.namespaces():
            remove_namespace(ns)


def _kill_pids(ns: str) -> None:
    pids = _run("ip", "netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def remove_namespace(ns: str) -> None:
    """Kill what runs inside ``ns`` and delete it (its veth ends and rules go with it)."""
    if ns not in list_namespaces(prefix=""):
        return
    _kill_pids(ns)
    _run("ip", "netns", "del", ns, check=False)


def list_namespaces(prefix: str = PREFIX) -> list[str]:
    out = _run("ip", "netns", "list", check=False).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix)]


def clean() -> list[str]:
    """Remove every namespace any testbed left behind; returns their names."""
    left = list_namespaces()
    for ns in left:
        remove_namespace(ns)
    return left


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so ``with Testbed(...)`` cleans up on kill too."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
