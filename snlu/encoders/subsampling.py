"""Conv2d front of the audio encoders: 4x time subsampling, as in the reference (two 3x3, stride 2)."""

from __future__ import annotations

from torch import Tensor, nn

from snlu.core.frames import subsampled_lengths

__all__ = ["Conv2dSubsampling", "subsampled_lengths"]


class Conv2dSubsampling(nn.Module):
    """(B, T, F) features -> (B, T', d_model) with T' = ((T - 1) // 2 - 1) // 2."""

    def __init__(self, in_feats: int, d_model: int, channels: int = 256):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, 2), nn.ReLU(), nn.Conv2d(channels, channels, 3, 2), nn.ReLU()
        )
        f = ((in_feats - 1) // 2 - 1) // 2
        self.out = nn.Linear(channels * f, d_model)

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = self.conv(feats.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = x.shape
        x = self.out(x.transpose(1, 2).reshape(b, t, c * f))  # (B, T', d)
        return x, subsampled_lengths(lengths).clamp(max=t)
