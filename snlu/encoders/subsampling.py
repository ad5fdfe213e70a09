"""Conv2d front of the audio encoders: 4x time subsampling, as in the reference (two 3x3, stride 2).

The parameters are those of ``Conv2d(1, C, 3, 2) + ReLU + Conv2d(C, C, 3, 2) + ReLU + Linear(C * F', d)``
(state-dict keys ``conv.0.*``, ``conv.2.*``, ``out.*``), computed in a faster but exact formulation, channels
last from start to end (benchmarks/subsampling.py measures it against the alternatives):

- the first convolution has one input channel: a matmul of the 3x3 patches (B*T1*F1, 9) with the (9, C)
  weight, bias added in the same call, gives (B, T1, F1, C) directly, where oneDNN runs a slow
  one-channel kernel and reorders its output (60 MB for 16 x 4 s) twice;
- the second runs on that tensor as a channels-last (NHWC) view, the layout oneDNN and cuDNN compute in,
  with no reorder, and returns channels-last;
- the Linear reads (B, T', F', C) as it lies, with its weight's columns permuted from (C, F') to (F', C)
  order instead of copying the activations to (B, T', C, F').
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snlu.core.frames import subsampled_lengths

__all__ = ["Conv2dSubsampling"]


def first_conv(feats: Tensor, conv: nn.Conv2d) -> Tensor:
    """relu(conv(feats)) of a one-channel 3x3 stride-2 ``conv``: (B, T, F) -> (B, T1, F1, C), as one matmul.

    The (9, C) weight is made row-major: autograd then computes its gradient as patches^T @ grad, a (9, M) @
    (M, C) matmul, instead of (grad^T @ patches)^T, which BLAS runs ~10x slower with only 9 output columns.
    """
    patches = feats.unfold(1, 3, 2).unfold(2, 3, 2)  # (B, T1, F1, 3, 3): the kernel's (kh, kw) order
    b, t, f = patches.shape[:3]
    y = torch.addmm(conv.bias, patches.reshape(b * t * f, 9), conv.weight.view(-1, 9).t().contiguous())
    return y.relu_().view(b, t, f, -1)


def flatten_weight(linear: nn.Linear, channels: int, bins: int) -> Tensor:
    """``linear``'s weight with its input columns in (F', C) order instead of (C, F')."""
    return linear.weight.view(-1, channels, bins).transpose(1, 2).reshape(-1, bins * channels)


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
        first, second = self.conv[0], self.conv[2]
        x = first_conv(feats, first).permute(0, 3, 1, 2)  # (B, C, T1, F1), channels-last strides
        x = F.relu(F.conv2d(x, second.weight, second.bias, 2), inplace=True)
        x = x.permute(0, 2, 3, 1)  # (B, T', F', C): a view when the convolution kept channels-last
        b, t, f, c = x.shape
        x = F.linear(x.reshape(b, t, f * c), flatten_weight(self.out, c, f), self.out.bias)  # (B, T', d)
        return x, subsampled_lengths(lengths).clamp(max=t)
