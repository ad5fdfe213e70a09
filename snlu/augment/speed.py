"""Speed perturbation by resampling (Ko et al. 2015, Kaldi's and ESPnet's ``speed_perturb``).

The samples are read as if recorded at ``factor`` x 16 kHz and resampled to 16 kHz: the utterance lasts
``1 / factor`` as long and every frequency (pitch and formants) is ``factor`` times higher, as a tape played faster.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import torch
import torchaudio
from torch import nn

from snlu.augment.base import Augmentation
from snlu.registry import AUGMENTATIONS


def _default_factors() -> list[float]:
    return [0.9, 1.0, 1.1]


@dataclasses.dataclass
class SpeedConfig:
    """``factors``: one drawn per utterance, uniformly (1.0 leaves it as it is); each in [0.5, 2], in steps of 0.01."""

    factors: list[float] = dataclasses.field(default_factory=_default_factors)

    def __post_init__(self) -> None:
        if not self.factors:
            raise ValueError("factors: expected at least one factor")
        for f in self.factors:
            if not 0.5 <= f <= 2.0:
                raise ValueError(f"factors: each must be in [0.5, 2.0], got {f}")
            if abs(float(Fraction(f).limit_denominator(100)) - f) > 1e-9:
                raise ValueError(f"factors: {f} is not a multiple of 0.01 (the resampling ratio must stay small)")


def ratio(factor: float) -> tuple[int, int]:
    """(orig, new) resampling rates of ``factor``: 1.1 -> (11, 10), the output has 10/11 of the samples."""
    frac = Fraction(factor).limit_denominator(100)
    return frac.numerator, frac.denominator


@AUGMENTATIONS.register("speed", config=SpeedConfig)
class Speed(Augmentation):
    """Speed perturbation: resample by a factor drawn from ``factors`` (length / factor, frequencies x factor)."""

    def __init__(self, cfg: SpeedConfig):
        self.factors = [float(f) for f in cfg.factors]
        self._kernels: dict[tuple[int, int], nn.Module] = {}  # one sinc filter per ratio, built on first use

    def draw(self, rng: np.random.Generator) -> float:
        return self.factors[int(rng.integers(len(self.factors)))]

    def apply(self, wave: np.ndarray, factor: float) -> np.ndarray:
        """``wave`` played ``factor`` times faster."""
        if factor == 1.0:
            return wave
        key = ratio(factor)
        if key not in self._kernels:
            self._kernels[key] = torchaudio.transforms.Resample(*key)
        with torch.no_grad():
            out = self._kernels[key](torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)))
        return out.numpy()

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.apply(wave, self.draw(rng))

    def __repr__(self) -> str:
        return f"speed(factors {'/'.join(f'{f:g}' for f in self.factors)})"
