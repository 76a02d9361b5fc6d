"""Rotary position embeddings (RoPE) at arbitrary, possibly fractional, token positions.

The cos/sin come from the HF model's own rotary module (so rope scaling variants such as
``llama3`` stay exact) and the rotation is HF's ``rotate_half`` convention. Where a key
that stands for a segment of tokens is rotated: ``segments.segment_positions``.
"""

from __future__ import annotations

from torch import Tensor, nn
from transformers.models.llama.modeling_llama import rotate_half


class Rope(nn.Module):
    """Rotates Q or K heads at given token positions with a HF rotary module
    (``LlamaRotaryEmbedding`` and kin: ``rotary(x, position_ids) -> (cos, sin)``)."""

    def __init__(self, rotary: nn.Module):
        super().__init__()
        self.rotary = rotary

    def forward(self, t: Tensor, positions: Tensor) -> Tensor:
        """t [B, h, n, dh] rotated at positions [n] (float allowed):
        t cos + rotate_half(t) sin, as HF's ``apply_rotary_pos_emb``."""
        cos, sin = self.rotary(t, positions[None])  # [1, n, dh] each
        cos, sin = cos[:, None], sin[:, None]  # [1, 1, n, dh]
        return t * cos + rotate_half(t) * sin
