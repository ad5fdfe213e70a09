"""Optimisers (recipe section ``optim``): one learning rate per parameter group, weight decay on matrices only.

The trainer builds a registered optimiser, a ``torch.optim.Optimizer`` subclass, as ``cls(cfg, groups)`` with
its parameter groups (``{"params", "lr", "weight_decay", "name"}``); gradient clipping (``max_grad_norm``) is
applied by the trainer.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from snlu.core.checks import in_range, positive
from snlu.registry import OPTIMIZERS


@dataclasses.dataclass
class OptimizerConfig:
    """Options every optimiser shares. ``eps`` 1e-6 and no decay on vectors are the reference's (its AdamW
    is the transformers one); ``fused``: one kernel per step over all tensors (on a 2-core CPU 10x faster than the
    for-each implementation on BERT's 11M-weight embedding; docs/performance.md)."""

    lrs: dict[str, float] = dataclasses.field(default_factory=dict)  # group -> lr; the recipe names every group
    groups: dict[str, str] = dataclasses.field(default_factory=dict)  # section -> group (default: its own name)
    weight_decay: float = 1e-5
    eps: float = 1e-6
    betas: list[float] = dataclasses.field(default_factory=lambda: [0.9, 0.999])
    max_grad_norm: float = 5.0
    fused: bool = True

    def __post_init__(self) -> None:
        for group, lr in self.lrs.items():
            if not 0.0 < lr <= 1.0:
                raise ValueError(f"lrs.{group}: learning rate must be in (0, 1], got {lr}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas: expected two values in [0, 1), got {list(self.betas)}")
        in_range(self, "weight_decay", 0.0, 1.0)
        in_range(self, "eps", 0.0, 1.0)
        positive(self, "max_grad_norm")


def _options(cfg: Any) -> dict[str, Any]:
    return {"eps": cfg.eps, "betas": tuple(cfg.betas), "fused": cfg.fused}


OPTIMIZERS.require(torch.optim.Optimizer)


@OPTIMIZERS.register("adamw", config=OptimizerConfig)
class AdamW(torch.optim.AdamW):
    """AdamW (decoupled weight decay), fused; the reference's optimiser for spoken NER."""

    def __init__(self, cfg: OptimizerConfig, groups: list[dict[str, Any]]):
        super().__init__(groups, **_options(cfg))


@OPTIMIZERS.register("adam", config=OptimizerConfig)
class Adam(torch.optim.Adam):
    """Adam (weight decay as an L2 term in the gradient), fused; the reference's ASR pretraining optimiser."""

    def __init__(self, cfg: OptimizerConfig, groups: list[dict[str, Any]]):
        super().__init__(groups, **_options(cfg))
