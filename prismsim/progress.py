"""Progress of long work (sweeps, accuracy, plans, validation): library functions take a
``Progress`` callback and call it as items finish; :func:`reporter` makes one that shows
a bar on a terminal and, when stderr goes to a log, a plain line every few seconds."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

LOG_EVERY_S = 5.0  # seconds between plain progress lines (override: $PRISMSIM_PROGRESS_S)
LABEL_CHARS = 100


class Progress(Protocol):
    def __call__(self, label: str, n: int = 1) -> None:
        """``n`` more items finished; ``label`` says what the last one was. ``n=0``:
        nothing finished, ``label`` has started (shown while it runs)."""


def duration(seconds: float) -> str:
    """Seconds as people read them: '42 s', '3 min 05 s', '1 h 02 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class LogLines:
    """Plain progress lines for logs: done/total, rate, ETA and the latest item, every
    ``every_s`` seconds while the work runs (also when nothing finished meanwhile, so a
    log shows it is alive) and once more at the end."""

    def __init__(self, what: str, total: int | None, stream: TextIO, every_s: float):
        self.what, self.total, self.stream, self.every_s = what, total, stream, every_s
        self.done, self.label, self.start = 0, "", time.monotonic()
        self.running = False  # whether ``label`` is under way (else: the last one done)
        self.lock, self.stopped = threading.Lock(), threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)
        self.thread.start()

    def __call__(self, label: str, n: int = 1) -> None:
        with self.lock:
            self.done, self.label, self.running = self.done + n, label, n == 0

    def _beat(self) -> None:
        while not self.stopped.wait(self.every_s):
            self.write()

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        share = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        eta = ""
        if self.total and self.done:
            eta = f", ETA {duration((self.total - self.done) / rate)}" if rate else ""
        last = f"; {'now' if self.running else 'last'}: {self.label[:LABEL_CHARS]}" \
            if self.label else ""
        return (f"{self.what}: {count}{share} in {duration(elapsed)}, {rate:.3g}/s{eta}"
                f"{last}")

    def write(self) -> None:
        with self.lock:
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.write()


def _every_s() -> float:
    try:
        return max(0.1, float(os.environ.get("PRISMSIM_PROGRESS_S", LOG_EVERY_S)))
    except ValueError:
        return LOG_EVERY_S


@contextmanager
def reporter(what: str, total: int | None = None, stream: TextIO | None = None
             ) -> Iterator[Progress]:
    """A Progress for ``total`` items (None: unknown) reported on ``stream`` (stderr)."""
    stream = stream or sys.stderr
    console = Console(file=stream)
    if not console.is_terminal:
        lines = LogLines(what, total, stream, _every_s())
        try:
            yield lines
        finally:
            lines.close()
        return
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total}" if total else "{task.completed}"),
               TimeRemainingColumn() if total else TimeElapsedColumn())
    with RichProgress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(what, total=total)

        def advance(label: str, n: int = 1) -> None:
            bar.update(task, advance=n, description=f"{what}: {label}"[:LABEL_CHARS])

        yield advance
