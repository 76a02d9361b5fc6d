"""Fine-tuning a causal language model under a strategy, judged on held-out windows.

A training window is ``PROMPT_TOKENS`` of prompt then ``GENERATE_TOKENS`` of
continuation, as ``scripts/decode_perplexity.py`` scores them: the prompt split over P
devices as the prefill splits it, the continuation decoded by the last device. Teacher-
forced decoding after a row-wise prefill is the same computation as one prefill in which
the last device's partition also holds the continuation (each new row attends to that
device's rows before it and to the earlier partitions' summaries, exactly as a prefill
row does; ``tests/test_finetune_lm.py`` checks the logits agree), so a window trains in
one pass of the strategy's own programs with a graph (``run_forced_decoding``).
Its loss is the decode score's: the mean NLL of the continuation tokens.

Modes: ``lora:R``, rank-R LoRA adapters (``peft``, injected into every block's
projections the programs call, B = 0 at the start so nothing changes) trained with AdamW;
``last:K``, the last K blocks. ``VALIDATION_WINDOWS`` windows after the training ones
(disjoint by index) are scored before training and every ``EVAL_EVERY`` steps; the best
state is kept, training stops after ``PATIENCE`` scores without a better one, and if no
state beats the base model on them the base is kept (the weights file then holds zero
adapters or the base's own blocks) and the sidecar says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, inject_adapter_in_model
from torch import Tensor, nn

from prismsim.datasets import token_windows, wiki_bytes
from prismsim.executors.memory import run_forced_decoding
from prismsim.finetune.scoring import (
    Validation,
    clone,
    keep_best,
    restore_scored,
    save_scored,
)
from prismsim.finetune.steps import optimiser, order
from prismsim.models.pretrained import TOKENIZERS
from prismsim.models.stack import ModelStack
from prismsim.models.tuned import LORA_SCALE, FinetuneRun
from prismsim.progress import Progress

PROMPT_TOKENS = 512  # a window's prompt, prefilled under the strategy (as the decode score)
GENERATE_TOKENS = 128  # its continuation, decoded by the last device
VALIDATION_WINDOWS = 24  # held-out training windows that choose the state kept
EVAL_EVERY = 50  # steps between validation scores
PATIENCE = 3  # scores without a better one before training stops
LORA_TARGETS = ("q", "k", "v", "o", "fc1", "fc2", "up")  # Block projections adapted
DATASETS = ("wiki-xml",)  # text a language model fine-tunes on


def is_language_model(stack: ModelStack) -> bool:
    return stack.causal and stack.embed_ids is not None


def window_loss(stack: ModelStack, tuning: FinetuneRun, ids: Tensor, grad: bool,
                prompt_tokens: int = PROMPT_TOKENS) -> Tensor:
    """Mean NLL (nats) of the continuation tokens of windows ids [B, length] (what the
    decode perplexity scores), computed by the strategy's programs, with a graph if
    ``grad``."""
    logits = run_forced_decoding(stack, ids, prompt_tokens, tuning.strategy, tuning.devices,
                                 grad=grad, **tuning.options())  # [B, G, V]
    return nn.functional.cross_entropy(logits.flatten(0, 1).float(),
                                       ids[:, prompt_tokens:].flatten())


def mean_loss(run: Run, windows: Tensor) -> float:
    """``window_loss`` over ``windows`` one at a time, averaged (no graph)."""
    return float(np.mean([window_loss(run.stack, run.tuning, w[None], False,
                                      run.prompt_tokens).item() for w in windows]))


def lm_windows(text: bytes, tokenizer: object, n_train: int, length: int
               ) -> tuple[Tensor, Tensor]:
    """Training windows [n, length] of ``text`` (n: ``n_train``, or every window it holds
    besides the validation ones) and the validation windows right after them
    [VALIDATION_WINDOWS, length] (disjoint by index)."""
    every = torch.from_numpy(token_windows(text, tokenizer, None, length))  # [all, length]
    room = len(every) - VALIDATION_WINDOWS
    if room < 1:
        raise ValueError(f"the text holds {len(every)} windows of {length} tokens: too few "
                         f"for {VALIDATION_WINDOWS} validation windows and one more")
    n = min(n_train, room)
    return every[:n], every[n:n + VALIDATION_WINDOWS]  # [n, length], [V, length]


def lm_trainable(stack: ModelStack, tuning: FinetuneRun) -> dict[str, nn.Parameter]:
    """What ``tuning`` trains, by name (LoRA adapters injected first); only they require
    gradients afterwards."""
    stack.hf.requires_grad_(False)
    rank, k = tuning.lora_rank(), tuning.last_blocks()
    if rank is not None:
        add_adapters(stack, rank, tuning.seed)
        return {n: p for i, b in enumerate(stack.blocks)
                for n, p in _named(b, f"blocks.{i}.") if "lora_" in n}
    if k is None:
        raise ValueError(f"{stack.name}: a language model fine-tunes with last:K or lora:R, "
                         f"not {tuning.mode}")
    if k > len(stack.blocks):
        raise ValueError(f"{stack.name} has {len(stack.blocks)} blocks, not {k}")
    named = {id(p): n for n, p in stack.hf.named_parameters()}
    chosen = [p for b in stack.blocks[-k:] for p in b.parameters()]
    for p in chosen:
        p.requires_grad_(True)
    return {named[id(p)]: p for p in chosen}


def _named(module: nn.Module, prefix: str) -> list[tuple[str, nn.Parameter]]:
    return [(prefix + n, p) for n, p in module.named_parameters()]


def add_adapters(stack: ModelStack, rank: int, seed: int = 0) -> None:
    """peft LoRA (rank ``rank``, alpha 2 x rank, no dropout) on every block's
    projections: the programs call them, so every strategy runs through the adapters."""
    targets = [t for t in LORA_TARGETS if isinstance(getattr(stack.blocks[0], t), nn.Linear)]
    config = LoraConfig(r=rank, lora_alpha=int(LORA_SCALE * rank), lora_dropout=0.0,
                        target_modules=targets)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # A's random start: the run repeats
        for block in stack.blocks:
            inject_adapter_in_model(config, block)


def adapter_state(stack: ModelStack) -> dict[str, Tensor]:
    """The adapters as ``{hf weight name}.lora_A`` [r, in] and ``.lora_B`` [out, r]: what
    ``models/load.py`` merges into the base weights (W + LORA_SCALE * B @ A)."""
    names = {id(p): n for n, p in stack.hf.named_parameters()}
    out: dict[str, Tensor] = {}
    for block in stack.blocks:
        for t in LORA_TARGETS:
            layer = getattr(block, t, None)
            if layer is None or not hasattr(layer, "lora_A"):
                continue
            weight = names[id(layer.base_layer.weight)]
            out[f"{weight}.lora_A"] = layer.lora_A["default"].weight.detach().clone()
            out[f"{weight}.lora_B"] = layer.lora_B["default"].weight.detach().clone()
    return out


@dataclass
class Run:
    """One LM fine-tuning: the model, what it trains, where it keeps its checkpoint."""

    stack: ModelStack
    tuning: FinetuneRun
    path: Path  # the weights file (the checkpoint beside it)
    progress: Progress
    prompt_tokens: int = PROMPT_TOKENS  # of a window; the rest is its continuation


def train_lm(run: Run, train: Tensor, held: Tensor) -> tuple[dict[str, Tensor], Validation]:
    """Up to ``steps`` optimiser steps of ``batch`` windows in a seeded order, scored on
    ``held`` every EVAL_EVERY steps (a checkpoint then); the best state at the end (the
    initial one where none beat it). Returns what the weights file holds."""
    tuning = run.tuning
    params = lm_trainable(run.stack, tuning)
    initial = clone(params)
    opt = optimiser(tuning, params.values())
    val, done = _resumed(run, params, opt, initial, held)
    windows = order(len(train), tuning)
    for step in range(1, tuning.steps + 1):
        idx = next(windows)
        if step <= done:
            continue
        _step(run, params, opt, train[idx], step)
        scoring = step % EVAL_EVERY == 0 or step == tuning.steps
        if scoring and _scored(run, params, opt, val, held, step, initial):
            break
    keep_best(params, val, initial)
    run.stack.hf.requires_grad_(False)
    return _state(run, params), val


def _step(run: Run, params: dict[str, nn.Parameter], opt: torch.optim.Optimizer,
          ids: Tensor, step: int) -> None:
    loss = window_loss(run.stack, run.tuning, ids, True, run.prompt_tokens)
    opt.zero_grad()
    loss.backward()
    opt.step()
    run.progress(f"step {step}/{run.tuning.steps}: loss {loss.item():.4f}", 1)


def _scored(run: Run, params: dict[str, nn.Parameter], opt: torch.optim.Optimizer,
            val: Validation, held: Tensor, step: int, initial: dict[str, Tensor]) -> bool:
    """Score the held-out windows, checkpoint; whether to stop."""
    val.score(mean_loss(run, held), step, params)
    run.progress(f"validation at step {step}: best mean NLL {val.best:.4f} (step "
                 f"{val.best_step}; {val.before:.4f} before)", 0)
    save_scored(run.path, params, opt, step, val, initial)
    return val.misses >= PATIENCE


def _resumed(run: Run, params: dict[str, nn.Parameter], opt: torch.optim.Optimizer,
             initial: dict[str, Tensor], held: Tensor) -> tuple[Validation, int]:
    """The validation so far and the steps done, from the checkpoint, or the base's
    score and 0."""
    val, done, _ = restore_scored(run.path, params, opt, initial)
    if val is None:
        before = mean_loss(run, held)
        run.progress(f"validation before: mean NLL {before:.4f}", 0)
        return Validation(before=before, best=before), 0
    return val, done


def _state(run: Run, params: dict[str, nn.Parameter]) -> dict[str, Tensor]:
    """The adapters (B = 0 where the base is kept), or the trained blocks' parameters."""
    if run.tuning.lora_rank() is not None:
        return adapter_state(run.stack)
    return {n: p.detach().clone() for n, p in params.items()}


def finetune_lm(run: Run) -> tuple[dict[str, Tensor], dict]:
    """Train ``run`` on its windows: the weights file's tensors and the validation report."""
    if run.tuning.base not in TOKENIZERS:
        raise ValueError(f"{run.tuning.base}: no tokenizer to read "
                         f"{run.tuning.dataset or DATASETS[0]} with; fine-tuning a language "
                         f"model takes one of {', '.join(sorted(TOKENIZERS))}")
    name = run.tuning.dataset or DATASETS[0]
    if name not in DATASETS:
        raise ValueError(f"a language model fine-tunes on {', '.join(DATASETS)}, not {name}")
    train, held = lm_windows(wiki_bytes("train"), TOKENIZERS[run.tuning.base](),
                             run.tuning.train_limit, run.prompt_tokens + GENERATE_TOKENS)
    state, val = train_lm(run, train, held)
    return state, val.report(len(held), "mean_nll")
