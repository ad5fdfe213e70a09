"""Wav reading/writing: errors name the file, stereo and other rates come back as 16 kHz mono."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from snlu.core.errors import DataError
from snlu.data.audio import SAMPLE_RATE, read_wav, write_wav


def test_missing_file_names_path(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(DataError, match="nope.wav"):
        read_wav(path)


def test_empty_wav_is_an_error(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SAMPLE_RATE, subtype="PCM_16")
    with pytest.raises(DataError, match="empty.wav.*no samples"):
        read_wav(path)


def test_non_wav_binary_is_an_error(tmp_path):
    path = tmp_path / "junk.wav"
    path.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(DataError, match="junk.wav.*cannot read audio"):
        read_wav(path)


def test_8k_stereo_becomes_16k_mono(tmp_path):
    t = np.arange(8000) / 8000
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.1 * np.ones_like(t)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([left, right], axis=1), 8000, subtype="PCM_16")
    audio = read_wav(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == 16000
    # Down-mixed: the mean of the channels, so the DC of the right channel shows up halved.
    assert abs(float(audio.mean()) - 0.05) < 0.01


def test_write_then_read_roundtrip(tmp_path):
    audio = (0.3 * np.sin(np.linspace(0, 100, 4000))).astype(np.float32)
    path = tmp_path / "sub" / "x.wav"
    write_wav(path, audio)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    assert np.abs(read_wav(path) - audio).max() < 1e-3
    assert [p.name for p in path.parent.iterdir()] == ["x.wav"]  # no temp file left behind


def test_write_clips_out_of_range(tmp_path):
    path = tmp_path / "loud.wav"
    write_wav(path, np.array([2.0, -2.0, 0.0], dtype=np.float32))
    assert np.abs(read_wav(path)).max() <= 1.0


def test_real_aishell_recording():
    root = Path(importlib.util.find_spec("s3tokenizer").submodule_search_locations[0])
    audio = read_wav(root / "assets" / "BAC009S0764W0121.wav")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 1.0 < len(audio) / SAMPLE_RATE < 10.0
    assert np.abs(audio).max() > 0.01
