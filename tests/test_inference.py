"""snlu.inference: the inputs the prediction routine accepts (integer PCM scaled as soundfile decodes it,
non-finite samples and truncated WAVs refused), the routine itself (the run's ``train.amp`` unless overridden,
bad utterances skipped when asked) and the warning for audio longer than the model was trained on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch

from snlu.core.errors import DataError
from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.data.inputs import make_utterance
from snlu.inference import predict_utterances, warn_long
from snlu.tasks.base import Task


def pcm(tmp_path, subtype: str, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """A noise WAV written as ``subtype``, read back by soundfile as ``dtype`` integers and as float32."""
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, np.random.default_rng(0).uniform(-0.9, 0.9, 4000), 16000, subtype=subtype)
    return sf.read(path, dtype=dtype)[0], sf.read(path, dtype="float32")[0]


@pytest.mark.parametrize("subtype, dtype", [("PCM_16", "int16"), ("PCM_32", "int32")])
def test_integer_pcm_is_scaled_as_soundfile_decodes_it(tmp_path, subtype, dtype):
    ints, floats = pcm(tmp_path, subtype, dtype)
    assert ints.dtype == np.dtype(dtype) and np.abs(ints).max() > 1000  # really integers, not small floats
    for audio in (ints, torch.from_numpy(ints)):
        wave = make_utterance("北京", audio, "u", "item 0", True).wave
        assert wave.dtype == np.float32
        np.testing.assert_allclose(wave, floats, atol=1e-7)


def test_unsigned_8_bit_pcm_is_centred_as_in_8_bit_wav(tmp_path):
    path = tmp_path / "u8.wav"
    sf.write(path, np.random.default_rng(0).uniform(-0.9, 0.9, 4000), 16000, subtype="PCM_U8")
    raw = np.frombuffer(path.read_bytes()[44:], dtype=np.uint8)  # 8-bit WAV data is unsigned, centred on 128
    wave = make_utterance("北京", raw, "u", "item 0", True).wave
    np.testing.assert_allclose(wave, sf.read(path, dtype="float32")[0], atol=1e-7)


def test_non_finite_and_non_numeric_samples_are_data_errors():
    audio = np.zeros(16000, dtype=np.float32)
    audio[[5, 9]] = [np.nan, np.inf]
    with pytest.raises(DataError, match=r"^item 0: field 'audio': 2 of 16000 samples are not finite \(NaN or inf\)$"):
        make_utterance("北京", audio, "u", "item 0", True)
    with pytest.raises(DataError, match="expected float samples in \\[-1, 1\\] or integer PCM, got dtype bool"):
        make_utterance("北京", np.ones(100, dtype=bool), "u", "item 0", True)


def test_a_non_finite_float_wav_file_is_a_data_error_when_read(tmp_path):
    from snlu.data.audio import read_wav

    path = tmp_path / "nan.wav"
    audio = np.zeros(1600, dtype=np.float32)
    audio[3] = np.nan
    sf.write(path, audio, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match="audio holds non-finite samples"):
        read_wav(path)


def test_a_truncated_wav_is_an_error_or_with_allow_truncated_read_as_it_is(tmp_path, snlu_log):
    path = tmp_path / "cut.wav"
    sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, 67200), 16000, subtype="PCM_16")  # 4.2 s
    path.write_bytes(path.read_bytes()[: 44 + 2 * 15040])  # 0.94 s left, the header unchanged
    assert sf.info(path).frames == 15040  # soundfile reads what there is, without a word
    message = (f"item 0: field 'audio': audio {path}: truncated: the header says 4.20 s (67200 samples), the file "
               f"holds 0.94 s (15040) (--allow-truncated reads it as it is)")
    with pytest.raises(DataError) as e:
        make_utterance("北京", path, "u", "item 0", True)
    assert str(e.value) == message
    utt = make_utterance("北京", path, "u", "item 0", True, allow_truncated=True)
    assert utt.duration == pytest.approx(0.94)
    assert "truncated: the header says 4.20 s (67200 samples), the file holds 0.94 s (15040): read as it is" in (
        snlu_log.text)


def test_a_whole_wav_file_and_other_formats_are_not_truncated(tmp_path):
    from snlu.data.audio import wav_header_frames

    for subtype, name in (("PCM_16", "a.wav"), ("FLOAT", "b.wav"), ("PCM_24", "c.wav")):
        sf.write(tmp_path / name, np.zeros((3000, 2)), 16000, subtype=subtype)
        assert wav_header_frames(tmp_path / name) == 3000
    sf.write(tmp_path / "d.flac", np.zeros(3000), 16000)
    assert wav_header_frames(tmp_path / "d.flac") is None


@pytest.fixture
def test_utts(random_run, demo_dir):
    return Task.load(random_run), read_cnerta(demo_dir / "test.jsonl", AudioIndex(demo_dir / "wav"))


def autocast_probe(task: Task, monkeypatch) -> list:
    """The autocast dtype (None: off) each ``task.predict`` call runs under."""
    seen, predict = [], task.predict

    def probe(batch):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return predict(batch)

    monkeypatch.setattr(task, "predict", probe)
    return seen


def test_predictions_run_under_the_runs_amp_unless_overridden(test_utts, monkeypatch):
    task, utts = test_utts
    seen = autocast_probe(task, monkeypatch)
    floats = predict_utterances(task, utts, 4, "cpu", progress=False)  # train.amp auto: off on CPU
    assert seen and set(seen) == {None}
    seen.clear()
    task.cfg.train.amp = "bf16"  # as a run trained with train.amp=bf16 saved it
    bf16 = predict_utterances(task, utts, 4, "cpu", progress=False)
    assert seen and set(seen) == {torch.bfloat16}
    seen.clear()
    assert predict_utterances(task, utts, 4, "cpu", progress=False, amp="off") == floats
    assert set(seen) == {None}
    assert len(bf16) == len(floats)


def test_an_utterance_that_cannot_be_prepared_is_skipped_when_asked(test_utts):
    task, utts = test_utts
    short = make_utterance("北京", np.zeros(100, dtype=np.float32), "short", "item 1", True)  # < 7 fbank frames
    mixed = [utts[0], short, *utts[1:]]
    with pytest.raises(DataError, match="too short for the encoder"):
        predict_utterances(task, mixed, 2, "cpu", progress=False)
    failed: dict[int, str] = {}
    preds = predict_utterances(task, mixed, 2, "cpu", progress=False, failed=failed)
    assert failed == {1: "item 1: field 'audio': audio (array) has 100 samples: too short for the encoder "
                         "(truncated file?)"}
    assert preds[1] is None
    assert [p for i, p in enumerate(preds) if i != 1] == predict_utterances(task, utts, 2, "cpu", progress=False)


def test_audio_longer_than_the_training_maximum_gets_a_warning(test_utts, snlu_log):
    task, utts = test_utts
    long = dataclasses.replace(utts[0], duration=60.0, where="long.wav")
    warn_long(task, [utts[0]])
    assert "longer than" not in snlu_log.text
    warn_long(task, [utts[0], long])
    assert ("1 utterance longer than the 14.7 s (data.max_frames=1468) the model was trained on, predicted whole "
            "(longest: long.wav, 60.0 s)") in snlu_log.text
