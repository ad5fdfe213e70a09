"""The reference speech encoder: Conv2d 4x subsampling, sinusoidal positions, post-norm Transformer.

Dropout sits where the reference has it: on the two residual branches of every block (``dropout``). Dropout
of the attention probabilities (``attention_dropout``), inside the feed-forward after its ReLU
(``ffn_dropout``) and on the positional encoding (``pos_dropout``) are options, off by default; a placement
that is off costs nothing (no mask is drawn) and attention without dropout runs the fused SDPA kernel.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from snlu.core.checks import in_range
from snlu.core.schema import recipe_own
from snlu.core.tensors import lengths_mask
from snlu.encoders.audio import AudioEncoderConfig, SinusoidalPositions
from snlu.encoders.subsampling import Conv2dSubsampling
from snlu.registry import AUDIO_ENCODERS


@dataclasses.dataclass
class TransformerEncoderConfig(AudioEncoderConfig):
    """``dropout`` on the residual branches (reference 0.1); the other placements are off in the reference."""

    attention_dropout: float = dataclasses.field(default=0.0, metadata=recipe_own())
    ffn_dropout: float = dataclasses.field(default=0.0, metadata=recipe_own())
    pos_dropout: float = dataclasses.field(default=0.0, metadata=recipe_own())
    norm_first: bool = False  # pre-norm blocks + a final LayerNorm (easier to train from scratch); reference: post-norm

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("attention_dropout", "ffn_dropout", "pos_dropout"):
            in_range(self, name, 0.0, 1.0)


def dropout_or_identity(p: float) -> nn.Module:
    """``nn.Dropout(p)``, or a no-op module when ``p`` is 0 (nothing drawn, nothing multiplied)."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


@AUDIO_ENCODERS.register("transformer", config=TransformerEncoderConfig)
class TransformerAudioEncoder(nn.Module):
    """Conv2d subsampling + n_blocks Transformer blocks, post-norm (the reference: 9 x d256, 4 heads) or pre-norm."""

    def __init__(self, cfg: TransformerEncoderConfig, in_feats: int):
        super().__init__()
        self.dim = cfg.d_model
        self.subsample = Conv2dSubsampling(in_feats, cfg.d_model)
        self.positions = SinusoidalPositions(cfg.d_model, cfg.pos_dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.num_heads, cfg.ffn_dim, cfg.dropout, activation="relu", batch_first=True,
            norm_first=cfg.norm_first,
        )
        # Same parameters and state-dict keys as torch's layer; only where dropout is drawn changes.
        layer.self_attn.dropout = cfg.attention_dropout  # on the attention probabilities
        layer.dropout = dropout_or_identity(cfg.ffn_dropout)  # inside the feed-forward, after the ReLU
        layer.dropout1 = dropout_or_identity(cfg.dropout)  # residual branch of the attention
        layer.dropout2 = dropout_or_identity(cfg.dropout)  # residual branch of the feed-forward
        # nested tensors would drop padded rows' outputs to zero differently in eval: keep dense
        final = nn.LayerNorm(cfg.d_model) if cfg.norm_first else None
        self.blocks = nn.TransformerEncoder(layer, cfg.n_blocks, norm=final, enable_nested_tensor=False)

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, F), (B,) -> (B, T', d_model), (B,) subsampled lengths."""
        x, lengths = self.subsample(feats, lengths)
        x = self.positions(x)
        x = self.blocks(x, src_key_padding_mask=~lengths_mask(lengths, x.shape[1]))
        return x, lengths

    def encode_with_block(self, feats: Tensor, lengths: Tensor, block: int) -> tuple[Tensor, Tensor, Tensor]:
        """``forward``'s outputs and the output of block ``block`` (1-based; through the final LayerNorm of pre-norm
        blocks, as ESPnet's intermediate CTC reads it): the same layers, one at a time, as ``nn.TransformerEncoder``
        runs them outside its nested-tensor path."""
        x, lengths = self.subsample(feats, lengths)
        x = self.positions(x)
        padding = ~lengths_mask(lengths, x.shape[1])  # (each layer turns it into the float mask the stack would give)
        final = self.blocks.norm if self.blocks.norm is not None else nn.Identity()
        inner = None
        for i, layer in enumerate(self.blocks.layers, start=1):
            x = layer(x, src_key_padding_mask=padding)
            if i == block:
                inner = final(x)
        if inner is None:
            raise ValueError(f"ctc_head.aux.block: {block} is beyond the encoder's {len(self.blocks.layers)} blocks")
        return final(x), lengths, inner
