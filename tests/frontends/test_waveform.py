"""The ``waveform`` frontend: the samples themselves, padding kept at zero, no parameters, nothing to save."""

from __future__ import annotations

import numpy as np
import torch

from snlu.registry import AUDIO_FRONTENDS


def test_samples_in_padding_zero(tmp_path):
    front = AUDIO_FRONTENDS.build("waveform")
    wave = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    feats = front.featurize(wave)
    assert feats.shape == (1000, 1) and front.dim == 1 and front.num_frames(1000) == 1000
    np.testing.assert_array_equal(feats[:, 0].numpy(), wave)
    batch = torch.full((2, 1000, 1), 7.0)
    out = front(batch, torch.tensor([1000, 300]))
    assert torch.equal(out[0], batch[0]) and torch.equal(out[1, :300], batch[1, :300]) and not out[1, 300:].any()
    assert list(front.parameters()) == [] and type(front).optimizer_groups(front.cfg, "frontend") == []
    front.save_cmvn(tmp_path / "cmvn.json")
    assert not (tmp_path / "cmvn.json").exists()
