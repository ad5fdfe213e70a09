"""The waveform frontend: the 16 kHz samples themselves, for encoders that read audio (``hf_ssl``,
``whisper_encoder``), so no filterbank is computed for them.

A "feature" is one sample: ``featurize`` gives (S, 1), the processor pads a batch to (B, S, 1) and ``forward``
only keeps the padding at zero. The model's own normalisation (zero mean and unit variance per utterance when
its feature-extractor config says ``do_normalize``, Whisper's log-mel) and SpecAugment-like masking
(``audio_encoder.mask_time_prob``) are the encoder's: they follow its model folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from snlu.core.tensors import lengths_mask
from snlu.registry import AUDIO_FRONTENDS


@dataclasses.dataclass
class WaveformConfig:
    """No options: the encoder normalises the samples as its model folder says."""


@AUDIO_FRONTENDS.register("waveform", config=WaveformConfig)
class Waveform(nn.Module):
    """The raw 16 kHz samples (B, S, 1) for self-supervised speech encoders; no filterbank, no CMVN."""

    def __init__(self, cfg: WaveformConfig):
        super().__init__()
        self.cfg = cfg
        self.dim = 1

    @classmethod
    def optimizer_groups(cls, cfg: WaveformConfig, group: str) -> list[str]:
        """No parameters: in no optimiser group."""
        return []

    def featurize(self, wave: np.ndarray | Tensor) -> Tensor:
        """One 16 kHz float waveform in [-1, 1] -> (S, 1)."""
        return torch.as_tensor(wave, dtype=torch.float32).reshape(-1, 1)

    def num_frames(self, num_samples: int) -> int:
        """One frame per sample."""
        return num_samples

    def save_cmvn(self, path: Path, with_settings: bool = False) -> None:
        """A waveform has no CMVN statistics: nothing is written (the task's save hook calls this)."""

    def forward(self, feats: Tensor, lengths: Tensor) -> Tensor:
        """(B, S, 1) padded samples -> the same, padding exactly zero."""
        return feats * lengths_mask(lengths, feats.shape[1]).unsqueeze(-1).to(feats.dtype)
