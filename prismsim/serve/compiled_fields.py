"""The state of the compiled serving kernel (``serve/compiled_kernel.py``): a numba
structure (``Kernel``) of typed fields, what each holds by place in a group (p), device
(d), message id (m), request (r) or request slot (the mail of requests in flight).
A structure, not a compiled class, so that the kernel's functions are compiled once and
kept on disk (numba's cache) rather than in every process."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import boolean, float64, int64, types
from numba.experimental import structref

SLOTS = 256  # requests with parts in flight at once; more: the Python replay serves

SPEC = [
    # the program of each place p in a group: kind, message (send) or receive's range
    ("n", int64), ("kind", int64[:, :]), ("n_ops", int64[:]), ("msg", int64[:, :]),
    ("recv_at", int64[:, :]), ("recv_msgs", int64[:]),
    # by device d: each operation's staging and mean seconds; power above idle
    ("stage_s", float64[:, :]), ("mean_s", float64[:, :]), ("w_compute", float64[:]),
    ("w_tx", float64[:]), ("w_rx", float64[:]),
    # compute steps: the operation each is part of (by place), seconds (by device)
    ("n_steps", int64[:]), ("owner", int64[:, :]), ("step_s", float64[:, :]),
    # variability by device: slow factor's quantiles, correlation, fast sigma, draws
    ("varies", boolean[:]), ("slow_q", float64[:, :]), ("slow_v", float64[:, :]),
    ("corr_s", float64[:]), ("sigma", float64[:]), ("innov", float64[:, :]),
    ("fast", float64[:, :]), ("taken", int64[:]), ("score", float64[:]),
    ("score_at", float64[:]), ("scored", boolean[:]),
    # messages by id: sender's place, receivers' places, bytes, one copy's airtime,
    # broadcast (one copy for all), delay after the air; extra delay by running key
    ("src", int64[:]), ("dst_at", int64[:]), ("dsts", int64[:]), ("payload", int64[:]),
    ("air_s", float64[:]), ("bcast", boolean[:]), ("delay_s", float64[:]),
    ("hops", int64), ("extra_s", float64[:]), ("n_msgs", int64),
    # the medium
    ("free", float64), ("tx_s", float64[:]), ("rx_s", float64[:]), ("sent", int64[:]),
    ("received", int64[:]), ("on_air", int64), ("busy_s", float64),
    # requests, groups, queues
    ("groups", int64), ("shortest", boolean), ("limit", int64), ("turn", int64),
    ("outstanding", int64[:]), ("queue", int64[:, :]), ("q_head", int64[:]),
    ("q_tail", int64[:]), ("group", int64[:]), ("start_s", float64[:]),
    ("finish_s", float64[:]), ("energy_j", float64[:]), ("dropped", boolean[:]),
    ("left", int64[:]), ("active_j", float64[:]), ("base", int64[:]), ("next_key", int64),
    ("started", int64), ("slot_of", int64[:]), ("in_slot", int64[:]), ("out_p", int64),
    ("got_at", float64[:]), ("arr_s", float64[:]),
    # devices: the part in progress (request, -1 none), where it is, parts handed
    ("cur", int64[:]), ("pc", int64[:]), ("t", float64[:]), ("before_s", float64[:]),
    ("wait_from", float64[:]), ("staged", boolean[:]), ("todo", int64[:, :]),
    ("slow", float64[:, :]), ("part_k", int64[:, :]), ("todo_head", int64[:]),
    ("todo_tail", int64[:]), ("held", float64[:, :]),
    ("compute_s", float64[:]), ("staging_s", float64[:]), ("wait_s", float64[:]),
    ("done_s", float64[:]),
    # mail by request slot: each copy's arrival (nan: not sent), a receive waiting on it
    ("arrival", float64[:, :, :]), ("waiter", int64[:, :, :]), ("unknown", int64[:]),
    ("last_s", float64[:]),
    # time: the heap of (time, order, device)
    ("now", float64), ("h_t", float64[:]), ("h_o", int64[:]), ("h_d", int64[:]),
    ("h_n", int64), ("order", int64), ("overflow", boolean),
    # what the Python replay's calls would nest: (kind, device or group, next place)
    ("f_kind", int64[:]), ("f_a", int64[:]), ("f_i", int64[:]), ("f_n", int64),
]


@structref.register
class KernelType(types.StructRef):
    def preprocess_fields(self, fields: Any) -> tuple:
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class Kernel(structref.StructRefProxy):
    """One serving run's state (``make_kernel``); the kernel's functions take it."""


FIELDS = [name for name, _ in SPEC]
structref.define_proxy(Kernel, KernelType, FIELDS)


def make_kernel(values: Any) -> Kernel:
    """The kernel's state from an object with every field, checked against SPEC's
    types: arrays exactly of its dtype and dimensions, C-contiguous (the kernel writes
    into them: a copy would lose what it writes), scalars as numba types them."""
    out = []
    for name, typ in SPEC:
        value = getattr(values, name)
        if isinstance(typ, types.Array):
            dtype = np.dtype(np.bool_ if typ.dtype == boolean else str(typ.dtype))
            if not (isinstance(value, np.ndarray) and value.dtype == dtype
                    and value.ndim == typ.ndim and value.flags.c_contiguous):
                raise TypeError(f"kernel field {name}: needs a C-contiguous {dtype} array "
                                f"of {typ.ndim} dimensions")
        else:
            value = {int64: int, float64: float, boolean: bool}[typ](value)
        out.append(value)
    return Kernel(*out)
