"""A generic Transformer encoder stack written here in plain torch: pre-norm blocks,
attention by batched products, a GELU MLP. It is no catalog model's code and no
strategy's program; ``gauge.py`` times one as the host's speed of the moment, and
``block_probe.py`` times them whole to see what operators timed alone miss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PROBE_HEADS = 4


class Block(nn.Module):
    """A pre-norm encoder block: attention by batched products, a GELU MLP."""

    def __init__(self, width: int, view_pairs: int = 0):
        super().__init__()
        self.view_pairs = view_pairs  # no-op view pairs on the block's output
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: Tensor) -> Tensor:  # x [batch, tokens, width]
        b, t, w = x.shape
        qkv = self.qkv(self.ln1(x)).view(b, t, 3, PROBE_HEADS, w // PROBE_HEADS)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [batch, heads, tokens, head]
        att = torch.softmax(q @ k.transpose(-1, -2) * (w // PROBE_HEADS) ** -0.5, dim=-1)
        o = (att @ v).transpose(1, 2).reshape(b, t, w)  # [batch, tokens, width]
        x = x + self.proj(o)
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        for _ in range(self.view_pairs):  # two view operators each, nothing computed
            x = x.unsqueeze(0).squeeze(0)
        return x


def probe_stack(width: int, tokens: int, layers: int, view_pairs: int = 0
                ) -> tuple[nn.Module, Tensor]:
    """A stack of ``layers`` blocks (own weights each; ``view_pairs`` pairs of no-op
    views closing each) and an input of ``tokens``."""
    torch.manual_seed(0)
    stack = nn.Sequential(*(Block(width, view_pairs) for _ in range(layers))).eval()
    return stack, torch.randn(1, tokens, width)  # [batch, tokens, width]
