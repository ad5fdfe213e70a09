"""Conformer speech encoder: the same Conv2d subsampling in front of torchaudio's Conformer."""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn
from torchaudio.models import Conformer
from torchaudio.models.conformer import _lengths_to_padding_mask

from snlu.core.tensors import lengths_mask
from snlu.encoders.audio import AudioEncoderConfig
from snlu.encoders.subsampling import Conv2dSubsampling
from snlu.registry import AUDIO_ENCODERS


@dataclasses.dataclass
class ConformerConfig(AudioEncoderConfig):
    """Conformer options; ``n_blocks`` conformer layers."""

    n_blocks: int = 6
    ffn_dim: int = 1024
    kernel_size: int = 15


@AUDIO_ENCODERS.register("conformer", config=ConformerConfig)
class ConformerAudioEncoder(nn.Module):
    """Conv2d 4x subsampling + torchaudio.models.Conformer."""

    def __init__(self, cfg: ConformerConfig, in_feats: int):
        super().__init__()
        self.dim = cfg.d_model
        self.subsample = Conv2dSubsampling(in_feats, cfg.d_model)
        self.blocks = Conformer(
            input_dim=cfg.d_model,
            num_heads=cfg.num_heads,
            ffn_dim=cfg.ffn_dim,
            num_layers=cfg.n_blocks,
            depthwise_conv_kernel_size=cfg.kernel_size,
            dropout=cfg.dropout,
        )
        # torchaudio's convolution module does not mask padding: zero padded frames right before
        # every depthwise convolution so that padding never leaks into real frames.
        self._mask: Tensor | None = None
        for module in self.blocks.modules():
            if isinstance(module, nn.Conv1d) and module.groups == module.in_channels > 1:
                module.register_forward_pre_hook(self._zero_padding)

    def _zero_padding(self, module: nn.Module, args: tuple[Tensor]) -> tuple[Tensor]:
        x = args[0]  # (B, D, T)
        return (x * self._mask[:, None, : x.shape[-1]].to(x.dtype),) if self._mask is not None else args

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, F), (B,) -> (B, T', d_model), (B,)."""
        x, lengths = self.subsample(feats, lengths)
        self._mask = lengths_mask(lengths, x.shape[1])
        try:
            x, _ = self.blocks(x, lengths.clamp_min(1))
        finally:
            self._mask = None
        return x, lengths

    def encode_with_block(self, feats: Tensor, lengths: Tensor, block: int) -> tuple[Tensor, Tensor, Tensor]:
        """``forward``'s outputs and the output of conformer layer ``block`` (1-based; each ends in its own
        LayerNorm): the layers one at a time, as torchaudio's Conformer runs them."""
        layers = self.blocks.conformer_layers
        if not 1 <= block <= len(layers):
            raise ValueError(f"ctc_head.aux.block: {block} is beyond the encoder's {len(layers)} blocks")
        x, lengths = self.subsample(feats, lengths)
        self._mask = lengths_mask(lengths, x.shape[1])
        padding = _lengths_to_padding_mask(lengths.clamp_min(1))  # what torchaudio's Conformer.forward builds
        try:
            x = x.transpose(0, 1)  # (T', B, d): the layers' layout
            inner = x
            for i, layer in enumerate(layers, start=1):
                x = layer(x, padding)
                if i == block:
                    inner = x
        finally:
            self._mask = None
        return x.transpose(0, 1), lengths, inner.transpose(0, 1)
