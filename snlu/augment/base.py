"""The contract of a waveform augmentation (``AUGMENTATIONS``): one utterance's 16 kHz samples in, the augmented
samples out, every random draw from the generator it is given (the loader seeds it per utterance and epoch)."""

from __future__ import annotations

import numpy as np

from snlu.registry import AUGMENTATIONS


class Augmentation:
    """Base of the augmentations; ``__init__(cfg)`` takes the component's config."""

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


AUGMENTATIONS.require(Augmentation)
