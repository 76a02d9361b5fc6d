"""Pareto fronts, the one definition every table and plot uses: a point is on the front
when no other point is at least as good in every objective and better in one. Equal
points do not dominate each other (both stay); a point with a missing (NaN) objective is
never on the front and dominates nothing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def front(points: np.ndarray) -> list[int]:
    """Row indices of ``points`` [n, k] on the front, every column minimized."""
    values = np.asarray(points, dtype=float).reshape(len(points), -1)
    valid = ~np.isnan(values).any(axis=1)
    out = []
    for i in np.flatnonzero(valid):
        others = values[valid]
        dominated = ((others <= values[i]).all(axis=1) & (others < values[i]).any(axis=1))
        if not dominated.any():
            out.append(int(i))
    return out


def front_rows(df: pd.DataFrame, minimize: Sequence[str] = (),
               maximize: Sequence[str] = ()) -> list:
    """Index labels of the rows of ``df`` on the front over these columns."""
    cols = [df[c].astype(float) for c in minimize] + [-df[c].astype(float) for c in maximize]
    if not cols or df.empty:
        return []
    values = np.column_stack([c.to_numpy() for c in cols])
    return [df.index[i] for i in front(values)]


def latency_score_front(points: Sequence[tuple[float, float]], higher_is_better: bool = True
                        ) -> list[int]:
    """Indices of the (latency, score) points on the front, lower latency first (then
    the better score): latency is minimized, the score maximized unless
    ``higher_is_better`` is False (bits per byte)."""
    if not points:
        return []
    lat = np.array([p[0] for p in points], dtype=float)
    score = np.array([p[1] for p in points], dtype=float)
    loss = -score if higher_is_better else score
    idx = front(np.column_stack([lat, loss]))
    return sorted(idx, key=lambda i: (lat[i], loss[i], i))
