"""The per-device program interface shared by every strategy and every executor.

A strategy is written once, as a generator per device. The generator *yields* operations
and the executor carries them out:

* ``Send(messages)``: hand tensors to other devices; returns at once (the send is
  buffered, as with ``torch.distributed.isend``).
* ``Recv(expects)``: wait until every expected message has arrived; the executor sends
  back an :class:`Inbox`. Each expectation names its source, tag and shape, so a
  process-per-device executor can pre-allocate receive buffers.
* ``Post(expects)``: post receives now (buffers ready) without waiting; returns at once.
  A later ``Recv`` of the same (source, tag) takes the oldest posted one, FIFO. With a
  rendezvous transport (GLOO) the senders may then send before the program reaches the
  ``Recv``, so posting early hides the handshake. Every posted receive must be taken by
  a later ``Recv``.
* ``AllGather(tensor, tag)``: a collective every device joins; returns the gathered
  tensors. Real runs call the library's collective; elsewhere it becomes the messages
  of that library's algorithm, so every executor sees the same exchange.

Compute goes through :meth:`DeviceContext.compute`, which an executor may override to
count FLOPs or time each step. The generator's return value is the device's result (the
master returns the model output; the others return ``None``).

Messages and compute steps are named by a :class:`Tag`: the block they belong to and a
name within it, so per-layer accounting reads a field instead of parsing text.

Every executor runs programs through one loop (``driver.Driver``) and differs only in
its transport (in memory, recording a trace, or torch.distributed).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # annotations only: the interface itself needs no torch
    from torch import Tensor

ALL = "all"  # destination meaning "every other device" (a medium may broadcast it once)

T = TypeVar("T")


@dataclass(frozen=True)
class Tag:
    """What a message or compute step is: the block it belongs to (None outside the
    blocks: input, head, output) and its name there. ``str(tag)`` is its text, e.g.
    "L3.attn.rs0" or "embed", as timelines show it and GLOO's integer tag hashes it."""

    name: str
    layer: int | None = None

    def __str__(self) -> str:
        return self.name if self.layer is None else f"L{self.layer}.{self.name}"

    def sub(self, part: str | int) -> Tag:
        """A finer name in the same block: Tag("attn", 3).sub("rs0") is L3.attn.rs0."""
        return Tag(f"{self.name}.{part}", self.layer)


@dataclass(frozen=True)
class Message:
    """One tensor from ``src`` to the devices in ``dst`` (a tuple, or ``ALL``)."""

    src: int
    dst: tuple[int, ...] | str
    tag: Tag
    tensor: Tensor

    def recipients(self, n_devices: int) -> tuple[int, ...]:
        if self.dst == ALL:
            return tuple(d for d in range(n_devices) if d != self.src)
        return tuple(self.dst)


@dataclass(frozen=True)
class Expect:
    """A message a device waits for: from ``src`` with ``tag``, of ``shape``."""

    src: int
    tag: Tag
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Send:
    """Hand ``messages`` over; the program goes on at once."""

    messages: tuple[Message, ...]


@dataclass(frozen=True)
class Recv:
    """Wait until every expected message is there; the program gets an ``Inbox``."""

    expects: tuple[Expect, ...]


class Inbox:
    """Messages delivered to one device by one ``Recv``, looked up by (source, tag)."""

    def __init__(self, items: Iterable[tuple[Expect, Tensor]]):
        self._by_key = {(e.src, e.tag): t for e, t in items}

    def get(self, src: int, tag: Tag) -> Tensor:
        try:
            return self._by_key[(src, tag)]
        except KeyError:
            raise KeyError(f"no message from device {src} tagged {tag} in this inbox") from None

    def __len__(self) -> int:
        return len(self._by_key)


@dataclass(frozen=True)
class Post:
    """Post these receives now; a later ``Recv`` takes them (see the module docstring)."""

    expects: tuple[Expect, ...]


@dataclass(frozen=True)
class AllGather:
    """Every device's ``tensor`` (the same shape on all), gathered in device order: the
    executor sends back a tensor [P, *shape]. As ``torch.distributed.all_gather`` does;
    a real run calls it, the other executors run GLOO's own ring as messages
    (``driver.gloo_allgather``). Every device must take part."""

    tensor: Tensor
    tag: Tag


Op = Send | Recv | Post | AllGather
Program = Generator[Op, Any, Any]


@dataclass
class DeviceContext:
    """What a device knows before it starts: who it is and how the input is split.

    ``sizes`` are the token counts of the P contiguous partitions (global order);
    ``batch`` is the batch size, known to every device so shapes can be expected.
    """

    device: int
    sizes: tuple[int, ...]
    batch: int
    hidden: int

    @property
    def n_devices(self) -> int:
        return len(self.sizes)

    @property
    def n_tokens(self) -> int:
        return sum(self.sizes)

    def offset(self, device: int) -> int:
        """Global position of the first token of ``device``'s partition."""
        return sum(self.sizes[:device])

    def rows(self, device: int) -> slice:
        start = self.offset(device)
        return slice(start, start + self.sizes[device])

    def others(self) -> tuple[int, ...]:
        return tuple(d for d in range(self.n_devices) if d != self.device)

    def compute(self, tag: Tag, fn: Callable[..., T], *args: Any) -> T:
        """Run one compute step. Executors override this to count FLOPs or time it."""
        del tag
        return fn(*args)

    def hold(self, key: str, *tensors: Tensor | None) -> None:
        """What this device keeps between its steps under ``key`` from now on (replacing
        what it kept there before; None entries are skipped): a block's KV cache. Only
        the tracing executor records it (the memory model's ``kv_cache_bytes``)."""
        del key, tensors


def send(src: int, dst: tuple[int, ...] | str, tag: Tag, tensor: Tensor) -> Send:
    """A ``Send`` of one message (skipped by executors when ``dst`` is empty)."""
    return Send((Message(src, dst, tag, tensor),))
