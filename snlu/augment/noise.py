"""Additive white Gaussian noise at a signal-to-noise ratio drawn per utterance."""

from __future__ import annotations

import dataclasses

import numpy as np

from snlu.augment.base import Augmentation
from snlu.core.checks import in_range
from snlu.registry import AUGMENTATIONS


@dataclasses.dataclass
class NoiseConfig:
    """``prob``: the chance an utterance gets noise; its SNR (dB) is drawn uniformly from [``snr_min``, ``snr_max``]."""

    snr_min: float = 10.0
    snr_max: float = 30.0
    prob: float = 0.5

    def __post_init__(self) -> None:
        in_range(self, "prob", 0.0, 1.0)
        in_range(self, "snr_min", -20.0, 100.0)
        if self.snr_max < self.snr_min:
            raise ValueError(f"snr_max: must be >= snr_min={self.snr_min}, got {self.snr_max}")


@AUGMENTATIONS.register("noise", config=NoiseConfig)
class Noise(Augmentation):
    """White Gaussian noise at an SNR drawn from [snr_min, snr_max] dB, with probability prob."""

    def __init__(self, cfg: NoiseConfig):
        self.cfg = cfg

    def draw(self, rng: np.random.Generator) -> float | None:
        """The SNR of this utterance's noise, or None (no noise). Always two draws, whatever the outcome."""
        hit, snr = rng.random(), rng.uniform(self.cfg.snr_min, self.cfg.snr_max)
        return float(snr) if hit < self.cfg.prob else None

    @staticmethod
    def apply(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
        """``wave`` + noise of power ``mean(wave²) / 10^(snr_db / 10)``; a mix that would clip is scaled down
        as a whole (which keeps the ratio)."""
        power = float(np.mean(np.square(wave, dtype=np.float64)))
        noise = rng.standard_normal(len(wave)) * np.sqrt(power / 10 ** (snr_db / 10))
        mix = wave + noise
        peak = float(np.max(np.abs(mix))) if len(mix) else 0.0
        if peak > 1.0:
            mix /= peak
        return mix.astype(np.float32)

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        snr = self.draw(rng)
        return wave if snr is None else self.apply(wave, snr, rng)

    def __repr__(self) -> str:
        c = self.cfg
        return f"noise(p {c.prob:g}, SNR {c.snr_min:g}-{c.snr_max:g} dB)"
