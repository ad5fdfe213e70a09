"""The tensor-op fbank of exported graphs against torchaudio's Kaldi fbank (what the frontend computes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snlu.export.fbank import TensorFbank, check_fbank_settings
from snlu.frontends.fbank import Fbank, FbankConfig

LENGTHS = [400, 401, 1360, 1361, 7777, 16000, 23456]  # one window, the encoder's shortest, odd and long


@pytest.mark.parametrize("mels", [40, 80])
def test_equals_kaldi_fbank_alone_and_in_a_padded_batch(mels):
    frontend = Fbank(FbankConfig(num_mel_bins=mels))
    fbank = TensorFbank(mels, 25.0, 10.0)
    rng = np.random.default_rng(0)
    waves = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in LENGTHS]
    batch = torch.zeros(len(waves), max(LENGTHS))
    for i, w in enumerate(waves):
        batch[i, : len(w)] = torch.from_numpy(w)
    with torch.no_grad():
        feats, frames = fbank(batch, torch.tensor(LENGTHS))
        for i, w in enumerate(waves):
            ref = frontend.featurize(w)
            alone, n = fbank(torch.from_numpy(w)[None], torch.tensor([len(w)]))
            assert torch.equal(alone[0], ref)  # exactly kaldi's, on its own
            assert int(frames[i]) == int(n[0]) == ref.shape[0] == frontend.num_frames(len(w))
            assert torch.allclose(feats[i, : ref.shape[0]], ref, rtol=0, atol=1e-5)  # in a batch: summation order
            assert not feats[i, ref.shape[0] :].any()  # padding frames are zero, as the eager collate pads


def test_refuses_features_it_does_not_compute():
    settings = Fbank(FbankConfig()).feature_settings()
    check_fbank_settings(settings)
    with pytest.raises(ValueError, match="dither"):
        check_fbank_settings({**settings, "dither": 1.0})
