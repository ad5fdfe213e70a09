"""``raw``: text tokens cross-attend to all audio frames."""

from __future__ import annotations

from torch import Tensor

from snlu.fusions.base import CrossAttentionBlock, Fusion, FusionConfig
from snlu.registry import FUSIONS


@FUSIONS.register("raw", config=FusionConfig)
class RawFusion(Fusion):
    """BERT-style cross-attention of the text tokens over the audio encoder's frames."""

    consumes = ("frames",)

    def __init__(self, cfg: FusionConfig, text_dim: int, audio_dim: int, intermediate_size: int, text_heads: int):
        super().__init__()
        inter = cfg.intermediate_size or intermediate_size
        heads = text_heads if cfg.num_heads is None else cfg.num_heads  # null: the text encoder's
        self.block = CrossAttentionBlock(text_dim, audio_dim, heads, cfg.dropout, inter)

    def forward(self, text: Tensor, text_mask: Tensor, frames: Tensor, frame_mask: Tensor, tokens: Tensor | None
                ) -> Tensor:
        return self.block(text, frames, frame_mask)
