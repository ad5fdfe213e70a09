"""The multitask objective: L = L_tcrf + audio_crf_coef * L_acrf + ctc_coef * L_ctc."""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from snlu.core.checks import in_range
from snlu.registry import LOSSES


@dataclasses.dataclass
class MultitaskConfig:
    """Weights of the auxiliary terms (reference: ctc 0.05, audio CRF 0.1)."""

    ctc_coef: float = 0.05
    audio_crf_coef: float = 0.1

    def __post_init__(self) -> None:
        in_range(self, "ctc_coef", 0.0, 100.0)
        in_range(self, "audio_crf_coef", 0.0, 100.0)


@LOSSES.register("multitask", config=MultitaskConfig)
class MultitaskLoss(nn.Module):
    """Weighted sum of the named loss terms; a term with coefficient 0 is skipped entirely."""

    def __init__(self, cfg: MultitaskConfig):
        super().__init__()
        self.coefs = {"text_crf": 1.0, "audio_crf": cfg.audio_crf_coef, "ctc": cfg.ctc_coef}

    @classmethod
    def optimizer_groups(cls, cfg: MultitaskConfig, group: str) -> list[str]:
        """No parameters: in no optimiser group."""
        return []

    def active(self, term: str) -> bool:
        """Whether a term is computed at all (lets a task skip work for a zero coefficient)."""
        return self.coefs.get(term, 1.0) > 0

    def forward(self, terms: dict[str, Tensor]) -> Tensor:
        return sum(self.coefs.get(name, 1.0) * value for name, value in terms.items())
