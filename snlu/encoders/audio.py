"""What every audio encoder shares: its config fields and the sinusoidal positional encoding."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from snlu.core.checks import in_range, positive
from snlu.core.schema import on_load, recipe_own


@dataclasses.dataclass
class AudioEncoderConfig:
    """Common audio-encoder options. ``init_from``: a run (or its best/) to copy weights from, whose saved recipe then
    gives every architecture option of the encoder and the frontend (the recipe keeps its ``recipe_own`` ones)."""

    n_blocks: int = 9
    d_model: int = 256
    num_heads: int = 4
    ffn_dim: int = 2048
    dropout: float = dataclasses.field(default=0.1, metadata=recipe_own())
    init_from: str | None = dataclasses.field(default=None, metadata=on_load("clear"))  # a saved model has the weights

    def __post_init__(self) -> None:
        positive(self, "n_blocks", "d_model", "num_heads", "ffn_dim")
        in_range(self, "dropout", 0.0, 1.0)
        if self.d_model % self.num_heads:
            raise ValueError(f"num_heads: must divide d_model={self.d_model}, got {self.num_heads}")


class SinusoidalPositions(nn.Module):
    """x * sqrt(d) + PE (Vaswani et al.), computed for any length on the input's device."""

    def __init__(self, d_model: int, dropout: float):
        super().__init__()
        self.d_model = d_model
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[1]
        pos = torch.arange(t, device=x.device, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, self.d_model, 2, device=x.device).float() * (-math.log(10000.0) / self.d_model))
        pe = torch.zeros(t, self.d_model, device=x.device)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        return self.dropout(x * math.sqrt(self.d_model) + pe.to(x.dtype))
