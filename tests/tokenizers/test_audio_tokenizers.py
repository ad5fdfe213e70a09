"""Audio tokenizers: one vector per character, weights restricted as documented, padding invariant."""

from __future__ import annotations

import pytest
import torch

from snlu.registry import AUDIO_TOKENIZERS
from snlu.tokenizers.align import ctc_forced_align


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(2, 30, 8, generator=g)
    logits = torch.randn(2, 30, 7, generator=g) * 3
    chars = torch.tensor([[1, 2, 3, 3, 4], [5, 6, 0, 0, 0]])
    return frames, torch.tensor([30, 18]), logits, chars, torch.tensor([5, 2])


@pytest.mark.parametrize("name", ["all", "dpmask"])
def test_shapes_and_padding_invariance(name):
    tok = AUDIO_TOKENIZERS.build(name)
    frames, fl, logits, chars, cl = inputs()
    out = tok(frames, fl, logits, chars, cl)
    assert out.shape == (2, 5, 8)
    alone = tok(frames[1:, :18], fl[1:], logits[1:, :18], chars[1:, :2], cl[1:])
    torch.testing.assert_close(out[1, :2], alone[0])
    assert out[1, 2:].abs().sum() == 0  # padded characters give zero vectors


def test_all_is_softmax_over_all_frames():
    tok = AUDIO_TOKENIZERS.build("all", config={"temperature": 2.0})
    frames, fl, logits, chars, cl = inputs(1)
    out = tok(frames, fl, logits, chars, cl)
    w = torch.softmax(logits[0, :, chars[0, 2]] / 2.0, dim=0)
    torch.testing.assert_close(out[0, 2], w @ frames[0])


def test_dpmask_uses_only_aligned_frames():
    tok = AUDIO_TOKENIZERS.build("dpmask")
    frames, fl, logits, chars, cl = inputs(2)
    out = tok(frames, fl, logits, chars, cl)
    index, feasible = ctc_forced_align(logits.log_softmax(-1), fl, chars, cl)
    assert feasible.all()
    for j in range(5):
        sel = index[0] == j
        w = torch.softmax(logits[0, sel, chars[0, j]], dim=0)
        torch.testing.assert_close(out[0, j], w @ frames[0, sel])


def test_dpmask_falls_back_to_all_frames_when_infeasible():
    frames, fl, logits, chars, cl = inputs(3)
    fl = torch.tensor([4, 18])  # 4 frames cannot hold 5 characters with a repeat
    a = AUDIO_TOKENIZERS.build("all")(frames, fl, logits, chars, cl)
    d = AUDIO_TOKENIZERS.build("dpmask")(frames, fl, logits, chars, cl)
    torch.testing.assert_close(a[0], d[0])
    assert torch.isfinite(d).all()


@pytest.mark.parametrize("name", ["all", "dpmask"])
def test_tokenizer_contract(name):
    from snlu.testing import check_audio_tokenizer

    check_audio_tokenizer(name, {"temperature": 2.0}, invalid=[{"temperature": 0.0}])
