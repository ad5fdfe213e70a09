"""snlu-gated-fusion: gated cross-modal attention, an example snlu plugin (a new fusion).

Text tokens attend to the audio frames as in ``raw``, but the attended audio reaches the text through a
learned sigmoid gate per token and dimension, so the model can turn audio off where it does not help::

    C = MultiheadAttention(q = H_t, k = v = tanh(W_a H_a))    (B, N, Dt), padded frames masked out
    g = sigmoid(W_g [H_t; C] + b_g)                           (B, N, Dt), b_g starts at ``gate_bias``
    F = LayerNorm(H_t + dropout(g * C))                       (B, N, Dt)

Importing this module registers the fusion ``gated``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from snlu.core.checks import in_range, positive
from snlu.fusions.base import Fusion
from snlu.registry import FUSIONS

__version__ = "0.1.0"


@dataclasses.dataclass
class GatedConfig:
    """Attention heads, dropout, and the gate's initial bias (sigmoid(-2) ~ 0.12: start near the text alone)."""

    num_heads: int = 8
    dropout: float = 0.1
    gate_bias: float = -2.0

    def __post_init__(self) -> None:
        positive(self, "num_heads")
        in_range(self, "dropout", 0.0, 1.0)


@FUSIONS.register("gated", config=GatedConfig)
class GatedCrossAttentionFusion(Fusion):
    """Cross-attention over the audio frames, added to the text through a learned sigmoid gate."""

    consumes = ("frames",)  # frames only: the task passes tokens=None

    def __init__(self, cfg: GatedConfig, text_dim: int, audio_dim: int, intermediate_size: int, text_heads: int):
        super().__init__()
        if text_dim % cfg.num_heads:
            raise ValueError(f"fusion.num_heads: must divide the text hidden size {text_dim}, got {cfg.num_heads}")
        self.audio_proj = nn.Sequential(nn.Linear(audio_dim, text_dim), nn.Tanh())
        self.attn = nn.MultiheadAttention(text_dim, cfg.num_heads, dropout=cfg.dropout, batch_first=True)
        self.gate = nn.Linear(2 * text_dim, text_dim)
        nn.init.constant_(self.gate.bias, cfg.gate_bias)
        self.norm = nn.LayerNorm(text_dim, eps=1e-12)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, text: Tensor, text_mask: Tensor, frames: Tensor, frame_mask: Tensor,
                tokens: Tensor | None) -> Tensor:
        """text (B, N, Dt), frames (B, T, Da) with frame_mask (B, T) True on real frames -> (B, N, Dt)."""
        audio = self.audio_proj(frames)  # (B, T, Dt)
        ctx, _ = self.attn(text, audio, audio, key_padding_mask=~frame_mask, need_weights=False)  # (B, N, Dt)
        gate = torch.sigmoid(self.gate(torch.cat([text, ctx], dim=-1)))  # (B, N, Dt)
        return self.norm(text + self.dropout(gate * ctx))
