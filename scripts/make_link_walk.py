"""Write a synthetic WiFi bandwidth trace: the link's rate walks in log space between a
few and several hundred Mbit/s (an AR(1) process of the log rate, one step a second,
with the correlation time and range below), as ``time_s,bandwidth_mbps`` CSV.

It stands in for a recorded trace (none ships with a PyPI package), to show how a
policy reacts to a rate that moves: same seed, same file.

    python scripts/make_link_walk.py scenarios/traces/wifi5_walk.csv
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np


def walk_mbps(seconds: int, low_mbps: float, high_mbps: float, center_mbps: float,
              correlation_s: float, seed: int) -> np.ndarray:
    """One rate a second: log rate AR(1) around ``center_mbps``, its stationary
    deviation a fifth of the range's (in log), clipped to the range."""
    rng = np.random.default_rng(seed)
    mid, sd = math.log(center_mbps), math.log(high_mbps / low_mbps) / 5
    keep = math.exp(-1.0 / correlation_s)
    x = np.empty(seconds)
    x[0] = mid + sd * rng.standard_normal()
    for t in range(1, seconds):
        x[t] = mid + keep * (x[t - 1] - mid) + sd * math.sqrt(1 - keep * keep) * \
            rng.standard_normal()
    return np.clip(np.exp(x), low_mbps, high_mbps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=int, default=2500)
    ap.add_argument("--low-mbps", type=float, default=5.0)
    ap.add_argument("--high-mbps", type=float, default=866.7)  # 802.11ac 2x2 80 MHz PHY
    ap.add_argument("--center-mbps", type=float, default=250.0)
    ap.add_argument("--correlation-s", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rates = walk_mbps(a.seconds, a.low_mbps, a.high_mbps, a.center_mbps,
                      a.correlation_s, a.seed)
    lines = ["time_s,bandwidth_mbps"] + [f"{t},{r:.1f}" for t, r in enumerate(rates)]
    a.out.write_text("\n".join(lines) + "\n")
    print(f"{a.out}: {len(rates)} s, {rates.min():.1f} to {rates.max():.1f} Mbit/s, "
          f"median {np.median(rates):.1f}")


if __name__ == "__main__":
    main()
