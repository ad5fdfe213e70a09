"""Frame arithmetic of the speech pipeline, shared by the frontend, the encoders and the corpus checks:
how many fbank frames a number of samples gives, and how many the encoders' 4x Conv2d subsampling keeps."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (torch-free at import: the exported models' runtime reads the frame arithmetic)
    from torch import Tensor

SAMPLE_RATE = 16000
FRAME_LENGTH_MS = 25.0  # the recipes' (Kaldi's default) window
FRAME_SHIFT_MS = 10.0


def fbank_frames(num_samples: int, frame_length_ms: float = FRAME_LENGTH_MS, frame_shift_ms: float = FRAME_SHIFT_MS,
                 sample_rate: int = SAMPLE_RATE) -> int:
    """Frames of Kaldi fbank (snip_edges=True) for ``num_samples``: 0 when shorter than one window."""
    win = int(sample_rate * frame_length_ms / 1000)
    hop = int(sample_rate * frame_shift_ms / 1000)
    return 0 if num_samples < win else 1 + (num_samples - win) // hop


def frames_seconds(frames: int, frame_length_ms: float = FRAME_LENGTH_MS,
                   frame_shift_ms: float = FRAME_SHIFT_MS) -> float:
    """The longest audio, in seconds, that gives at most ``frames`` fbank frames (``data.max_frames`` as time)."""
    return ((frames - 1) * frame_shift_ms + frame_length_ms) / 1000.0


def subsampled_lengths(lengths: Tensor) -> Tensor:
    """Frame counts after two unpadded 3x3 stride-2 convolutions."""
    for _ in range(2):
        lengths = (lengths - 3).div(2, rounding_mode="floor") + 1
    return lengths.clamp_min(0)
