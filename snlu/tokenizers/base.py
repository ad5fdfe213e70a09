"""Audio tokenizers turn frames into one vector per transcript character, using the CTC outputs.

``AudioTokenizer`` is the contract every registered tokenizer subclasses; ``SoftmaxTokenizer`` the built-ins'
method (a softmax over frames of each character's CTC logit, ``all`` and ``dpmask`` differing in the frames
allowed)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor, nn

from snlu.core.checks import positive
from snlu.core.tensors import lengths_mask
from snlu.registry import AUDIO_TOKENIZERS


@dataclasses.dataclass
class AudioTokenizerConfig:
    """``temperature`` divides the CTC logits before the softmax over frames."""

    temperature: float = 1.0

    def __post_init__(self) -> None:
        positive(self, "temperature")


class AudioTokenizer(nn.Module):
    """Base class: subclasses say what they read (``consumes``, snlu/tasks/views.py) and implement ``forward``."""

    consumes: ClassVar[tuple[str, ...]] = ("frames", "ctc_logits")

    def forward(self, frames: Tensor, frame_lengths: Tensor, ctc_logits: Tensor | None, char_ids: Tensor,
                char_lengths: Tensor, **audio: Tensor) -> Tensor:
        """frames (B, T, d), frame_lengths (B,), CTC logits (B, T, V) (None unless consumed), chars (B, C),
        char_lengths (B,), other consumed representations by name -> one vector per character (B, C, d)."""
        raise NotImplementedError


AUDIO_TOKENIZERS.require(AudioTokenizer)


class SoftmaxTokenizer(AudioTokenizer):
    """Softmax over frames of each character's CTC logit, restricted by ``frame_mask``."""

    def __init__(self, cfg: AudioTokenizerConfig):
        super().__init__()
        self.temperature = cfg.temperature

    @classmethod
    def optimizer_groups(cls, cfg: AudioTokenizerConfig, group: str) -> list[str]:
        """No trainable parameters: in no optimiser group (a subclass with parameters says ``[group]``)."""
        return []

    def char_scores(self, ctc_logits: Tensor, char_ids: Tensor) -> Tensor:
        """(B, T, V) logits, (B, C) character ids -> (B, C, T) logit of character j at frame t."""
        b, t, _ = ctc_logits.shape
        index = char_ids.unsqueeze(-1).expand(b, char_ids.shape[1], t)
        return torch.gather(ctc_logits.transpose(1, 2), 1, index)

    def frame_mask(
        self, ctc_logits: Tensor, frame_lengths: Tensor, char_ids: Tensor, char_lengths: Tensor
    ) -> Tensor:
        """(B, C, T) bool: the frames character j may draw from."""
        raise NotImplementedError

    def forward(
        self, frames: Tensor, frame_lengths: Tensor, ctc_logits: Tensor, char_ids: Tensor, char_lengths: Tensor
    ) -> Tensor:
        """frames (B, T, d), CTC logits (B, T, V), chars (B, C) -> audio tokens (B, C, d)."""
        allowed = self.frame_mask(ctc_logits, frame_lengths, char_ids, char_lengths)  # (B, C, T)
        real_chars = lengths_mask(char_lengths, char_ids.shape[1])
        allowed = allowed & real_chars[:, :, None]
        scores = self.char_scores(ctc_logits, char_ids).float() / self.temperature
        scores = scores.masked_fill(~allowed, float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # padded chars: no frames -> zeros
        return weights.to(frames.dtype) @ frames


def frames_allowed(frame_lengths: Tensor, num_chars: int, num_frames: int) -> Tensor:
    """(B, C, T) bool: every real frame, for every character."""
    real = lengths_mask(frame_lengths, num_frames)
    return real[:, None, :].expand(-1, num_chars, -1)
