"""Fusions: (B, N, Dt) out, padding of text, frames or tokens never changes the real positions."""

from __future__ import annotations

import pytest
import torch

from snlu.registry import FUSIONS


@pytest.mark.parametrize("name", ["raw", "tokenized", "concat"])
def test_shape_masking_and_gradients(name):
    torch.manual_seed(0)
    fusion = FUSIONS.build(name, 32, 16, 64, 4, config={"num_heads": 4} if name != "concat" else {}).eval()
    text, frames, tokens = torch.randn(2, 7, 32), torch.randn(2, 20, 16), torch.randn(2, 7, 16)
    tmask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3], dtype=torch.bool)
    fmask = torch.tensor([[1] * 20, [1] * 11 + [0] * 9], dtype=torch.bool)
    text[1, 4:], tokens[1, 4:], frames[1, 11:] = 9.0, 9.0, 9.0  # garbage in padding
    out = fusion(text, tmask, frames, fmask, tokens)
    assert out.shape == (2, 7, 32)
    alone = fusion(text[1:, :4], tmask[1:, :4], frames[1:, :11], fmask[1:, :11], tokens[1:, :4])
    torch.testing.assert_close(out[1, :4], alone[0], atol=1e-5, rtol=1e-4)
    fusion.train()
    text.requires_grad_(True)
    fusion(text, tmask, frames, fmask, tokens).sum().backward()
    assert all(p.grad is not None for p in fusion.parameters())


def test_num_heads_null_follows_the_text_encoders_heads():
    assert FUSIONS.build("raw", 32, 16, 64, 8).block.heads == 8  # num_heads: null (the default)
    assert FUSIONS.build("tokenized", 32, 16, 64, 8, config={"num_heads": 2}).block.heads == 2


def test_num_heads_must_divide_text_size():
    with pytest.raises(ValueError, match="num_heads"):
        FUSIONS.build("raw", 30, 16, 64, 4, config={"num_heads": 4})


@pytest.mark.parametrize("name", ["raw", "tokenized", "concat"])
def test_fusion_contract(name):
    from snlu.testing import check_fusion

    check_fusion(name, {"num_heads": 4} if name != "concat" else {}, invalid=[{"dropout": 1.5}])
