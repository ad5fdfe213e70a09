"""snlu.core.frames: the frame counts of Kaldi fbank (torchaudio) and of the encoders' Conv2d subsampling."""

from __future__ import annotations

import pytest
import torch
import torchaudio

from snlu.core.frames import fbank_frames, subsampled_lengths
from snlu.encoders.subsampling import Conv2dSubsampling


@pytest.mark.parametrize("samples", [399, 400, 401, 560, 16000, 23999])
def test_fbank_frames_equal_torchaudio(samples):
    wave = torch.randn(1, samples)
    if samples < 400:
        assert fbank_frames(samples) == 0
        return
    feats = torchaudio.compliance.kaldi.fbank(wave, num_mel_bins=23, sample_frequency=16000)
    assert fbank_frames(samples) == feats.shape[0]


def test_subsampled_lengths_equal_the_convolutions():
    conv = Conv2dSubsampling(16, 8, channels=2)
    for t in range(7, 40):
        out, _ = conv(torch.zeros(1, t, 16), torch.tensor([t]))
        assert int(subsampled_lengths(torch.tensor([t]))[0]) == out.shape[1]
    assert subsampled_lengths(torch.tensor([0, 3, 6])).tolist() == [0, 0, 0]
