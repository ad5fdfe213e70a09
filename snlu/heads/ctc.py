"""CTC head: output projection tied to a character embedding matrix, blank = 0."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snlu.registry import HEADS


@dataclasses.dataclass
class CTCConfig:
    """Options of the CTC head."""

    dropout: float = 0.0


@HEADS.register("ctc", config=CTCConfig)
class CTCHead(nn.Module):
    """logits = H . E^T with E (vocab x d) a character embedding; infeasible utterances give loss 0, not inf."""

    blank = 0

    def __init__(self, cfg: CTCConfig, in_dim: int, vocab_size: int):
        super().__init__()
        self.dropout = nn.Dropout(cfg.dropout)
        self.embedding = nn.Parameter(torch.randn(vocab_size, in_dim) * in_dim**-0.5)

    def forward(self, frames: Tensor) -> Tensor:
        """(B, T, d) -> (B, T, vocab) logits."""
        return self.dropout(frames) @ self.embedding.t()

    def loss(self, logits: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
        """Mean over the batch of per-utterance CTC loss divided by target length."""
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (T, B, V)
        # zero_infinity: an utterance whose subsampled length is shorter than its transcript
        # contributes 0 (and no gradient) instead of inf/NaN.
        return F.ctc_loss(
            log_probs, targets, lengths, target_lengths, blank=self.blank, reduction="mean", zero_infinity=True
        )

    @staticmethod
    def greedy_decode(logits: Tensor, lengths: Tensor) -> list[list[int]]:
        """Best path: argmax per frame, merge repeats, drop blanks."""
        best = logits.argmax(-1).tolist()
        out = []
        for row, n in zip(best, lengths.tolist()):
            ids, prev = [], None
            for i in row[:n]:
                if i != prev and i != CTCHead.blank:
                    ids.append(i)
                prev = i
            out.append(ids)
        return out
