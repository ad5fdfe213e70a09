"""Tagging head: dropout + linear emissions + a linear-chain CRF (pytorch-crf), Viterbi decoding."""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn
from torchcrf import CRF

from snlu.core.checks import in_range
from snlu.registry import HEADS


@dataclasses.dataclass
class CRFConfig:
    """Options of the CRF tagging head. ``classifier_group``: the optimiser group of the linear classifier
    (null: the head's own group; the reference's name matching puts its text classifier, ``hidden2tag``, in
    the BERT group, ``textual_encoder``, while the CRF transitions keep theirs)."""

    dropout: float = 0.1
    classifier_group: str | None = None

    def __post_init__(self) -> None:
        in_range(self, "dropout", 0.0, 1.0)


@HEADS.register("crf", config=CRFConfig)
class CRFHead(nn.Module):
    """Linear + CRF over a sequence of vectors; loss is the mean negative log-likelihood."""

    def __init__(self, cfg: CRFConfig, in_dim: int, num_tags: int):
        super().__init__()
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.linear = nn.Linear(in_dim, num_tags)
        self.crf = CRF(num_tags, batch_first=True)
        self.classifier_group = cfg.classifier_group

    @classmethod
    def optimizer_groups(cls, cfg: CRFConfig, group: str) -> list[str]:
        """The head's group, and ``classifier_group`` when set (the classifier's; the transitions stay)."""
        return [group, cfg.classifier_group] if cfg.classifier_group else [group]

    def group_overrides(self) -> dict[str, list[nn.Parameter]]:
        """Parameters that go to another optimiser group than the head's (the classifier, when asked)."""
        return {self.classifier_group: list(self.linear.parameters())} if self.classifier_group else {}

    def emissions(self, x: Tensor) -> Tensor:
        return self.linear(self.dropout(x)).float()  # (B, N, tags); the CRF runs in float32

    def loss(self, x: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """x (B, N, d), tags (B, N), mask (B, N) with mask[:, 0] True -> scalar NLL (mean over batch)."""
        return -self.crf(self.emissions(x), tags, mask=mask, reduction="mean")

    def decode(self, x: Tensor, mask: Tensor) -> list[list[int]]:
        """Viterbi tag ids per sequence (length = mask.sum())."""
        return self.crf.decode(self.emissions(x), mask=mask)
