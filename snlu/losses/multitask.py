"""The multitask objective: L = L_tcrf + audio_crf_coef * L_acrf + ctc_coef * L_ctc."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

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
        self.coefs = self.coefficients(cfg)

    @staticmethod
    def coefficients(cfg: MultitaskConfig) -> dict[str, float]:
        """Each term's weight (a term not named here weighs 1)."""
        return {"text_crf": 1.0, "audio_crf": cfg.audio_crf_coef, "ctc": cfg.ctc_coef}

    @classmethod
    def active_terms(cls, cfg: MultitaskConfig, terms: Iterable[str]) -> list[str]:
        """The ``terms`` computed at all, from the config alone: a zero coefficient lets the task skip the work."""
        coefs = cls.coefficients(cfg)
        return [t for t in terms if coefs.get(t, 1.0) > 0]

    @classmethod
    def optimizer_groups(cls, cfg: MultitaskConfig, group: str) -> list[str]:
        """No parameters: in no optimiser group."""
        return []

    def forward(self, terms: dict[str, Tensor]) -> Tensor:
        return sum(self.coefs.get(name, 1.0) * value for name, value in terms.items())
