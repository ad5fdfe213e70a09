"""The reference speech encoder: Conv2d 4x subsampling, sinusoidal positions, post-norm Transformer."""

from __future__ import annotations

from torch import Tensor, nn

from snlu.encoders.audio import AudioEncoderConfig, SinusoidalPositions, padding_mask
from snlu.encoders.subsampling import Conv2dSubsampling
from snlu.registry import AUDIO_ENCODERS


@AUDIO_ENCODERS.register("transformer", config=AudioEncoderConfig)
class TransformerAudioEncoder(nn.Module):
    """Conv2d subsampling + n_blocks post-norm Transformer blocks (reference: 9 x d256, 4 heads)."""

    def __init__(self, cfg: AudioEncoderConfig, in_feats: int):
        super().__init__()
        self.dim = cfg.d_model
        self.subsample = Conv2dSubsampling(in_feats, cfg.d_model)
        self.positions = SinusoidalPositions(cfg.d_model, cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.num_heads, cfg.ffn_dim, cfg.dropout, activation="relu", batch_first=True
        )
        # nested tensors would drop padded rows' outputs to zero differently in eval: keep dense
        self.blocks = nn.TransformerEncoder(layer, cfg.n_blocks, enable_nested_tensor=False)

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, F), (B,) -> (B, T', d_model), (B,) subsampled lengths."""
        x, lengths = self.subsample(feats, lengths)
        x = self.positions(x)
        x = self.blocks(x, src_key_padding_mask=~padding_mask(lengths, x.shape[1]))
        return x, lengths
