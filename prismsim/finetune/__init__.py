"""Fine-tuning under a strategy (the paper's answer to PRISM's accuracy cost): the model
is trained through the strategy's per-device programs, so the gradient sees the Segment
Means, the scaling-aware softmax and the partition-aware mask exactly as inference does.

Modes: ``head`` computes the features the classifier reads under the strategy (one
forward pass over the training examples) and refits the linear head on them
(multinomial logistic regression, L-BFGS, as the shipped heads were fitted, starting from
the model's own head): a seeded fifth of the training examples is held out to choose the
L2 strength and to judge, and the model's own head is kept unless the refitted one is
better on them (``models/heads.py``'s ``choose_head``; the sidecar says which);
``last:K`` trains the last K blocks, the final norm and the head; ``all`` every
parameter (``blocks.py``: the learning rate chosen, early stopping and the base kept on
the same held-out fifth); language models: ``language.py``. The result (the trained
parameters only, safetensors) is cached under a key of everything it depends on
(``models/tuned.py``), and the model is then addressable by its name.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from prismsim.accuracy import batches
from prismsim.datasets import Dataset, dataset
from prismsim.executors.memory import run_numerics
from prismsim.finetune.blocks import Blocks, classifier, train_blocks
from prismsim.finetune.checkpoint import drop_checkpoint, save
from prismsim.finetune.language import Run, finetune_lm, is_language_model
from prismsim.models.catalog import PRETRAINED
from prismsim.models.heads import choose_head
from prismsim.models.load import load_model, state_hash
from prismsim.models.stack import ModelStack
from prismsim.models.tuned import FinetuneRun, check, weights_path
from prismsim.progress import Progress


def train_data(tuning: FinetuneRun) -> Dataset:
    """The first ``train_limit`` examples of the train split (never the test split)."""
    own = PRETRAINED[tuning.base].dataset if tuning.base in PRETRAINED else None
    name = tuning.dataset or own
    if name is None:
        raise ValueError(f"give a dataset to fine-tune {tuning.base!r} on")
    data = dataset(name, "train").head(tuning.train_limit)
    if data.kind not in ("image", "text"):
        raise ValueError(f"{name}: fine-tuning trains classifiers (image or text data), "
                         f"not {data.kind}")
    return data


def finetune(tuning: FinetuneRun, progress: Progress) -> Path:
    """Train (or find trained) ``tuning``; the weights file's path."""
    check(tuning)
    stack = load_model(tuning.base)
    path = weights_path(tuning, state_hash(stack.hf))
    if path.exists():
        return path
    meta: dict = {"spec": dataclasses.asdict(tuning)}
    if is_language_model(stack):
        state, meta["validation"] = finetune_lm(Run(stack, tuning, path, progress))
    elif tuning.lora_rank() is not None:
        raise ValueError(f"{tuning.base}: lora:R fine-tunes language models; a classifier "
                         f"takes head, last:K or all")
    elif tuning.mode == "head":
        state, meta["validation"] = fit_head(stack, tuning, train_data(tuning), progress)
    else:
        run = Blocks(stack, tuning, train_data(tuning), progress, path)
        state, meta["validation"] = train_blocks(run)
    save(path, state, meta)
    drop_checkpoint(path)
    return path


def features(stack: ModelStack, tuning: FinetuneRun, data: Dataset, progress: Progress
             ) -> tuple[Tensor, Tensor]:
    """What the classifier reads under the strategy, for every example, and the labels."""
    _, clf = classifier(stack)
    seen: list[Tensor] = []
    hook = clf.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    labels = []
    try:
        for inputs, target in batches(tuning.base, data, tuning.batch):
            run_numerics(stack, inputs, tuning.strategy, tuning.devices, **tuning.options())
            labels.append(torch.as_tensor(np.asarray(target)))
            progress(f"features of {sum(len(t) for t in labels)}/{len(data)} examples",
                     len(labels[-1]))
    finally:
        hook.remove()
    return torch.cat(seen), torch.cat(labels)  # [n, features], [n]


def fit_head(stack: ModelStack, tuning: FinetuneRun, data: Dataset, progress: Progress
             ) -> tuple[dict[str, Tensor], dict]:
    """The head to keep (refitted, or the model's own) and what decided it."""
    x, y = features(stack, tuning, data, progress)
    name, base = classifier(stack)
    choice = choose_head(x, y, len(data.classes), base, seed=tuning.seed)
    report = {"n_validation": choice.n_validation, "before": choice.before,
              "after": choice.after, "l2": choice.l2, "kept_base": choice.kept_base}
    return {f"{name}.weight": choice.head.weight, f"{name}.bias": choice.head.bias}, report


def validation_report(path: Path) -> dict | None:
    """What a head fine-tuning's validation decided (its weights file's sidecar); None
    for other modes."""
    sidecar = path.with_suffix(".json")
    return json.loads(sidecar.read_text()).get("validation") if sidecar.exists() else None
