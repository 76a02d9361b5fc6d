"""Perplexity of teacher-forced decoding after a partitioned prefill: smollm2-135m on K
consecutive, non-overlapping windows of held-out Wikipedia XML, each M prompt tokens then
G continuation tokens. The prompt is prefilled by the strategy on P devices, the
continuation decoded token by token with teacher forcing; the G continuation tokens are
scored (natural-log NLL per token, perplexity, bits per token). One device against prism
at CR 2, 4, 8 on P = 2 and 3 (decoding over its own rows and the earlier partitions'
Segment Means), with a seeded 95 % bootstrap interval over windows of the paired
difference in mean NLL vs one device. Voltage at P = 2 on the first window(s) is checked
to equal one device. Prints a Markdown table; per-window figures go to a CSV, from which
``--redraw`` prints the table again without running the model.

    .venv/bin/python scripts/decode_perplexity.py --windows 20

``--model`` takes a fine-tuned model (``prismsim finetune --model smollm2-135m ...``);
``--against`` another run's CSV prints each config's paired difference from it.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path

import click
import numpy as np
import torch
from torch import Tensor

from prismsim.accuracy import decode_windows
from prismsim.datasets import wiki_bytes
from prismsim.executors.memory import run_generation
from prismsim.metrics import bits_per_byte, ratio_bootstrap
from prismsim.models.load import load_model
from prismsim.models.stack import ModelStack

MODEL = "smollm2-135m"
Config = tuple[str, int, int]  # (strategy, devices, cr; 0: no cr)
SINGLE: Config = ("single", 1, 0)
CHECK: Config = ("voltage", 2, 0)
FIELDS = ("strategy", "devices", "cr", "window", "mean_nll", "tokens", "bytes")
CHECK_REL = 1e-4  # voltage vs single, relative, on the mean NLL


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def window_nll(stack: ModelStack, ids: Tensor, prompt: int, config: Config) -> Tensor:
    """Mean NLL (nats) per continuation token of each window of ids [B, prompt + G]: the
    prompt prefilled by the strategy, the rest teacher-forced decoded. Returns [B]."""
    strategy, devices, cr = config
    options = {"cr": cr} if cr else {}
    forced = ids[:, prompt:]  # [B, G]
    out = run_generation(stack, ids[:, :prompt], forced.shape[1], strategy, devices,
                         forced=forced, **options)
    logp = torch.log_softmax(out.logits.double(), dim=-1)  # [B, G, V]
    nll = -logp.gather(-1, forced.unsqueeze(-1)).squeeze(-1)  # [B, G]
    return nll.mean(dim=1)


def label(config: Config) -> str:
    strategy, devices, cr = config
    return f"{strategy} P={devices}" + (f" CR={cr}" if cr else "")


def measure(stack: ModelStack, windows: Tensor, prompt: int, configs: list[Config],
            batch: int, check: int, csv_path: Path, n_bytes: list[int]) -> list[dict]:
    """Every config on every window, ``batch`` windows a call, the voltage check first;
    the CSV rewritten after each batch (a partial run keeps what it measured)."""
    rows: list[dict] = []
    start = time.perf_counter()
    todo = [(c, windows[i:i + batch], i) for i in range(0, len(windows), batch)
            for c in configs]
    if check:  # right after one device has run the windows it is checked on
        todo.insert((check - 1) // batch * len(configs) + 1, (CHECK, windows[:check], 0))
    for n, (config, ids, first) in enumerate(todo, 1):
        t0 = time.perf_counter()
        nll = window_nll(stack, ids, prompt, config)
        rows += [dict(zip(FIELDS, (*config, first + k, float(v), ids.shape[1] - prompt,
                                   n_bytes[first + k]), strict=True))
                 for k, v in enumerate(nll)]
        write_csv(rows, csv_path)
        log(f"[{n}/{len(todo)}] {label(config)} windows {first}-{first + len(ids) - 1}: "
            f"mean NLL {nll.mean():.4f} ({time.perf_counter() - t0:.1f} s, "
            f"{time.perf_counter() - start:.0f} s in all)")
        if config == CHECK:
            log(check_voltage(by_config(rows)))
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return [dict(r, devices=int(r["devices"]), cr=int(r["cr"]), window=int(r["window"]),
                     mean_nll=float(r["mean_nll"]), tokens=int(r["tokens"]),
                     bytes=int(r["bytes"]))
                for r in csv.DictReader(f)]


def by_config(rows: list[dict]) -> dict[Config, dict[int, float]]:
    """{config: {window: mean NLL}}, in the order configs first appear."""
    out: dict[Config, dict[int, float]] = {}
    for r in rows:
        out.setdefault((r["strategy"], r["devices"], r["cr"]), {})[r["window"]] = r["mean_nll"]
    return out


def check_voltage(table: dict[Config, dict[int, float]]) -> str:
    """Voltage's mean NLL over its windows against one device's on the same windows."""
    volt, single = table[CHECK], table[SINGLE]
    a = np.mean(list(volt.values()))
    b = np.mean([single[w] for w in volt])
    rel = abs(a - b) / abs(b)
    assert rel <= CHECK_REL, f"voltage P=2 mean NLL {a:.6f} != single {b:.6f} (rel {rel:.2e})"
    return (f"check: voltage P=2 on {len(volt)} window(s): mean NLL {a:.6f} vs single "
            f"{b:.6f} (relative difference {rel:.1e} <= {CHECK_REL:g})")


def per_byte(rows: list[dict]) -> dict[Config, float]:
    """Bits per UTF-8 byte of the continuations, per config: all its windows' nats over
    their bytes."""
    nats: dict[Config, float] = {}
    n_bytes: dict[Config, int] = {}
    for r in rows:
        c = (r["strategy"], r["devices"], r["cr"])
        nats[c] = nats.get(c, 0.0) + r["mean_nll"] * r["tokens"]
        n_bytes[c] = n_bytes.get(c, 0) + r["bytes"]
    return {c: bits_per_byte(nats[c], n_bytes[c]) for c in nats}


def summary_row(config: Config, nll: dict[int, float], single: dict[int, float],
                resamples: int, seed: int, bpb: float) -> str:
    """One Markdown row: mean NLL, bits and perplexity over the config's windows, and the
    paired difference vs one device on the same windows with its bootstrap interval."""
    windows = sorted(nll)
    own = np.array([nll[w] for w in windows])
    diff = own - np.array([single[w] for w in windows])  # [K] per-window paired differences
    low, high = ratio_bootstrap(diff, np.ones_like(diff), resamples, seed)
    mean, delta = float(own.mean()), float(diff.mean())
    strategy, devices, cr = config
    cells = [strategy, str(devices), str(cr or "-"), str(len(windows)), f"{mean:.4f}",
             f"{mean / math.log(2):.4f}", f"{bpb:.4f}", f"{math.exp(mean):.3f}"]
    if config == SINGLE:
        cells += ["-", "-", "-", "-"]
    else:
        cells += [f"{delta:+.4f}", f"[{low:+.4f}, {high:+.4f}]", f"{math.exp(delta):.3f}",
                  f"{int((diff > 0).sum())}/{len(diff)}"]
    return "| " + " | ".join(cells) + " |"


def table(rows: list[dict], resamples: int, seed: int) -> str:
    """The Markdown table of every config in ``rows`` (one device first), and the check."""
    configs = by_config(rows)
    tokens = ", ".join(str(t) for t in sorted({r["tokens"] for r in rows}))
    bpb = per_byte(rows)
    head = ("| strategy | P | CR | windows | mean NLL (nats/token) | bits/token | bits/byte "
            "| perplexity | ΔNLL vs single | 95 % CI (bootstrap) | PPL ratio | windows worse |"
            "\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head] + [summary_row(c, nll, configs[SINGLE], resamples, seed, bpb[c])
                      for c, nll in configs.items() if c != CHECK]
    if CHECK in configs:
        lines.append("\n" + check_voltage(configs))
    lines.append(f"\n{tokens} continuation tokens a window; ΔNLL: mean over windows of the "
                 f"per-window difference; CI: {resamples} window resamples, seed {seed}")
    return "\n".join(lines)


def against_table(rows: list[dict], other: list[dict], resamples: int, seed: int) -> str:
    """Each config of ``rows`` against the same config of ``other`` (another model's run)
    on the windows both scored: the paired difference in mean NLL with its interval."""
    mine, theirs = by_config(rows), by_config(other)
    lines = ["| strategy | P | CR | windows | perplexity | other's | ΔNLL | 95 % CI (bootstrap) "
             "| windows better |", "|---|---|---|---|---|---|---|---|---|"]
    for config in [c for c in mine if c in theirs and c != CHECK]:
        windows = sorted(set(mine[config]) & set(theirs[config]))
        own = np.array([mine[config][w] for w in windows])
        ref = np.array([theirs[config][w] for w in windows])
        low, high = ratio_bootstrap(own - ref, np.ones_like(own), resamples, seed)
        strategy, devices, cr = config
        lines.append(f"| {strategy} | {devices} | {cr or '-'} | {len(windows)} | "
                     f"{math.exp(own.mean()):.3f} | {math.exp(ref.mean()):.3f} | "
                     f"{(own - ref).mean():+.4f} | [{low:+.4f}, {high:+.4f}] | "
                     f"{int((own < ref).sum())}/{len(windows)} |")
    return "\n".join(lines)


@click.command()
@click.option("--windows", "-k", "count", default=20, show_default=True, help="windows K")
@click.option("--prompt-tokens", "-m", "prompt", default=512, show_default=True,
              help="prompt tokens M a window (prefilled)")
@click.option("--generate", "-g", "generate", default=128, show_default=True,
              help="continuation tokens G a window (teacher-forced decoding, scored)")
@click.option("--devices", "-p", multiple=True, type=int, default=(2, 3), show_default=True)
@click.option("--cr", "crs", multiple=True, type=int, default=(2, 4, 8), show_default=True)
@click.option("--batch", default=4, show_default=True, help="windows a run_generation call")
@click.option("--check-windows", "check", default=1, show_default=True,
              help="first windows voltage P=2 runs on, checked against one device (0: none)")
@click.option("--resamples", default=2000, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--csv", "csv_path", type=click.Path(path_type=Path),
              default=Path("results/decode_perplexity.csv"), show_default=True)
@click.option("--redraw", is_flag=True, help="print the table from --csv, run nothing")
@click.option("--model", default=MODEL, show_default=True,
              help="a causal LM with a tokenizer, fine-tuned ones included (NAME@...)")
@click.option("--against", type=click.Path(exists=True, path_type=Path), default=None,
              help="another run's CSV (e.g. the base model's): paired differences per config")
def main(count: int, prompt: int, generate: int, devices: tuple[int, ...],
         crs: tuple[int, ...], batch: int, check: int, resamples: int, seed: int,
         csv_path: Path, redraw: bool, model: str, against: Path | None) -> None:
    torch.set_num_threads(1)  # a shared 2-core machine
    if not redraw:
        configs = [SINGLE] + [("prism", p, cr) for p in devices for cr in crs]
        windows, n_bytes = decode_windows(model, wiki_bytes("test"), prompt + generate,
                                          prompt, count)
        log(f"{model}: {count} windows of {prompt} + {generate} tokens; {len(configs)} "
            f"configs")
        measure(load_model(model), windows, prompt, configs, batch, min(check, count),
                csv_path, n_bytes)
        log(f"per-window figures: {csv_path}")
    click.echo(table(read_csv(csv_path), resamples, seed))
    if against:
        click.echo(f"\nagainst {against}:\n")
        click.echo(against_table(read_csv(csv_path), read_csv(against), resamples, seed))


if __name__ == "__main__":
    main()
