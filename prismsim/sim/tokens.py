"""Per-token figures of a simulated generation: when each token was chosen, time to first
token, time per output token, bytes per token.

A generation workload (traced with ``generate``) tags the head step of token i
``t{i}.head`` on the device that decodes; a token is there when that step ends on the
recorded timeline (simulate with ``record=True``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from prismsim.sim.results import SimResult
from prismsim.workload import Workload, token_step

HEAD_TAG = re.compile(r"^t(\d+)\.head$")  # token i's head step: when it is there


@dataclass(frozen=True)
class TokenTimes:
    """When each generated token was chosen (seconds from the request)."""

    ends_s: tuple[float, ...]

    @property
    def ttft_s(self) -> float:
        """Time to first token: the prefill and the first head."""
        return self.ends_s[0]

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first (None with one token)."""
        if len(self.ends_s) < 2:
            return None
        return (self.ends_s[-1] - self.ends_s[0]) / (len(self.ends_s) - 1)

    @property
    def tokens_per_s(self) -> float | None:
        tpot = self.tpot_s
        return None if not tpot else 1.0 / tpot


def token_times(wl: Workload, result: SimResult) -> TokenTimes:
    """The token ends of a generation workload's simulated run (recorded spans)."""
    steps = wl.meta.get("generate")
    if steps is None:
        raise ValueError("the workload generates no tokens (trace it with generate=N)")
    if not result.spans:
        raise ValueError("token times need the timeline: simulate with record=True")
    owner, ends = wl.meta["output_device"], {}
    for span in result.spans:
        if span.device == owner and span.lane == "compute" and (m := HEAD_TAG.match(span.label)):
            ends[int(m.group(1))] = span.end_s
    if sorted(ends) != list(range(steps)):
        raise ValueError(f"the timeline has head steps {sorted(ends)}, not 0..{steps - 1}")
    return TokenTimes(tuple(ends[i] for i in range(steps)))


def decode_bytes_per_token(wl: Workload) -> float:
    """Bytes sent per generated token after the first: every copy of each decode-step
    message (unicast accounting, as ``Workload.bytes_sent_per_device``); 0 with one."""
    steps = wl.meta.get("generate") or 1
    if steps < 2:
        return 0.0
    total = 0
    for m in wl.messages:
        if (token_step(m.tag) or 0) >= 1:
            total += m.payload_bytes * len(m.dst)
    return total / (steps - 1)


def decode_summary(wl: Workload, result: SimResult) -> dict[str, Any]:
    """A generation's time to first token, time per output token, tokens per second (of
    the decode steps), energy per generated token (the whole request's, prefill
    included, over its tokens) and bytes sent per decode step."""
    times = token_times(wl, result)
    return {
        "generate": wl.meta["generate"], "ttft_s": times.ttft_s, "tpot_s": times.tpot_s,
        "tokens_per_s": times.tokens_per_s,
        "energy_per_token_j": result.energy_j / wl.meta["generate"],
        "bytes_per_token": decode_bytes_per_token(wl),
    }
