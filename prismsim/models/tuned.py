"""Fine-tuned models: how one is named and where its weights are kept (plain data: a
scenario reads names without torch; ``models/load.py`` puts the weights back on the base
model, ``prismsim finetune`` makes them: ``prismsim/finetune.py``).

A name is the base model, ``@``, and the fine-tuning: strategy, P, the Segment Means
setting, the mode, then the settings that differ from the defaults, e.g.
``dinov2-small@prism-p3-m10-head`` or ``vit-tiny@prism-p2-cr4-last1-s50-lr0.001``
(``+dataset`` when not the base model's own). The weights file holds only the trained
parameters (safetensors), under a key of everything the training depends on, the base
model's weights included; its JSON sidecar holds the settings, so a path to the file
works as a model name too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prismsim.cache_dir import cache_root

FORMAT = 2  # bumped when training changes what a key's weights are (2: head validated)
BLOCKS_FORMAT = 2  # the same for last:K / all (2: learning rate chosen, best state kept)
MODE = re.compile(r"^(head|all|last:([1-9][0-9]*)|lora:([1-9][0-9]*))$")
LORA_SCALE = 2.0  # a LoRA adapter's update is LORA_SCALE * B @ A (alpha = 2 x rank)
OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class FinetuneRun:
    """What a fine-tuning run trains, through which strategy's programs, on what."""

    base: str  # the model fine-tuned
    strategy: str = "prism"  # whose per-device programs the training runs through
    devices: int = 2  # P
    cr: float | None = None  # prism: compression rate ...
    segments: int | None = None  # ... or Segment Means per partition
    # head (refit the head on features under the strategy), last:K, all; language models:
    # last:K or lora:R (rank-R adapters on every block's projections)
    mode: str = "head"
    dataset: str | None = None  # None: the base model's own
    # training examples, the train split's first: every one of a small split (MNIST-5k's
    # 4,000, Rotten Tomatoes' 3,893; a language model: every window of its text but the
    # validation ones), the first 5,000 of a larger one
    train_limit: int = 5000
    steps: int = 200  # last:K / all: optimiser steps
    lr: float = 1e-5  # last:K / all: learning rate (AdamW: 1e-4 diverged on dinov2-small)
    batch: int = 16  # last:K / all: examples a step
    optimizer: str = "adamw"  # last:K / all: adamw or sgd
    seed: int = 0  # data order

    def options(self) -> dict[str, Any]:
        return {k: v for k, v in (("cr", self.cr), ("segments", self.segments))
                if v is not None}

    def last_blocks(self) -> int | None:
        """K of last:K (None for head and all)."""
        m = MODE.match(self.mode)
        return int(m.group(2)) if m and m.group(2) else None

    def lora_rank(self) -> int | None:
        """R of lora:R (None for the other modes)."""
        m = MODE.match(self.mode)
        return int(m.group(3)) if m and m.group(3) else None


SUFFIXES = {"steps": "s", "lr": "lr", "batch": "b", "train_limit": "n", "seed": "seed"}
DEFAULTS = FinetuneRun("")


def check(tuning: FinetuneRun) -> None:
    if not MODE.match(tuning.mode):
        raise ValueError(f"mode must be head, last:K, all or lora:R, got {tuning.mode!r}")
    if tuning.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
    if (tuning.strategy == "single") != (tuning.devices == 1):
        raise ValueError("single runs on 1 device, the other strategies on 2 or more")


def tuned_name(tuning: FinetuneRun) -> str:
    parts = [tuning.strategy, f"p{tuning.devices}"]
    parts += [f"m{tuning.segments}"] if tuning.segments else []
    parts += [f"cr{tuning.cr:g}"] if tuning.cr else []
    parts.append(tuning.mode.replace(":", ""))
    parts += [f"{short}{_number(getattr(tuning, f))}" for f, short in SUFFIXES.items()
              if getattr(tuning, f) != getattr(DEFAULTS, f)]
    parts += [tuning.optimizer] if tuning.optimizer != DEFAULTS.optimizer else []
    tail = f"+{tuning.dataset}" if tuning.dataset else ""
    return f"{tuning.base}@{'-'.join(parts)}{tail}"


def _number(v: float) -> str:
    """Without an exponent (a name's parts are split at "-")."""
    return f"{v:.12f}".rstrip("0").rstrip(".")


def is_tuned(name: str) -> bool:
    return "@" in name or (name.endswith(".safetensors") and Path(name).is_file())


def parse(name: str) -> FinetuneRun:
    """The fine-tuning run a name (or a weights file's sidecar) stands for."""
    if name.endswith(".safetensors"):
        return FinetuneRun(**json.loads(Path(name).with_suffix(".json").read_text())["spec"])
    base, _, rest = name.partition("@")
    rest, _, dataset = rest.partition("+")
    tokens = rest.split("-")
    if len(tokens) < 3 or not re.fullmatch(r"p[0-9]+", tokens[1]):
        raise ValueError(f"{name}: a fine-tuned model is BASE@STRATEGY-pP[-mL|-crX]-MODE..., "
                         f"e.g. dinov2-small@prism-p3-m10-head")
    fields: dict[str, Any] = {"base": base, "strategy": tokens[0], "devices": int(tokens[1][1:]),
                              "dataset": dataset or None}
    for t in tokens[2:]:
        _read_token(name, t, fields)
    tuning = FinetuneRun(**fields)
    check(tuning)
    return tuning


def _read_token(name: str, t: str, fields: dict[str, Any]) -> None:
    if re.fullmatch(r"m[0-9]+", t):
        fields["segments"] = int(t[1:])
    elif re.fullmatch(r"cr[0-9.]+", t):
        fields["cr"] = float(t[2:])
    elif t in ("head", "all") or re.fullmatch(r"(last|lora)[0-9]+", t):
        fields["mode"] = t if t in ("head", "all") else f"{t[:4]}:{t[4:]}"
    elif t in OPTIMIZERS:
        fields["optimizer"] = t
    else:
        for f, short in sorted(SUFFIXES.items(), key=lambda kv: -len(kv[1])):
            if re.fullmatch(rf"{short}[0-9.]+", t):
                kind = type(getattr(DEFAULTS, f))
                fields[f] = kind(float(t[len(short):]))
                return
        raise ValueError(f"{name}: unknown part {t!r} of a fine-tuned model's name")


def key(tuning: FinetuneRun, base_hash: str) -> str:
    trained = tuning.last_blocks() is not None or tuning.mode == "all"
    blob = json.dumps({"spec": dataclasses.asdict(tuning), "base": base_hash,
                       "format": FORMAT, **({"blocks": BLOCKS_FORMAT} if trained else {})},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def weights_path(tuning: FinetuneRun, base_hash: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._+-]", "_", tuned_name(tuning))
    return cache_root() / "finetuned" / f"{slug}-{key(tuning, base_hash)}.safetensors"


def command_args(tuning: FinetuneRun) -> str:
    """The ``prismsim finetune`` options that make ``tuning``."""
    out = [f"--model {tuning.base}", f"--strategy {tuning.strategy}", f"--devices {tuning.devices}"]
    out += [f"--segments {tuning.segments}"] if tuning.segments else []
    out += [f"--cr {tuning.cr:g}"] if tuning.cr else []
    out.append(f"--mode {tuning.mode}")
    flags = {"dataset": "--dataset", "train_limit": "--train-limit", "steps": "--steps",
             "lr": "--lr", "batch": "--batch", "optimizer": "--optimizer", "seed": "--seed"}
    out += [f"{flag} {getattr(tuning, f)}" for f, flag in flags.items()
            if getattr(tuning, f) != getattr(DEFAULTS, f)]
    return " ".join(out)
