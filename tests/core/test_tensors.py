"""snlu.core.tensors.lengths_mask against a loop, and pad."""

from __future__ import annotations

import torch

from snlu.core.tensors import lengths_mask, pad


def test_lengths_mask_equals_a_loop():
    lengths = torch.tensor([3, 0, 5, 1])
    for size in (None, 5, 7):
        mask = lengths_mask(lengths, size)
        width = size or 5
        assert mask.dtype == torch.bool and mask.shape == (4, width)
        assert mask.tolist() == [[j < n for j in range(width)] for n in lengths.tolist()]


def test_pad_right_pads_with_the_value():
    out = pad([torch.ones(2, 3), torch.ones(4, 3)], value=-1.0)
    assert out.shape == (2, 4, 3) and out[0, 2:].eq(-1).all() and out[1].eq(1).all()
