"""``tokenized``: text tokens cross-attend to the tokenized audio (one vector per word piece)."""

from __future__ import annotations

from torch import Tensor

from snlu.fusions.base import FusionConfig
from snlu.fusions.raw import RawFusion
from snlu.registry import FUSIONS


@FUSIONS.register("tokenized", config=FusionConfig)
class TokenizedFusion(RawFusion):
    """BERT-style cross-attention of the text tokens over the audio tokenizer's vectors."""

    consumes = ("tokens",)

    def forward(self, text: Tensor, text_mask: Tensor, frames: Tensor, frame_mask: Tensor, tokens: Tensor | None
                ) -> Tensor:
        return self.block(text, tokens, text_mask)
