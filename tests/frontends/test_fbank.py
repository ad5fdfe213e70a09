"""Fbank frontend: a real AISHELL recording, normalisation, CMVN, SpecAugment only in training."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from snlu.core.errors import ConfigError
from snlu.data.audio import read_wav
from snlu.frontends.fbank import SpecAugmentConfig, spec_augment
from snlu.registry import AUDIO_FRONTENDS


def frontend(**over):
    return AUDIO_FRONTENDS.build("fbank", config=over)


def aishell_wav() -> Path:
    root = Path(importlib.util.find_spec("s3tokenizer").submodule_search_locations[0])
    return root / "assets" / "BAC009S0764W0121.wav"


def test_real_aishell_recording_through_frontend():
    fb = frontend()
    wave = read_wav(aishell_wav())
    feats = fb.featurize(wave)
    assert feats.shape == (fb.num_frames(len(wave)), 40)
    assert 100 < feats.shape[0] < 1468 and torch.isfinite(feats).all()
    fb.eval()
    out = fb(feats[None], torch.tensor([feats.shape[0]]))[0]
    std, mean = torch.std_mean(feats)  # the reference: one scalar pair over the whole T x F matrix
    torch.testing.assert_close(out, (feats - mean) / std, atol=1e-4, rtol=1e-4)
    bins = frontend(norm="utterance_bins").eval()
    out = bins(feats[None], torch.tensor([feats.shape[0]]))[0]
    torch.testing.assert_close(out.mean(0), torch.zeros(40), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(0, unbiased=False), torch.ones(40), atol=1e-2, rtol=0)


def test_80_bins_and_global_cmvn():
    fb = frontend(num_mel_bins=80, norm="global")
    feats = [fb.featurize(torch.randn(16000 * s) * 0.1) for s in (1, 2)]
    stats = fb.fit_cmvn(feats)
    allf = torch.cat(feats)
    torch.testing.assert_close(torch.tensor(stats["mean"]), allf.mean(0), atol=1e-3, rtol=1e-4)
    fb.eval()
    out = fb(torch.nn.utils.rnn.pad_sequence(feats, batch_first=True), torch.tensor([len(f) for f in feats]))
    assert out.shape[-1] == 80 and out[0, len(feats[0]) :].abs().sum() == 0  # padding stays zero


@pytest.mark.parametrize("norm", ["utterance", "utterance_bins"])
def test_utterance_norm_ignores_padding(norm):
    fb = frontend(norm=norm).eval()
    a, b = torch.randn(50, 40) * 3 + 1, torch.randn(20, 40)
    batch = torch.nn.utils.rnn.pad_sequence([a, b], batch_first=True)
    out = fb(batch, torch.tensor([50, 20]))
    torch.testing.assert_close(out[1, :20], fb(b[None], torch.tensor([20]))[0])
    torch.testing.assert_close(out[0], fb(a[None], torch.tensor([50]))[0])
    assert out[1, 20:].abs().sum() == 0


def test_specaugment_only_in_training_and_within_limits():
    fb = frontend()
    x = torch.ones(4, 400, 40)
    lengths = torch.tensor([400, 300, 200, 100])
    torch.manual_seed(0)
    cfg = SpecAugmentConfig()
    for _ in range(20):
        out = spec_augment(x, lengths, cfg)
        for b, n in enumerate(lengths.tolist()):
            zero_frames = (out[b, :n] == 0).all(-1).sum().item()
            zero_bins = (out[b, :n] == 0).all(0).sum().item()
            assert zero_frames <= 2 * min(100, int(0.05 * n))
            assert zero_bins <= 2 * int(0.3 * 40)
    assert (spec_augment(x, lengths, cfg) == 0).any()  # masks are drawn
    fb.train()
    y = fb(torch.randn(4, 400, 40), lengths)
    fb.eval()
    z = torch.randn(4, 400, 40)
    torch.testing.assert_close(fb(z, lengths), fb(z, lengths))  # eval is deterministic
    assert y.shape == z.shape


def test_cmvn_file_is_loaded_exactly_and_checked(tmp_path):
    path = tmp_path / "cmvn.json"
    mean, std = [0.25 * i - 3 for i in range(40)], [1 + i / 7 for i in range(40)]
    path.write_text(json.dumps({"mean": mean, "std": std}))
    fb = frontend(norm="global", cmvn=str(path))
    fb.load_cmvn(path)
    assert torch.equal(fb.cmvn_mean, torch.tensor(mean)) and torch.equal(fb.cmvn_std, torch.tensor(std))
    with pytest.raises(ConfigError, match=r"^frontend.cmvn: .*cmvn.json: statistics of dimension \[40\]/\[40\], "
                                          r"the frontend has num_mel_bins=80$"):
        frontend(num_mel_bins=80, norm="global", cmvn=str(path)).load_cmvn(path)
    path.write_text(json.dumps({"mean": mean, "std": [0.0] * 40}))
    with pytest.raises(ConfigError, match=r"std > 0"):
        fb.load_cmvn(path)
    with pytest.raises(ConfigError, match=r"^frontend.cmvn: statistics are used only with norm: global"):
        frontend(cmvn=str(path))
    with pytest.raises(ConfigError, match=r"^frontend.cmvn: file not found"):
        frontend(norm="global", cmvn=str(tmp_path / "nope.json"))
