"""The uniform model stack every strategy works on: embed, blocks, head.

Strategies never touch Hugging Face internals; a family adapter (``vision.py``,
``text.py``) maps a HF model onto these pieces. The pieces reference the HF
modules' own parameters (GPT-2's fused ``c_attn`` is split into copies), so the
numerics are the HF model's numerics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

Inputs = dict[str, Tensor]


class Block(nn.Module):
    """One Transformer block: self-attention then MLP, pre-LN or post-LN.

    pre-LN  (ViT, DINOv2, GPT-2, Llama): x + ls1*O(attn(LN1(x)));  h + ls2*MLP(LN2(h))
    post-LN (BERT):                      LN1(x + O(attn(x)));       LN2(h + MLP(h))

    Optional, for the Llama family: ``n_kv_heads`` (grouped-query attention: K and V have
    that many heads, each shared by n_heads / n_kv_heads query heads), projections
    without bias, a gated MLP (``up``: fc2(act(fc1(h)) * up(h)), SwiGLU with fc1 = gate,
    fc2 = down) and ``rope``, which rotates Q or K heads at their token positions
    (:meth:`rotate`; ``numerics.rope.Rope`` around the HF model's rotary module).
    """

    def __init__(
        self,
        *,
        ln_attn: nn.Module,
        q: nn.Linear,
        k: nn.Linear,
        v: nn.Linear,
        o: nn.Linear,
        ln_mlp: nn.Module,
        fc1: nn.Linear,
        fc2: nn.Linear,
        act: Callable[[Tensor], Tensor],
        pre_ln: bool,
        n_heads: int,
        scaling: float,
        ls_attn: Tensor | None = None,
        ls_mlp: Tensor | None = None,
        n_kv_heads: int | None = None,
        up: nn.Linear | None = None,
        rope: Callable[[Tensor, Tensor], Tensor] | None = None,
    ):
        super().__init__()
        self.ln_attn, self.ln_mlp = ln_attn, ln_mlp
        self.q, self.k, self.v, self.o = q, k, v, o
        self.fc1, self.fc2, self.up, self.act = fc1, fc2, up, act
        self.pre_ln, self.n_heads, self.scaling = pre_ln, n_heads, scaling
        self.ls_attn, self.ls_mlp = ls_attn, ls_mlp
        self.n_kv_heads = n_kv_heads or n_heads
        if n_heads % self.n_kv_heads:
            raise ValueError(f"{n_heads} query heads do not group over {self.n_kv_heads} KV heads")
        self.rope = rope

    @property
    def head_dim(self) -> int:
        return self.q.out_features // self.n_heads

    @property
    def group(self) -> int:
        """Query heads per KV head (1 without grouped-query attention)."""
        return self.n_heads // self.n_kv_heads

    def rotate(self, t: Tensor, positions: Tensor | None) -> Tensor:
        """RoPE: Q or K heads t [B, h, n, dh] rotated at global token positions [n]
        (float allowed); t itself for a model without rotary embeddings."""
        if self.rope is None:
            return t
        if positions is None:
            raise ValueError("a block with rotary embeddings needs token positions")
        return self.rope(t, positions)

    def split_heads(self, t: Tensor) -> Tensor:
        """[B, n, h*dh] -> [B, h, n, dh]"""
        b, n, _ = t.shape
        return t.view(b, n, -1, self.head_dim).transpose(1, 2)

    @staticmethod
    def merge_heads(t: Tensor) -> Tensor:
        """[B, h, n, dh] -> [B, n, h*dh]"""
        b, h, n, dh = t.shape
        return t.transpose(1, 2).reshape(b, n, h * dh)

    def _sub_in(self, ln: nn.Module, x: Tensor) -> Tensor:
        return ln(x) if self.pre_ln else x

    def _residual(self, ln: nn.Module, scale: Tensor | None, x: Tensor, y: Tensor) -> Tensor:
        y = y if scale is None else y * scale
        return x + y if self.pre_ln else ln(x + y)

    def attn_in(self, x: Tensor) -> Tensor:
        """What the Q/K/V projections see of the residual stream x."""
        return self._sub_in(self.ln_attn, x)

    def attn_residual(self, x: Tensor, y: Tensor) -> Tensor:
        """Combine the residual x with the output projection y (bias included)."""
        return self._residual(self.ln_attn, self.ls_attn, x, y)

    def mlp_in(self, x: Tensor) -> Tensor:
        return self._sub_in(self.ln_mlp, x)

    def mlp_residual(self, x: Tensor, y: Tensor) -> Tensor:
        return self._residual(self.ln_mlp, self.ls_mlp, x, y)

    def mlp_hidden(self, gate: Tensor, up: Tensor | None) -> Tensor:
        """The MLP's hidden units from fc1's output (and up's, for a gated MLP)."""
        a = self.act(gate)
        return a if up is None else a * up

    def mlp(self, x: Tensor) -> Tensor:
        """The whole position-wise MLP sub-block, residual included."""
        h = self.mlp_in(x)
        up = None if self.up is None else self.up(h)
        return self.mlp_residual(x, self.fc2(self.mlp_hidden(self.fc1(h), up)))


@dataclass
class Head:
    """How the final hidden rows become the model's main output.

    ``local`` is position-wise (final norm, LM head) and runs on each device's own rows;
    if ``first_only`` just global row 0 is needed (a [CLS] classifier), otherwise every
    row is sent to the master. ``finish`` runs on the master over the gathered rows
    [B, n, width] and returns the output the HF model returns.
    """

    local: Callable[[Tensor], Tensor]
    width: int
    first_only: bool
    finish: Callable[[Tensor], Tensor]


@dataclass
class ModelStack:
    """A model as strategies see it."""

    name: str
    family: str
    hf: nn.Module
    embed: Callable[[Inputs], Tensor]
    blocks: list[Block]
    head: Head
    causal: bool
    hidden: int
    main_input: str
    # causal LMs: token ids [B, n] embedded as if they started at position ``start``
    # (what decoding feeds in, one token at a time); None where the model cannot decode
    embed_ids: Callable[[Tensor, int], Tensor] | None = None

    def n_tokens(self, inputs: Inputs) -> int:
        """Sequence length N the blocks see (ViT: patches + [CLS])."""
        if self.main_input == "input_ids":
            return int(inputs["input_ids"].shape[1])
        cfg = self.hf.config
        size = inputs["pixel_values"].shape[-2:]
        return (size[0] // cfg.patch_size) * (size[1] // cfg.patch_size) + 1

    @property
    def has_rope(self) -> bool:
        """Whether the blocks rotate Q and K at token positions (they need positions)."""
        return any(b.rope is not None for b in self.blocks)

    def batch(self, inputs: Inputs) -> int:
        return int(inputs[self.main_input].shape[0])

    def apply_head(self, x: Tensor) -> Tensor:
        """The head over the full final hidden state (single-device form)."""
        rows = x[:, :1] if self.head.first_only else x
        return self.head.finish(self.head.local(rows))

    @torch.no_grad()
    def reference(self, inputs: Inputs) -> Tensor:
        """The HF model's own eager forward: its main output (logits or last hidden state)."""
        out = self.hf(**inputs)
        return out.logits if hasattr(out, "logits") else out.last_hidden_state


def identity(x: Tensor) -> Tensor:
    return x
