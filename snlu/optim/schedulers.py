"""Learning-rate schedules (recipe section ``scheduler``): a factor on every group's base lr.

Each schedule is a closed form ``factor(n)`` of its step count ``n`` and says how it is stepped:
``interval = "epoch"`` (after each epoch) or ``"step"`` (after each optimizer step). The trainer wraps it
in a ``LambdaLR``, whose state (the count) is saved in checkpoints, so a resumed run continues the curve.
Schedules that end somewhere (``warmup_linear``, ``cosine``) are told the run's total number of optimizer
steps by the trainer (``set_total``) before the first step.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch

from snlu.core.checks import in_range
from snlu.registry import SCHEDULERS


class Schedule:
    """Base class: ``factor(n)`` multiplies every group's base learning rate after ``n`` scheduler steps."""

    interval: ClassVar[str] = "step"  # "step" | "epoch"

    def __init__(self, cfg: object):
        self.cfg = cfg
        self.total: int | None = None

    def set_total(self, total_steps: int) -> None:
        """The run's number of scheduler steps (optimizer steps, or epochs for per-epoch schedules)."""
        self.total = max(int(total_steps), 1)

    def factor(self, n: int) -> float:
        raise NotImplementedError

    def build(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda n: self.factor(n))

    def _need_total(self) -> int:
        if self.total is None:
            raise RuntimeError(f"{type(self).__name__}: the total number of steps was not set")
        return self.total


SCHEDULERS.require(Schedule)


@dataclasses.dataclass
class EpochDecayConfig:
    """After epoch e (1-based) every lr is base * (1 - decay) ** e (the reference: 0.05 for NER, 0.01 for ASR)."""

    decay: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"decay: must be in [0, 1), got {self.decay}")


@SCHEDULERS.register("epoch_decay", config=EpochDecayConfig)
class EpochDecay(Schedule):
    """Per-epoch exponential decay: lr * (1 - decay) ** epochs done (the reference's schedule)."""

    interval = "epoch"

    def factor(self, n: int) -> float:
        return (1.0 - self.cfg.decay) ** n


@dataclasses.dataclass
class WarmupConfig:
    """``warmup_steps`` optimizer steps of linear warm-up from 0; ``min_ratio``: the floor, as a fraction."""

    warmup_steps: int = 1000
    min_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps: must be >= 0, got {self.warmup_steps}")
        in_range(self, "min_ratio", 0.0, 1.0)


class _Warmup(Schedule):
    """Linear warm-up over ``warmup_steps`` (step 0 already trains at 1 / warmup_steps), then ``after(n)``."""

    def factor(self, n: int) -> float:
        w = self.cfg.warmup_steps
        return (n + 1) / w if n < w else self.after(n)

    def after(self, n: int) -> float:
        raise NotImplementedError


class _WarmupThenDecay(_Warmup):
    """After warm-up: ``min_ratio + (1 - min_ratio) * curve(t)``, t going from 0 to 1 at the run's last step."""

    def after(self, n: int) -> float:
        left = self._need_total() - self.cfg.warmup_steps
        t = min(1.0, (n - self.cfg.warmup_steps) / max(left, 1))
        return self.cfg.min_ratio + (1.0 - self.cfg.min_ratio) * self.curve(t)

    def curve(self, t: float) -> float:
        raise NotImplementedError


@SCHEDULERS.register("warmup_linear", config=WarmupConfig)
class WarmupLinear(_WarmupThenDecay):
    """Linear warm-up to the base lr, then linear decay to ``min_ratio`` x base at the last step."""

    def curve(self, t: float) -> float:
        return 1.0 - t


@SCHEDULERS.register("cosine", config=WarmupConfig)
class Cosine(_WarmupThenDecay):
    """Linear warm-up, then half a cosine down to ``min_ratio`` x base at the last step."""

    def curve(self, t: float) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * t))


@SCHEDULERS.register("noam", config=WarmupConfig)
class Noam(_Warmup):
    """Linear warm-up, then inverse square-root decay (Vaswani et al.); the base lr is the peak."""

    def after(self, n: int) -> float:
        return max(self.cfg.min_ratio, math.sqrt(max(self.cfg.warmup_steps, 1) / (n + 1)))


@dataclasses.dataclass
class ConstantConfig:
    """No options."""


@SCHEDULERS.register("constant", config=ConstantConfig)
class Constant(Schedule):
    """The base learning rates throughout."""

    def factor(self, n: int) -> float:
        return 1.0
