"""``concat``: per-position concatenation of text and projected audio tokens, then a linear layer."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from snlu.core.checks import in_range
from snlu.fusions.base import Fusion
from snlu.registry import FUSIONS


@dataclasses.dataclass
class ConcatConfig:
    """Dropout on the fused vector."""

    dropout: float = 0.1

    def __post_init__(self) -> None:
        in_range(self, "dropout", 0.0, 1.0)


@FUSIONS.register("concat", config=ConcatConfig)
class ConcatFusion(Fusion):
    """F = Linear([H_t; tanh(W A_tok)]) per word piece."""

    consumes = ("tokens",)

    def __init__(self, cfg: ConcatConfig, text_dim: int, audio_dim: int, intermediate_size: int, text_heads: int):
        super().__init__()
        self.audio_proj = nn.Sequential(nn.Linear(audio_dim, text_dim), nn.Tanh())
        self.linear = nn.Linear(2 * text_dim, text_dim)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, text: Tensor, text_mask: Tensor, frames: Tensor, frame_mask: Tensor, tokens: Tensor) -> Tensor:
        return self.dropout(self.linear(torch.cat([text, self.audio_proj(tokens)], dim=-1)))
