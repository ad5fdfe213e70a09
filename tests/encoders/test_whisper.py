"""``whisper_encoder``: a tiny random Whisper (window 2 s = 200 mel frames) built here and loaded offline.
References: WhisperFeatureExtractor's own (numpy) log-mel and the transformers encoder run on its output."""

from __future__ import annotations

import pytest
import torch

from snlu.registry import AUDIO_ENCODERS
from snlu.testing import check_audio_encoder, random_speech_model

WINDOW = 32000  # samples: 100 positions x 2 mel frames x 160


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return random_speech_model(tmp_path_factory.mktemp("whisper") / "w", "whisper")


def build(folder, **options):
    return AUDIO_ENCODERS.build("whisper_encoder", 1, config={"path": str(folder), **options})


def test_log_mel_is_the_feature_extractors(folder):
    enc = build(folder)
    wave = torch.randn(20800) * 0.1  # 1.3 s, padded to the 2 s window as the extractor pads
    ref = enc.feature_extractor(wave.numpy(), sampling_rate=16000, return_tensors="pt").input_features
    assert ref.shape == (1, 80, 200)
    padded = torch.nn.functional.pad(wave, (0, WINDOW - len(wave)))
    torch.testing.assert_close(enc.log_mel(padded[None]), ref, atol=2e-4, rtol=1e-4)


def test_long_utterances_run_window_by_window_keeping_the_real_frames(folder):
    """4.5 s = two full windows and 0.5 s: 100 + 100 + 25 model frames; each window's frames are the encoder's on
    the feature extractor's features of that stretch (padded to the window), cut to its real frames."""
    enc = build(folder, layer="last", downsample=1).eval()
    wave = torch.randn(72000) * 0.1
    with torch.no_grad():
        y, n = enc(wave[None, :, None], torch.tensor([72000]))
        assert n.tolist() == [225] and enc.num_frames(72000) == 225 and y.shape == (1, 225, 256)
        for start, keep in ((0, 100), (WINDOW, 100), (2 * WINDOW, 25)):
            piece = wave[start : start + WINDOW].numpy()
            mel = enc.feature_extractor(piece, sampling_rate=16000, return_tensors="pt").input_features
            ref = enc.model(mel).last_hidden_state[0, :keep]
            frame = start // 320
            torch.testing.assert_close(y[0, frame : frame + keep], enc.proj(ref), atol=2e-4, rtol=1e-4)


def test_frames_at_25_per_second_and_batches_equal_utterances_alone(folder):
    assert build(folder).num_frames(16000) == 25
    check_audio_encoder("whisper_encoder", {"path": str(folder), "layer": "weighted"}, in_feats=1,
                        lengths=[40000, 25000, 4000], invalid=[{"mask_time_prob": 0.05}])


def test_freeze_feature_encoder_keeps_the_convolutions(folder):
    enc = build(folder)
    assert not any(p.requires_grad for m in (enc.model.conv1, enc.model.conv2) for p in m.parameters())
    assert enc.model.layers[0].fc1.weight.requires_grad
    assert not enc.model.embed_positions.weight.requires_grad  # Whisper's fixed sinusoids stay fixed
    frozen = build(folder, freeze="all")
    assert {n for n, p in frozen.named_parameters() if p.requires_grad} == {"proj.weight", "proj.bias"}
    assert not hasattr(frozen.model, "decoder")  # only the encoder is kept
