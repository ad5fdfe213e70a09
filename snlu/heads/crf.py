"""Tagging head: dropout + linear emissions + a linear-chain CRF (pytorch-crf), Viterbi decoding."""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn
from torchcrf import CRF

from snlu.config import in_range
from snlu.registry import HEADS


@dataclasses.dataclass
class CRFConfig:
    """Options of the CRF tagging head."""

    dropout: float = 0.1

    def __post_init__(self) -> None:
        in_range(self, "dropout", 0.0, 1.0)


@HEADS.register("crf", config=CRFConfig)
class CRFHead(nn.Module):
    """Linear + CRF over a sequence of vectors; loss is the mean negative log-likelihood."""

    def __init__(self, cfg: CRFConfig, in_dim: int, num_tags: int):
        super().__init__()
        self.dropout = nn.Dropout(cfg.dropout)
        self.linear = nn.Linear(in_dim, num_tags)
        self.crf = CRF(num_tags, batch_first=True)

    def emissions(self, x: Tensor) -> Tensor:
        return self.linear(self.dropout(x)).float()  # (B, N, tags); the CRF runs in float32

    def loss(self, x: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """x (B, N, d), tags (B, N), mask (B, N) with mask[:, 0] True -> scalar NLL (mean over batch)."""
        return -self.crf(self.emissions(x), tags, mask=mask, reduction="mean")

    def decode(self, x: Tensor, mask: Tensor) -> list[list[int]]:
        """Viterbi tag ids per sequence (length = mask.sum())."""
        return self.crf.decode(self.emissions(x), mask=mask)
