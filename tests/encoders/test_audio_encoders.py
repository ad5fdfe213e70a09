"""Audio encoders: output shapes, subsampled lengths, padding never changes real frames."""

from __future__ import annotations

import pytest
import torch

from snlu.core.frames import subsampled_lengths
from snlu.registry import AUDIO_ENCODERS


def build(name: str, **over):
    return AUDIO_ENCODERS.build(name, 40, config={"n_blocks": 2, "d_model": 32, "ffn_dim": 64, **over}).eval()


@pytest.mark.parametrize("name", ["transformer", "conformer"])
def test_shapes_and_padding_invariance(name):
    torch.manual_seed(0)
    enc = build(name)
    feats = torch.randn(3, 120, 40)
    lengths = torch.tensor([120, 77, 31])
    for b, n in enumerate(lengths):
        feats[b, n:] = 0
    with torch.no_grad():
        out, out_lengths = enc(feats, lengths)
        assert out.shape == (3, subsampled_lengths(torch.tensor(120)).item(), 32)
        assert out_lengths.tolist() == [((n - 1) // 2 - 1) // 2 for n in lengths.tolist()]
        for b, n in enumerate(lengths.tolist()):
            alone, alone_len = enc(feats[b : b + 1, :n], lengths[b : b + 1])
            assert alone_len.item() == out_lengths[b].item()
            torch.testing.assert_close(out[b, : alone_len.item()], alone[0], atol=2e-5, rtol=1e-4)


def test_subsampled_lengths_match_convolutions():
    enc = build("transformer")
    for t in (7, 8, 9, 50, 101):
        x, n = enc.subsample(torch.randn(1, t, 40), torch.tensor([t]))
        assert x.shape[1] == n.item() == subsampled_lengths(torch.tensor(t)).item()


def test_gradients_flow():
    enc = build("conformer").train()
    out, _ = enc(torch.randn(2, 60, 40), torch.tensor([60, 40]))
    out.sum().backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ["transformer", "conformer"])
def test_encoder_contract(name):
    from snlu.testing import check_audio_encoder

    check_audio_encoder(name, {"n_blocks": 2, "d_model": 32, "ffn_dim": 64}, invalid=[{"num_heads": 3}])


def test_pre_norm_option_is_layernorm_first_with_a_final_norm():
    """``norm_first``: each block is x + f(LN(x)) (checked against a hand-written block), the stack ends in a
    LayerNorm; the default is the reference's post-norm LN(x + f(x))."""
    torch.manual_seed(0)
    post, pre = build("transformer"), build("transformer", norm_first=True)
    assert post.blocks.norm is None and isinstance(pre.blocks.norm, torch.nn.LayerNorm)
    layer, x = pre.blocks.layers[0], torch.randn(2, 9, 32)
    with torch.no_grad():
        h = layer.norm1(x)
        h = x + layer.self_attn(h, h, h, need_weights=False)[0]
        expected = h + layer.linear2(torch.relu(layer.linear1(layer.norm2(h))))
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
    from snlu.testing import check_audio_encoder

    check_audio_encoder("transformer", {"n_blocks": 2, "d_model": 32, "ffn_dim": 64, "norm_first": True})
