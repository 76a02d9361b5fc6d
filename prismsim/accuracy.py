"""Accuracy of a strategy on real data: task metric and fidelity to the exact model,
cached on disk (model + weights hash, dataset + split + limit, strategy, P, options).

A causal LM that decodes (``decode=(prompt, generate)``) is scored as it decodes: on
windows of prompt + generate tokens of the held-out text, the prompt prefilled under the
strategy and the continuation teacher-forced decoded by the last device
(``run_forced_decoding``), in bits per byte of the continuation: what
``scripts/decode_perplexity.py`` measures token by token."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from transformers import AutoImageProcessor, AutoTokenizer

import prismsim
from prismsim import datasets as ds
from prismsim.cache_dir import cache_root
from prismsim.configuration import command_configurations, grid_frame, prism_settings
from prismsim.executors.memory import run_forced_decoding, run_numerics
from prismsim.metrics import (
    METRICS,
    bits_per_byte,
    kl_per_position,
    ratio_bootstrap,
    top1_agreement,
    wilson_interval,
)
from prismsim.models import tuned
from prismsim.models.catalog import BUILTINS, PRETRAINED, PretrainedEntry
from prismsim.models.load import load_model, state_hash
from prismsim.models.pretrained import TOKENIZERS, byte_windows, image_pixels, token_windows
from prismsim.models.stack import ModelStack
from prismsim.progress import Progress
from prismsim.strategies import SKIPPED, stack_heads, why_not

RESULT_FORMAT = 3  # what a cached result holds (2: n_examples and the 95 % interval; 3: KL's)
HUB_LM_TOKENS = 1024  # GPT-2's context: a hub LM's cloze texts keep their last 1,024 tokens


class LmTarget(NamedTuple):
    """A language model's windows [windows, n] and the bytes each one's scored positions
    1..n-1 stand for (bits per byte divide by them)."""

    ids: torch.Tensor
    n_bytes: list[int]


class ClozeOption(NamedTuple):
    """One cloze option as model input: ids [1, n], the first scored position, the example
    it belongs to and that example's answer (option index)."""

    ids: torch.Tensor
    start: int
    example: int
    label: int


@functools.cache
def _model(name: str) -> ModelStack:
    return load_model(name)


@functools.cache
def weights_hash(name: str) -> str:
    """sha256 of every parameter and buffer, in state-dict order."""
    return state_hash(_model(name).hf)


@functools.cache
def _tokenizer(name: str) -> Any:
    """A built-in model's own tokenizer (``pretrained.TOKENIZERS``), else the hub's."""
    load = TOKENIZERS.get(name)
    return load() if load else AutoTokenizer.from_pretrained(name)


def batches(model: str, data: ds.Dataset, batch: int) -> Iterator[tuple[dict, Any]]:
    """Model inputs and their targets, ``batch`` examples at a time (text and cloze
    candidates: one at a time, unpadded, as the strategies take unpadded sequences). A
    fine-tuned model reads its base model's inputs."""
    model = tuned.parse(model).base if tuned.is_tuned(model) else model
    entry = PRETRAINED.get(model)
    if data.kind == "image":
        pixels = _pixels(model, entry)
        for i in range(0, len(data.examples), batch):
            yield {"pixel_values": pixels(data.examples[i:i + batch])}, data.labels[i:i + batch]
    elif data.kind == "text":
        tok = _tokenizer(model)
        for text, label in zip(data.examples, data.labels, strict=True):
            parts = (text,) if isinstance(text, str) else tuple(text)  # sentence pairs
            enc = tok(*parts, truncation=True, max_length=256, return_tensors="pt")
            yield {k: v for k, v in enc.items() if k != "attention_mask"}, np.array([label])
    elif data.kind == "cloze":
        yield from _cloze_batches(model, data, entry)
    elif entry is not None and entry.kind == "bytes":
        windows = byte_windows(data.examples, entry.tokens)
        for i in range(0, len(windows), batch):
            rows = windows[i:i + batch]  # [windows, tokens]
            yield {"input_ids": rows}, LmTarget(rows, [entry.tokens - 1] * len(rows))
    else:  # a token LM reads each 256-byte window through its tokenizer, unpadded
        for ids, n_bytes in token_windows(_tokenizer(model), data.examples,
                                            ds.BYTE_WINDOW):
            yield {"input_ids": ids}, LmTarget(ids, [n_bytes])


def _encoder(model: str, entry: PretrainedEntry | None) -> Callable[[str], list[int]]:
    """Text -> token ids: UTF-8 bytes for a built-in byte model, else the model's tokenizer."""
    if entry is not None and entry.kind == "bytes":
        return lambda text: list(text.encode("utf-8"))
    tok = _tokenizer(model)
    return lambda text: tok(text, add_special_tokens=False)["input_ids"]


def cloze_input(prefix: list[int], span: list[int], max_tokens: int) -> tuple[torch.Tensor, int]:
    """The last ``max_tokens`` ids of prefix + span as [1, n], and the first position to
    score: where the span starts after truncation, at least 1 (position 0 has no prediction)."""
    ids = (prefix + span)[-max_tokens:]
    return torch.tensor([ids]), max(len(ids) - len(span), 1)


def span_logprob(logits: torch.Tensor, ids: torch.Tensor, start: int) -> float:
    """Summed log-probability of ids[0, start:], each given the tokens before it."""
    logp = torch.log_softmax(logits[0, start - 1:-1].double(), dim=-1)
    return float(logp.gather(-1, ids[0, start:, None]).sum())


def _cloze_batches(model: str, data: ds.Dataset, entry: PretrainedEntry | None
                   ) -> Iterator[tuple[dict, ClozeOption]]:
    """One unpadded sequence per option: context + question with the option filled in."""
    encode = _encoder(model, entry)
    max_tokens = entry.tokens if entry is not None else HUB_LM_TOKENS
    for i, (example, label) in enumerate(zip(data.examples, data.labels, strict=True)):
        for context, scored in example.candidates():
            ids, start = cloze_input(encode(context), encode(scored), max_tokens)
            yield {"input_ids": ids}, ClozeOption(ids, start, i, int(label))


def _pixels(model: str, entry: PretrainedEntry | None) -> Callable[[Any], torch.Tensor]:
    """Built-ins: our grayscale preprocessing (at the model's own input size, for the
    seeded-weight ones too); hub checkpoints: their own image processor."""
    if entry is not None:
        return lambda images: image_pixels(images, entry.image_size)
    if model in BUILTINS:
        size = int(_model(model).hf.config.image_size)
        return lambda images: image_pixels(images, size)
    processor = AutoImageProcessor.from_pretrained(model)
    return lambda images: processor(images=[im.convert("RGB") for im in images],
                                    return_tensors="pt")["pixel_values"]


def _lm_nats(logits: torch.Tensor, ids: torch.Tensor) -> list[float]:
    """Each window's summed cross-entropy (nats) of ids [windows, n] under the logits
    [windows, n, V] that predict them."""
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                           ids.reshape(-1), reduction="none")
    return ce.view(ids.shape[0], -1).sum(1).tolist()  # [windows]


class _Tally:
    """Running metric and fidelity over batches."""

    def __init__(self, kind: str):
        self.kind, self.preds, self.labels = kind, [], []
        self.agree, self.n_pos = 0.0, 0
        self.unit_kl: list[float] = []  # each example's (window's) KL summed over positions
        self.unit_positions: list[int] = []  # the positions each unit has
        self.window_nats: list[float] = []  # bytes: each window's summed cross-entropy
        self.window_bytes: list[int] = []  # bytes: what each window's predictions cover
        self.scores: dict[int, list[float]] = {}  # cloze: example -> score of each option
        self.answers: dict[int, int] = {}

    def add(self, out: torch.Tensor, ref: torch.Tensor, target: Any) -> None:
        out_np, ref_np = out.float().numpy(), ref.float().numpy()
        n = int(np.prod(out_np.shape[:-1]))
        self.agree += top1_agreement(out_np, ref_np) * n
        kl = kl_per_position(out_np, ref_np).reshape(out_np.shape[0], -1)  # [units, positions]
        self.unit_kl += kl.sum(1).tolist()
        self.unit_positions += [kl.shape[1]] * kl.shape[0]
        self.n_pos += n
        if self.kind == "bytes":  # positions 1..n-1, each predicted by the one before
            self.window_nats += _lm_nats(out[:, :-1], target.ids[:, 1:])
            self.window_bytes += target.n_bytes
        elif self.kind == "decode":  # the continuation, predicted by the logits given
            self.window_nats += _lm_nats(out, target.ids)
            self.window_bytes += target.n_bytes
        elif self.kind == "cloze":
            score = span_logprob(out, target.ids, target.start)
            self.scores.setdefault(target.example, []).append(score)
            self.answers[target.example] = target.label
        else:
            self.preds.append(out_np.argmax(-1))
            self.labels.append(np.asarray(target))

    def result(self, metric: str) -> dict[str, Any]:
        """The metric, its sample size and 95 % interval (accuracy: Wilson's; bits per
        byte: a bootstrap over windows; other metrics: none), and the fidelity (mean KL
        with a bootstrap interval over examples, or windows)."""
        if self.kind in ("bytes", "decode"):
            nats = np.asarray(self.window_nats)  # [windows]
            covered = np.asarray(self.window_bytes, dtype=float)  # [windows]
            n, value = len(nats), bits_per_byte(float(nats.sum()), int(covered.sum()))
            low, high = ratio_bootstrap(nats, covered * math.log(2))
        else:
            pred, labels = self._predictions()
            value, n = METRICS[metric](pred, labels), len(labels)
            low, high = (wilson_interval(int(np.sum(pred == labels)), n)
                         if metric == "accuracy" else (math.nan, math.nan))
        return {"metric": metric, "value": value, "top1_agreement": self.agree / self.n_pos,
                **self._kl(), "n_positions": self.n_pos,
                "n_examples": n, "ci95_low": low, "ci95_high": high}

    def _kl(self) -> dict[str, float]:
        """Mean KL over positions and its 95 % bootstrap interval over examples (windows)."""
        kl, positions = np.asarray(self.unit_kl), np.asarray(self.unit_positions, float)
        low, high = ratio_bootstrap(kl, positions)
        return {"mean_kl": float(kl.sum() / positions.sum()), "mean_kl_ci95_low": low,
                "mean_kl_ci95_high": high}

    def _predictions(self) -> tuple[np.ndarray, np.ndarray]:
        """(predicted, true) labels; a cloze example predicts its best-scored option."""
        if self.kind == "cloze":
            examples = sorted(self.scores)
            return (np.array([int(np.argmax(self.scores[e])) for e in examples]),
                    np.array([self.answers[e] for e in examples]))
        return np.concatenate(self.preds), np.concatenate(self.labels)


def _key(**fields: Any) -> str:
    blob = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


_REFERENCE: dict[tuple, list[torch.Tensor]] = {}  # exact outputs of small-output tasks


def _outputs(stack: ModelStack, model: str, data: ds.Dataset, strategy: str, devices: int,
             batch: int, options: dict[str, Any]) -> Iterator[tuple[torch.Tensor, torch.Tensor,
                                                                  Any]]:
    """(strategy output, exact output, target) per batch. Exact outputs of classifiers are
    kept in memory for the next strategy; a language model's are recomputed (they are large)."""
    key = (model, data.name, data.split, len(data.examples), batch)
    keep = data.kind in ("image", "text")
    refs = _REFERENCE.get(key, []) if keep else []
    fresh = []
    for i, (inputs, target) in enumerate(batches(model, data, batch)):
        ref = refs[i] if i < len(refs) else stack.reference(inputs)
        fresh.append(ref)
        out = ref if strategy == "single" else run_numerics(stack, inputs, strategy, devices,
                                                             **options)
        yield out, ref, target
    if keep:
        _REFERENCE[key] = fresh


def evaluate(model: str, dataset: str, strategy: str = "single", devices: int = 1, *,
             split: str = "test", limit: int | None = None, batch: int = 32,
             use_cache: bool = True, decode: tuple[int, int] | None = None,
             **options: Any) -> dict[str, Any]:
    """Task metric of ``strategy`` on ``devices``, and its top-1 agreement and mean KL
    divergence against the exact single-device model, on the first ``limit`` examples
    (byte datasets: ``limit`` windows; cloze: ``limit`` examples, each option one forward
    whatever ``batch`` is). ``decode``: (prompt, generated) tokens of a decoding causal
    LM on a byte dataset, scored on ``limit`` windows of that many tokens (None: all)."""
    data = ds.dataset(dataset, split)
    point = {"model": model, "dataset": dataset, "split": split, "limit": limit,
             "strategy": strategy, "devices": devices, "options": options,
             **({"decode": list(decode)} if decode else {})}
    key = _key(**point, weights=weights_hash(model), version=prismsim.__version__,
               format=RESULT_FORMAT)
    path = cache_root() / "accuracy" / f"{key}.json"
    if use_cache and path.exists():
        return json.loads(path.read_text())
    stack, start = _model(model), time.perf_counter()
    if decode:
        tally, outputs = _Tally("decode"), _decode_outputs(stack, model, data, strategy,
                                                            devices, decode, limit, options)
    else:
        data = data.head(limit)
        tally = _Tally(data.kind)
        outputs = _outputs(stack, model, data, strategy, devices, batch, options)
    with torch.no_grad():
        for out, ref, target in outputs:
            tally.add(out, ref, target)
    result = {**point, **tally.result(data.metric), "seconds": time.perf_counter() - start,
              "accuracy_source": _source(model, data) + _decoded(decode, tally)}
    _store(path, result)
    return result


def decode_windows(model: str, text: bytes, length: int, prompt: int, count: int | None
                   ) -> tuple[torch.Tensor, list[int]]:
    """``count`` consecutive, non-overlapping windows [count, length] of ``length`` tokens
    from the start of ``text`` (None: as many as it holds), tokenized as one text by the
    model's tokenizer, and the UTF-8 bytes each window's continuation (the tokens after
    ``prompt``) decodes to (bits per byte divide by them)."""
    tok = _tokenizer(tuned.parse(model).base if tuned.is_tuned(model) else model)
    windows = torch.from_numpy(ds.token_windows(text, tok, count, length))
    return windows, [len(tok.decode(w[prompt:].tolist()).encode()) for w in windows]


def _decode_outputs(stack: ModelStack, model: str, data: ds.Dataset, strategy: str,
                    devices: int, decode: tuple[int, int], limit: int | None,
                    options: dict[str, Any]) -> Iterator[tuple[torch.Tensor, torch.Tensor,
                                                               LmTarget]]:
    """(strategy's, exact) logits of each window's continuation and its ids and bytes."""
    if data.kind != "bytes" or not stack.causal:
        raise ValueError(f"decoding is scored for a causal language model on text (wiki-xml, "
                         f"hamlet, ...), not {stack.name} on {data.name}")
    prompt, generate = decode
    windows, n_bytes = decode_windows(model, data.examples, prompt + generate, prompt, limit)
    for w, n in zip(windows, n_bytes, strict=True):
        ids = w[None]  # [1, prompt + generate]
        ref = stack.reference({"input_ids": ids[:, :-1]})[:, prompt - 1:]  # [1, generate, V]
        out = ref if strategy == "single" else run_forced_decoding(
            stack, ids, prompt, strategy, devices, **options)  # [1, generate, V]
        yield out, ref, LmTarget(ids[:, prompt:], [n])


def _decoded(decode: tuple[int, int] | None, tally: _Tally) -> str:
    if not decode:
        return ""
    return (f"; decoding: {len(tally.window_nats)} windows of {decode[0]} prompt tokens "
            f"prefilled under the strategy, then {decode[1]} teacher-forced, scored")


def _source(model: str, data: ds.Dataset) -> str:
    if tuned.is_tuned(model):
        base = tuned.parse(model).base
        return f"{model}: {base} fine-tuned by prismsim finetune; " + _source(base, data)
    about = PRETRAINED[model].about if model in PRETRAINED else "Hugging Face checkpoint"
    return f"{model}: {about}; data: {data.name} {data.split} ({data.source})"


def _store(path: Any, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)


ACCURACY_COLUMNS = ["model", "dataset", "split", "limit", "strategy", "devices", "cr",
                    "metric", "value", "top1_agreement", "mean_kl", "seconds",
                    "accuracy_source"]


def accuracy_table(model: str, dataset: str | None, strategies: list[str], devices: list[int],
                   crs: list[float], *, split: str = "test", limit: int | None = None,
                   batch: int = 32, progress: Progress | None = None) -> pd.DataFrame:
    """One row a configuration: single once, the others at every P (prism at every CR);
    one the model cannot run (``strategies.why_not``) is a row saying why (``skipped``)."""
    dataset = dataset or (PRETRAINED[model].dataset if model in PRETRAINED else None)
    if dataset is None:
        raise ValueError(f"give --dataset for {model!r}")
    heads, rows = stack_heads(_model(model)), []
    for c in command_configurations(strategies, devices, prism_settings(crs)):
        point = {"model": model, "dataset": dataset, "split": split, "limit": limit,
                 "strategy": c.strategy, "devices": c.devices, "cr": c.cr}
        reason = why_not(c.strategy, c.devices, heads)
        if reason:
            rows.append({**point, SKIPPED: reason})
        else:
            r = evaluate(model, dataset, c.strategy, c.devices, split=split, limit=limit,
                         batch=batch, **c.options())
            rows.append({k: v for k, v in r.items() if k != "options"} | {"cr": c.cr})
        if progress:
            progress(c.label())
    table = grid_frame(rows)
    return table[ACCURACY_COLUMNS + ([SKIPPED] if SKIPPED in table else [])]
