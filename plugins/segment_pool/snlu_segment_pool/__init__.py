"""snlu-segment-pool: mean-pool each character's aligned audio segment, an example snlu plugin (a new
audio tokenizer).

The CTC Viterbi forced alignment of the transcript (``snlu.tokenizers.align``) gives every character the
frames where the best path emits it. CTC spends most frames on blank, so those frames are few: with
``segment: span`` (the default) character j owns every frame from its first aligned frame up to the next
character's first aligned frame (the first character also owns the frames before it), so the segments tile
the utterance; ``segment: aligned`` pools only the frames the alignment gives to j. An utterance with no
feasible alignment (fewer frames than its transcript needs) is cut into equal segments instead.

Importing this module registers the audio tokenizer ``segmean``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from snlu.core.checks import one_of
from snlu.registry import AUDIO_TOKENIZERS
from snlu.tokenizers.align import alignment_mask, ctc_forced_align
from snlu.tokenizers.base import AudioTokenizer

__version__ = "0.1.0"


@dataclasses.dataclass
class SegmentPoolConfig:
    """``segment``: span (each character's frames up to the next character) or aligned (its frames only)."""

    segment: str = "span"

    def __post_init__(self) -> None:
        one_of(self, "segment", ("span", "aligned"))


@AUDIO_TOKENIZERS.register("segmean", config=SegmentPoolConfig)
class SegmentMeanTokenizer(AudioTokenizer):
    """Mean of the encoder frames in each character's CTC-aligned segment (no parameters)."""

    consumes = ("frames", "ctc_logits")  # the frames it pools, the CTC logits it aligns with

    def __init__(self, cfg: SegmentPoolConfig):
        super().__init__()
        self.segment = cfg.segment

    def forward(self, frames: Tensor, frame_lengths: Tensor, ctc_logits: Tensor, char_ids: Tensor,
                char_lengths: Tensor) -> Tensor:
        """frames (B, T, d), CTC logits (B, T, V), chars (B, C) -> (B, C, d); padded characters get zeros."""
        owner = self.segments(ctc_logits, frame_lengths, char_ids, char_lengths)  # (B, T)
        member = alignment_mask(owner, char_ids.shape[1]).to(frames.dtype)  # (B, C, T)
        return (member @ frames) / member.sum(-1, keepdim=True).clamp_min(1.0)

    @torch.no_grad()
    def segments(self, ctc_logits: Tensor, frame_lengths: Tensor, char_ids: Tensor, char_lengths: Tensor) -> Tensor:
        """(B, T) long: the character each frame belongs to, -1 for frames no character owns (and padding)."""
        b, t = ctc_logits.shape[:2]
        log_probs = ctc_logits.detach().float().log_softmax(-1)
        index, feasible = ctc_forced_align(log_probs, frame_lengths, char_ids, char_lengths)  # (B, T), (B,)
        if self.segment == "span":  # the last character started at or before t; frames before the first go to it
            index = torch.cummax(index, dim=1).values.clamp_min(0)
        pos = torch.arange(t, device=index.device)[None, :]  # (1, T)
        lengths = frame_lengths.to(index.device)[:, None]
        equal = torch.div(pos * char_lengths.to(index.device)[:, None], lengths.clamp_min(1), rounding_mode="floor")
        index = torch.where(feasible[:, None], index, equal)
        real = (pos < lengths) & (index < char_lengths.to(index.device)[:, None])
        return torch.where(real, index, -1)
