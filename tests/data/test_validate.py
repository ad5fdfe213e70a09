"""The corpus validator: collects every problem instead of stopping, classifies check_line's errors,
and its CTC feasibility bound agrees with the real encoder's subsampling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from snlu.core.errors import DataError
from snlu.data.audio import write_wav
from snlu.data.cnerta import AudioIndex, check_line, read_cnerta
from snlu.data.validate import CheckOptions, Validator, ctc_frames, ctc_need, kind_of
from snlu.encoders.subsampling import Conv2dSubsampling
from snlu.frontends.fbank import Fbank, FbankConfig


@pytest.mark.parametrize("seconds", [0.05, 0.09, 0.1, 0.333, 0.5, 1.0, 2.37, 4.2])
def test_ctc_frames_equal_the_encoder_output_length(seconds):
    wave = np.zeros(round(seconds * 16000), dtype=np.float32)
    feats = Fbank(FbankConfig()).featurize(wave)  # (T, 40)
    if feats.shape[0] < 7:  # the two 3x3 stride-2 convolutions need 7 frames for one output
        assert ctc_frames(seconds) == 0
        return
    out, _ = Conv2dSubsampling(40, 8, channels=2)(feats[None], torch.tensor([feats.shape[0]]))
    assert ctc_frames(seconds) == out.shape[1]


def test_ctc_need_counts_a_blank_between_repeats():
    assert ctc_need("北京") == 2
    assert ctc_need("好好学习") == 5
    assert ctc_need("哈哈哈") == 5


def lines(*rows) -> list[tuple[int, str]]:
    return [(n, r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) for n, r in enumerate(rows, 1)]


@pytest.fixture()
def wavs(tmp_path):
    d = tmp_path / "wav"
    for name in ("a", "b", "c"):
        write_wav(d / f"{name}.wav", 0.1 * np.ones(16000, dtype=np.float32))
    return d


@pytest.mark.parametrize("text, kind", [
    ("not json", "json"),
    ("[1]", "json"),
    ('{"audio": "a", "entity": []}', "field"),
    ('{"sentence": " ", "audio": "a", "entity": []}', "field"),
    ('{"sentence": "北京", "audio": "../a", "entity": []}', "field"),
    ('{"sentence": "北京", "audio": "a"}', "field"),
    ('{"sentence": "北京", "audio": "a", "entity": [[0, 3, "北京", "LOC"]]}', "span"),
    ('{"sentence": "北京", "audio": "a", "entity": [[0, 2, "北京"]]}', "span"),
    ('{"sentence": "北京", "audio": "zzz", "entity": []}', "audio_missing"),
    ('{"sentence": "北京", "audio": "a", "entity": [], "path": "nowhere.wav"}', "audio_missing"),
])
def test_kind_of_each_check_line_error(tmp_path, wavs, text, kind):
    with pytest.raises(DataError) as e:
        check_line(text, tmp_path / "x.jsonl", 3, AudioIndex(wavs))
    assert kind_of(e.value) == kind and str(e.value).startswith(f"{tmp_path / 'x.jsonl'}:3:")


def test_validator_collects_all_and_keeps_the_good(tmp_path, wavs):
    path = tmp_path / "train.jsonl"
    v = Validator(AudioIndex(wavs), CheckOptions(types=("LOC",)))
    good = {"sentence": "北京", "audio": ["a"], "entity": [[0, 2, "北京", "LOC"]]}
    gpe = {**good, "audio": "b", "entity": [[0, 2, "北京", "GPE"]]}
    result = v.check_split("train", path, lines(good, "{bad", "", gpe, {**good, "audio": "a"}, {**good, "audio": "c"}))
    assert [u.id for u in result.utterances] == ["a", "c"] and result.lines == 5  # the blank line is not counted
    assert [(p.kind, p.line) for p in v.problems] == [("json", 2), ("entity_type", 4), ("duplicate_id", 5)]
    dev = v.check_split("dev", tmp_path / "dev.jsonl", lines({**good, "audio": "c"}))
    assert dev.utterances == [] and "first at " + str(path) + ":6" in v.problems[-1].message
    report = v.report({"train": result, "dev": dev})
    assert report.counts()["train"]["skipped"] == 3 and len(report.errors) == 4
    assert report.to_json()["options"]["types"] == ("LOC",)


def test_relative_manifest_path_is_read_from_the_manifest_folder(tmp_path, wavs):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"sentence": "北京", "audio": ["x"], "entity": [], "path": "wav/b.wav"}) + "\n")
    utts = read_cnerta(manifest, AudioIndex(tmp_path / "elsewhere"))  # the index is not consulted
    assert utts[0].audio == str((wavs / "b.wav").resolve()) and utts[0].duration == pytest.approx(1.0)


def test_crossing_spans_are_a_warning_naming_both_and_the_rule(tmp_path, wavs):
    v = Validator(AudioIndex(wavs))
    crossing = {"sentence": "中国人民银行", "audio": "a", "entity": [[0, 3, "中国人", "LOC"], [2, 5, "人民银", "ORG"]]}
    nested = {**crossing, "audio": "b", "entity": [[0, 6, "中国人民银行", "ORG"], [0, 2, "中国", "LOC"]]}
    result = v.check_split("train", tmp_path / "t.jsonl", lines(crossing, nested))
    assert [u.entities for u in result.utterances] == [[(0, 3, "LOC")], [(0, 6, "ORG")]]
    assert [(p.kind, p.severity, p.line) for p in v.problems] == [("crossing", "warning", 1)]
    assert v.problems[0].message == (f"{tmp_path / 't.jsonl'}:1: field 'entity': [2, 5) ORG crosses [0, 3) LOC: "
                                     "dropped (the outermost rule keeps the longer span, then the earlier)")


def test_a_truncated_wav_is_an_error_or_with_the_option_a_warning(tmp_path, wavs):
    wav = wavs / "a.wav"
    wav.write_bytes(wav.read_bytes()[: 44 + 2 * 4000])  # 0.25 s of the 1 s the header declares
    line = lines({"sentence": "北京", "audio": "a", "entity": []})
    strict = Validator(AudioIndex(wavs, option="--allow-truncated"), CheckOptions(min_seconds=0.1))  # as prepare
    assert strict.check_split("train", tmp_path / "t.jsonl", line).utterances == []
    (problem,) = strict.problems
    assert (problem.kind, problem.severity) == ("audio_truncated", "error")
    assert problem.message.endswith(f"audio {wav.resolve()}: truncated: the header says 1.00 s (16000 samples), the "
                                    "file holds 0.25 s (4000) (--allow-truncated reads it as it is)")
    allowing = Validator(AudioIndex(wavs, allow_truncated=True, option="--allow-truncated"),
                         CheckOptions(min_seconds=0.1))
    (utt,) = allowing.check_split("train", tmp_path / "t.jsonl", line).utterances
    assert utt.duration == pytest.approx(0.25)
    assert [(p.kind, p.severity) for p in allowing.problems] == [("audio_truncated", "warning")]


def test_a_byte_order_mark_does_not_hide_the_first_line(tmp_path, wavs):
    from snlu.data.cnerta import read_lines

    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"sentence": "北京", "audio": "a", "entity": []}).encode() + b"\n")
    v = Validator(AudioIndex(wavs))
    result = v.check_split("train", path, enumerate(read_lines(path), start=1))
    assert len(result.utterances) == 1 and v.problems == []
