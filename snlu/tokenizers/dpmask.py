"""``dpmask``: the softmax restricted to the frames CTC forced alignment assigns to each character."""

from __future__ import annotations

import torch
from torch import Tensor

from snlu.registry import AUDIO_TOKENIZERS
from snlu.tokenizers.align import alignment_mask, ctc_forced_align
from snlu.tokenizers.base import AudioTokenizerConfig, SoftmaxTokenizer, frames_allowed


@AUDIO_TOKENIZERS.register("dpmask", config=AudioTokenizerConfig)
class DPMaskTokenizer(SoftmaxTokenizer):
    """Like ``all``, but only over character j's frames in the CTC Viterbi alignment (batched, on device).

    Utterances with no feasible alignment (fewer frames than the transcript needs) fall back to all frames.
    """

    def frame_mask(self, ctc_logits: Tensor, frame_lengths: Tensor, char_ids: Tensor, char_lengths: Tensor) -> Tensor:
        num_chars, num_frames = char_ids.shape[1], ctc_logits.shape[1]
        with torch.no_grad():
            log_probs = ctc_logits.detach().float().log_softmax(-1)
            token_index, feasible = ctc_forced_align(log_probs, frame_lengths, char_ids, char_lengths)
        aligned = alignment_mask(token_index, num_chars)  # (B, C, T)
        everything = frames_allowed(frame_lengths, num_chars, num_frames)
        return torch.where(feasible[:, None, None], aligned, everything)
