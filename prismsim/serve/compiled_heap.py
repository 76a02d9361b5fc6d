"""What the compiled serving kernel (``serve/compiled_kernel.py``) needs of the standard
library and numpy, on its state's arrays: the heap of (time, order, device) its time is
kept on (orders are unique, so it pops in heapq's order), and numpy's ``interp`` of one
value with numpy's arithmetic."""

from __future__ import annotations

import numpy as np
from numba import njit

from prismsim.serve.compiled_fields import Kernel


@njit(cache=True)
def schedule(k: Kernel, at_s: float, d: int) -> None:
    i = k.h_n
    k.h_n += 1
    while i > 0:
        up = (i - 1) // 2
        if k.h_t[up] < at_s or (k.h_t[up] == at_s and k.h_o[up] < k.order):
            break
        k.h_t[i], k.h_o[i], k.h_d[i] = k.h_t[up], k.h_o[up], k.h_d[up]
        i = up
    k.h_t[i], k.h_o[i], k.h_d[i] = at_s, k.order, d
    k.order += 1


@njit(cache=True)
def less(k: Kernel, i: int, j: int) -> bool:
    return k.h_t[i] < k.h_t[j] or (k.h_t[i] == k.h_t[j] and k.h_o[i] < k.h_o[j])


@njit(cache=True)
def pop(k: Kernel) -> int:
    """The earliest entry off the heap: the clock moves to it; its device."""
    k.now, d = k.h_t[0], k.h_d[0]
    k.h_n -= 1
    last = k.h_n
    k.h_t[0], k.h_o[0], k.h_d[0] = k.h_t[last], k.h_o[last], k.h_d[last]
    i = 0
    while True:
        small, left, right = i, 2 * i + 1, 2 * i + 2
        if left < k.h_n and less(k, left, small):
            small = left
        if right < k.h_n and less(k, right, small):
            small = right
        if small == i:
            return d
        k.h_t[i], k.h_t[small] = k.h_t[small], k.h_t[i]
        k.h_o[i], k.h_o[small] = k.h_o[small], k.h_o[i]
        k.h_d[i], k.h_d[small] = k.h_d[small], k.h_d[i]
        i = small


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
