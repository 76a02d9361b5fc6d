"""When requests arrive: Poisson, constant, bursty (on/off) or a replayed trace.

Every random stream is drawn at unit rate and scaled by 1 / rate, so one seed gives the
same arrivals, stretched, at every rate (common random numbers): a FIFO queue's waits
then only grow with the rate, which keeps a bisection for the capacity monotone.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from prismsim.userfiles import UserFileError

PATTERNS = ("poisson", "constant", "onoff", "trace")


def poisson_s(rate_per_s: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n arrival times of a Poisson process (exponential gaps with mean 1 / rate)."""
    return np.cumsum(rng.exponential(1.0, n)) / rate_per_s  # (n,)


def constant_s(rate_per_s: float, n: int) -> np.ndarray:
    """One request every 1 / rate seconds, the first at 0."""
    return np.arange(n) / rate_per_s  # (n,)


def onoff_s(rate_per_s: float, n: int, on_s: float, off_s: float,
            rng: np.random.Generator) -> np.ndarray:
    """Bursts: Poisson during ``on_s`` periods, nothing during the ``off_s`` ones between
    them; the rate during a burst is rate x (on + off) / on, so ``rate_per_s`` is the
    long-run mean."""
    busy_s = poisson_s(rate_per_s * (on_s + off_s) / on_s, n, rng)  # time spent on
    periods = np.floor(busy_s / on_s)
    return periods * (on_s + off_s) + (busy_s - periods * on_s)  # (n,)


def read_trace(path: Path) -> np.ndarray:
    """Arrival times (seconds, column ``time_s``) of a CSV file, in increasing order."""
    where = str(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise UserFileError(f"{where}: cannot read the trace: {e.strerror}") from None
    if not rows:
        raise UserFileError(f"{where}: the trace has no requests (a header `time_s` and "
                            f"one row per request)")
    if "time_s" not in rows[0]:
        raise UserFileError(f"{where}: no column time_s (columns: {', '.join(rows[0])})")
    times = []
    for i, row in enumerate(rows):
        try:
            t = float(row["time_s"])
        except (TypeError, ValueError):
            raise UserFileError(f"{where}: row {i + 2}: time_s {row['time_s']!r} is not "
                                f"a number") from None
        if not t >= 0 or (times and t < times[-1]):
            raise UserFileError(f"{where}: row {i + 2}: time_s {t:g} must be >= 0 and not "
                                f"before the row above")
        times.append(t)
    return np.asarray(times)


def arrivals_s(pattern: str, rate_per_s: float, n: int, seed: int, *,
               on_s: float = 1.0, off_s: float = 1.0) -> np.ndarray:
    """n arrival times of ``pattern`` (not ``trace``: that is read, not drawn)."""
    rng = np.random.default_rng(seed)
    if pattern == "poisson":
        return poisson_s(rate_per_s, n, rng)
    if pattern == "constant":
        return constant_s(rate_per_s, n)
    if pattern == "onoff":
        return onoff_s(rate_per_s, n, on_s, off_s, rng)
    raise ValueError(f"arrivals must be one of {', '.join(PATTERNS[:3])}, got {pattern!r}")
