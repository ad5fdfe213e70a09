"""The recipe's ``augment`` list as one callable: each augmentation in order, all drawing from one generator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from snlu.registry import AUGMENTATIONS


class Chain:
    """``augment[0]``, then ``augment[1]``, ...: (wave, generator) -> wave."""

    def __init__(self, steps: Sequence[Any]):
        self.steps = list(steps)

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for step in self.steps:
            wave = step(wave, rng)
        return wave

    def __repr__(self) -> str:
        return ", ".join(map(repr, self.steps))


def build_chain(section: Sequence[Any] | None) -> Chain | None:
    """The validated ``augment`` list as a :class:`Chain`; None when it is empty or absent."""
    steps = [AUGMENTATIONS.build(item) for item in section or ()]
    return Chain(steps) if steps else None
