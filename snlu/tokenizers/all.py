"""``all``: each character's vector is a softmax-weighted sum over all frames."""

from __future__ import annotations

from torch import Tensor

from snlu.registry import AUDIO_TOKENIZERS
from snlu.tokenizers.base import AudioTokenizerConfig, SoftmaxTokenizer, frames_allowed


@AUDIO_TOKENIZERS.register("all", config=AudioTokenizerConfig)
class AllFramesTokenizer(SoftmaxTokenizer):
    """softmax_t(logit[t, c_j] / tau) over all frames, weighted sum of encoder frames."""

    def frame_mask(self, ctc_logits: Tensor, frame_lengths: Tensor, char_ids: Tensor, char_lengths: Tensor) -> Tensor:
        return frames_allowed(frame_lengths, char_ids.shape[1], ctc_logits.shape[1])
