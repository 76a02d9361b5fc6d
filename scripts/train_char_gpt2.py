"""Train the small byte-level GPT-2 ("char-gpt2") shipped in prismsim/models/weights/char-gpt2.

Tokens are raw bytes (vocab 256, no tokenizer). Training data is Hamlet plus the first 90 % of
the Wikipedia XML sample; the last 10 % of the XML (``wiki_bytes("test")``) is held out and only
evaluated. Held-out bits per byte: consecutive non-overlapping 256-byte windows (tail dropped),
bytes 1..255 of each window predicted from the preceding bytes, mean cross-entropy / ln 2.

The weights are saved in float16 (GPT2LMHeadModel.save_pretrained, safetensors) and reloaded in
float32 to check that the round trip keeps the held-out bits per byte.

Usage::

    python scripts/train_char_gpt2.py --steps 1400 --seed 0 --threads 1 \
        --out prismsim/models/weights/char-gpt2
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from prismsim.datasets import hamlet_bytes, wiki_bytes

SEQ_LEN = 256
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "prismsim/models/weights/char-gpt2"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1400, help="optimizer steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output model directory")
    p.add_argument("--threads", type=int, default=2,
                   help="torch.set_num_threads (1 is faster on a CPU shared with other jobs)")
    p.add_argument("--batch-size", type=int, default=16, help="random 256-byte windows per step")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--min-lr-ratio", type=float, default=0.1, help="final lr / peak lr")
    p.add_argument("--warmup", type=int, default=100, help="linear warmup steps")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip")
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=192)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--eval-every", type=int, default=200, help="steps between subset evals")
    p.add_argument("--eval-windows", type=int, default=128, help="test windows per subset eval")
    p.add_argument("--log-every", type=int, default=25)
    return p.parse_args(argv)


def make_config(args: argparse.Namespace) -> GPT2Config:
    return GPT2Config(
        vocab_size=256, n_positions=SEQ_LEN, n_embd=args.n_embd, n_layer=args.n_layer,
        n_head=args.n_head, resid_pdrop=args.dropout, embd_pdrop=args.dropout,
        attn_pdrop=args.dropout, bos_token_id=None, eos_token_id=None, pad_token_id=None,
        tie_word_embeddings=True,
    )


def load_data() -> tuple[np.ndarray, np.ndarray]:
    train = np.frombuffer(hamlet_bytes() + wiki_bytes("train"), dtype=np.uint8)
    test = np.frombuffer(wiki_bytes("test"), dtype=np.uint8)
    return train, test


def test_windows(test: np.ndarray) -> torch.Tensor:
    """Consecutive non-overlapping SEQ_LEN-byte windows of the test bytes, tail dropped."""
    n = len(test) // SEQ_LEN
    return torch.from_numpy(test[: n * SEQ_LEN].reshape(n, SEQ_LEN).astype(np.int64))


def sample_batch(train: np.ndarray, rng: np.random.Generator, batch: int) -> torch.Tensor:
    starts = rng.integers(0, len(train) - SEQ_LEN + 1, size=batch)
    idx = starts[:, None] + np.arange(SEQ_LEN)[None, :]
    return torch.from_numpy(train[idx].astype(np.int64))


@torch.no_grad()
def bits_per_byte(model: GPT2LMHeadModel, windows: torch.Tensor, batch: int = 64) -> float:
    """Sum of next-byte cross-entropy (nats) over bytes 1..255 of every window / count / ln 2."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        x = windows[i : i + batch]
        logits = model(input_ids=x).logits[:, :-1].float()
        total += F.cross_entropy(logits.reshape(-1, 256), x[:, 1:].reshape(-1),
                                 reduction="sum").item()
        count += x[:, 1:].numel()
    model.train(was_training)
    return total / count / math.log(2)


def make_optimizer(model: GPT2LMHeadModel, args: argparse.Namespace) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on biases, LayerNorms)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": args.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95))


def lr_at(step: int, args: argparse.Namespace) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio * lr."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    frac = (step - args.warmup) / max(1, args.steps - args.warmup)
    floor = args.lr * args.min_lr_ratio
    return floor + 0.5 * (args.lr - floor) * (1 + math.cos(math.pi * min(frac, 1.0)))


def train_step(model: GPT2LMHeadModel, opt: torch.optim.AdamW, x: torch.Tensor,
               lr: float, clip: float) -> float:
    for group in opt.param_groups:
        group["lr"] = lr
    loss = model(input_ids=x, labels=x).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss.item()


def train(model: GPT2LMHeadModel, train_data: np.ndarray, eval_windows: torch.Tensor,
          args: argparse.Namespace) -> float:
    """Run args.steps steps; return the mean train loss (nats/byte) of the last log interval."""
    rng = np.random.default_rng(args.seed)
    opt = make_optimizer(model, args)
    model.train()
    start, recent = time.time(), []
    for step in range(args.steps):
        x = sample_batch(train_data, rng, args.batch_size)
        recent.append(train_step(model, opt, x, lr_at(step, args), args.clip))
        done = step + 1
        if done % args.log_every == 0 or done == args.steps:
            loss = sum(recent) / len(recent)
            print(f"step {done:5d}/{args.steps}  loss {loss:.4f} ({loss / math.log(2):.3f} bpb)"
                  f"  lr {lr_at(step, args):.2e}  {time.time() - start:7.1f}s", flush=True)
            final_loss, recent = loss, []
        if done % args.eval_every == 0 and done < args.steps:
            print(f"  eval subset ({len(eval_windows)} windows): "
                  f"{bits_per_byte(model, eval_windows):.4f} bpb", flush=True)
    return final_loss


def save_fp16(model: GPT2LMHeadModel, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(out, safe_serialization=True)
    model.float()
    (out / "generation_config.json").unlink(missing_ok=True)  # byte model: no generation defaults


def write_record(out: Path, args: argparse.Namespace, stats: dict[str, float]) -> None:
    cfg = make_config(args)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    lines = [
        "# char-gpt2: byte-level GPT-2 trained for prismsim", "",
        f"Command (from the repository root, torch {torch.__version__}):", "",
        f"    {command}", "",
        f"- seed: {args.seed}; threads: {args.threads}",
        f"- config: GPT2LMHeadModel, vocab_size 256 (raw bytes), n_positions {SEQ_LEN}, "
        f"n_layer {cfg.n_layer}, n_embd {cfg.n_embd}, n_head {cfg.n_head}, "
        f"dropout {args.dropout}, tied LM head; {int(stats['params']):,} parameters",
        f"- data: train = hamlet_bytes() + wiki_bytes('train') ({int(stats['train_bytes']):,} "
        f"bytes); held out = wiki_bytes('test') ({int(stats['test_bytes']):,} bytes, never "
        "trained on)",
        f"- optimisation: {args.steps} steps of {args.batch_size} random {SEQ_LEN}-byte windows, "
        f"AdamW (betas 0.9/0.95, weight decay {args.weight_decay} on matrices), peak lr "
        f"{args.lr:g}, {args.warmup} warmup steps, cosine decay to {args.min_lr_ratio:g} x "
        f"peak, grad-norm clip {args.clip:g}",
        f"- wall time: {stats['train_s'] / 60:.1f} min training "
        f"({stats['total_s'] / 60:.1f} min in all)",
        f"- final train loss (mean of last {args.log_every} steps): "
        f"{stats['train_loss']:.4f} nats/byte ({stats['train_loss'] / math.log(2):.3f} bpb)",
        f"- held-out bits per byte ({int(stats['test_windows'])} windows of {SEQ_LEN}, bytes "
        f"1..255 predicted): fp32 {stats['bpb_fp32']:.4f}; after the fp16 save and fp32 "
        f"reload {stats['bpb_fp16']:.4f}",
        "- weights stored in float16 (model.safetensors); load with "
        "`GPT2LMHeadModel.from_pretrained(dir, torch_dtype=torch.float32)`", "",
    ]
    (out / "TRAINING.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    t0 = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_data, test_data = load_data()
    windows = test_windows(test_data)
    eval_subset = windows[torch.randperm(len(windows))[: args.eval_windows].sort().values]
    model = GPT2LMHeadModel(make_config(args))
    params = sum(p.numel() for p in model.parameters())
    print(f"train {len(train_data):,} bytes, test {len(test_data):,} bytes "
          f"({len(windows)} windows); {params:,} parameters", flush=True)
    t1 = time.time()
    train_loss = train(model, train_data, eval_subset, args)
    train_s = time.time() - t1
    bpb32 = bits_per_byte(model, windows)
    print(f"held-out bpb (fp32, all {len(windows)} windows): {bpb32:.4f}", flush=True)
    save_fp16(model, args.out)
    reloaded = GPT2LMHeadModel.from_pretrained(args.out, dtype=torch.float32)
    bpb16 = bits_per_byte(reloaded, windows)
    print(f"held-out bpb (fp16 saved, fp32 reload): {bpb16:.4f}", flush=True)
    stats = {"params": params, "train_bytes": len(train_data), "test_bytes": len(test_data),
             "train_s": train_s, "total_s": time.time() - t0, "train_loss": train_loss,
             "test_windows": len(windows), "bpb_fp32": bpb32, "bpb_fp16": bpb16}
    write_record(args.out, args, stats)
    sizes = {f.name: f.stat().st_size for f in sorted(args.out.iterdir())}
    print(f"saved {args.out}: {sizes}", flush=True)


if __name__ == "__main__":
    main()
