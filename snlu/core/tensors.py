"""Tensor helpers every layer shares: the one lengths -> mask function, and right-padding."""

from __future__ import annotations

import torch
from torch import Tensor


def lengths_mask(lengths: Tensor, size: int | None = None) -> Tensor:
    """(B,) lengths -> (B, size) bool mask, True on real positions (``size`` defaults to the longest length);
    on the device of ``lengths``."""
    size = int(lengths.max()) if size is None else size
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def pad(seqs: list[Tensor], value: float = 0) -> Tensor:
    """Right-pad tensors of shape (L_i, ...) to (B, max L, ...)."""
    return torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=value)
