"""The demo corpus: MSRA reader, espeak-ng synthesiser, and the built CNERTA-format corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from snlu.data.audio import SAMPLE_RATE, read_wav
from snlu.data.demo import build_demo_corpus, default_demo_dir, ensure_demo_corpus
from snlu.data.msra import decode_bmes, read_msra
from snlu.data.synth import Synthesizer

SAMPLE = (
    "张 B-PER\r\n三 E-PER\r\n在 O\r\n京 S-LOC\r\n。 O\r\n\r\n"
    "中 B-ORG\r\n国 M-ORG\r\n银 M-ORG\r\n行 E-ORG\r\n好 O\r\n\r\n"
    "无 O\r\n实 O\r\n体 O\r\n\r\n"
)


def test_read_msra_sample(tmp_path):
    path = tmp_path / "m.txt"
    path.write_bytes(SAMPLE.encode("utf-8"))
    got = read_msra(path)
    assert got == [
        ("张三在京。", [(0, 2, "PER"), (3, 4, "LOC")]),
        ("中国银行好", [(0, 4, "ORG")]),
        ("无实体", []),
    ]


def test_read_msra_lf_and_missing_final_blank(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text("李 S-PER\n\n\n王 B-PER\n五 E-PER", encoding="utf-8")
    assert read_msra(path) == [("李", [(0, 1, "PER")]), ("王五", [(0, 2, "PER")])]


@pytest.mark.parametrize("tags,spans", [
    (["B-PER", "M-PER", "O"], [(0, 2, "PER")]),  # B without E: ends at the last M
    (["B-LOC"], [(0, 1, "LOC")]),  # lone B at sentence end
    (["M-ORG", "E-ORG", "O"], [(0, 2, "ORG")]),  # sentence cut mid-entity: stray M starts a span
    (["O", "E-LOC"], [(1, 2, "LOC")]),  # stray E: a one-character span
    (["B-PER", "E-LOC"], [(0, 1, "PER"), (1, 2, "LOC")]),  # type change closes and reopens
    (["B-PER", "S-LOC", "E-PER"], [(0, 1, "PER"), (1, 2, "LOC"), (2, 3, "PER")]),
])
def test_decode_bmes_lenient(tags, spans):
    assert decode_bmes(tags) == spans


def test_real_msra_types():
    from snlu.data.msra import msra_path

    sents = read_msra(msra_path("test"))
    assert len(sents) > 1000
    types = {t for _, spans in sents for *_, t in spans}
    assert types == {"PER", "LOC", "ORG"}
    for sent, spans in sents[:200]:
        assert all(0 <= s < e <= len(sent) for s, e, _ in spans)


def test_synthesizer_audio():
    synth = Synthesizer()
    short = synth.synthesize("你好")
    long = synth.synthesize("中国人民银行今天在北京召开了工作会议")
    for a in (short, long):
        assert a.dtype == np.float32 and a.ndim == 1 and np.abs(a).max() > 0.1
    assert len(long) > 2 * len(short)
    assert len(long) / SAMPLE_RATE > 2.0
    slow, fast = synth.synthesize("北京欢迎你", rate=120), synth.synthesize("北京欢迎你", rate=300)
    assert len(slow) > len(fast)


def test_synthesizer_is_deterministic():
    # espeak-ng carries hidden state between utterances; the Synthesizer must not.
    synth = Synthesizer()
    first = synth.synthesize("北京大学", rate=160, pitch=40)
    synth.synthesize("上海交通大学在徐汇区", rate=190, pitch=65)
    assert np.array_equal(synth.synthesize("北京大学", rate=160, pitch=40), first)


def _files(d):
    return {p: (d / p).read_text(encoding="utf-8") for p in ("train.jsonl", "dev.jsonl", "test.jsonl")}


def test_build_tiny_corpus(tmp_path):
    out = build_demo_corpus(tmp_path / "a", n_train=4, n_dev=2, n_test=2, seed=3, progress=False)
    files = _files(out)
    counts = {"train.jsonl": 4, "dev.jsonl": 2, "test.jsonl": 2}
    seen = set()
    for name, text in files.items():
        rows = [json.loads(line) for line in text.splitlines()]
        assert len(rows) == counts[name]
        for row in rows:
            sent = row["sentence"]
            assert 6 <= len(sent) <= 24 and sent not in seen
            seen.add(sent)
            assert row["entity"] and row["speaker_info"] == [["espeak-cmn", "F"]]
            for start, end, text_, typ in row["entity"]:
                assert sent[start:end] == text_ and typ in {"PER", "LOC", "ORG"}
            (utt_id,) = row["audio"]
            wav = out / "wav" / f"{utt_id}.wav"
            info = sf.info(str(wav))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert len(read_wav(wav)) / SAMPLE_RATE > 0.5
    meta = json.loads((out / "demo.json").read_text(encoding="utf-8"))
    assert meta["counts"] == {"train": 4, "dev": 2, "test": 2}

    # Same parameters: a cache hit, nothing rewritten.
    mtimes = {p: (out / p).stat().st_mtime_ns for p in files}
    assert build_demo_corpus(out, n_train=4, n_dev=2, n_test=2, seed=3, progress=False) == out
    assert {p: (out / p).stat().st_mtime_ns for p in files} == mtimes

    # Deterministic: same seed elsewhere gives identical files; bigger train extends, dev unchanged.
    again = build_demo_corpus(tmp_path / "b", n_train=4, n_dev=2, n_test=2, seed=3, progress=False)
    assert _files(again) == files
    for wav in (out / "wav").iterdir():
        assert (again / "wav" / wav.name).read_bytes() == wav.read_bytes()
    bigger = _files(build_demo_corpus(out, n_train=5, n_dev=2, n_test=2, seed=3, progress=False))
    assert bigger["train.jsonl"].startswith(files["train.jsonl"])
    assert bigger["dev.jsonl"] == files["dev.jsonl"]

    # Shrinking in place removes the wavs nothing refers to any more.
    build_demo_corpus(out, n_train=1, n_dev=1, n_test=1, seed=3, progress=False)
    assert sorted(p.name for p in (out / "wav").iterdir()) == [
        "DEMO_DEV_00001.wav", "DEMO_TEST_00001.wav", "DEMO_TRAIN_00001.wav"]


def test_ensure_demo_corpus_default_dir(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SNLU_CACHE", str(tmp_path))
    assert default_demo_dir() == tmp_path / "demo"
    with caplog.at_level("INFO", logger="snlu"):
        out = ensure_demo_corpus(n_train=2, n_dev=1, n_test=1, progress=False)
    assert out == tmp_path / "demo" / "n2-1-1-s0"
    assert (out / "demo.json").is_file() and "building the demo corpus" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="snlu"):
        assert ensure_demo_corpus(n_train=2, n_dev=1, n_test=1, progress=False) == out
    assert "building" not in caplog.text


# The wavs of build_demo_corpus(n_train=2, n_dev=1, n_test=1, seed=3) as the code wrote them before its lines
# gained "timings" (FORMAT_VERSION 2): the timings must not change the audio. (An espeak-ng or torchaudio
# upgrade may legitimately change these bytes; then check the audio by ear and update the hashes.)
DEMO_WAV_SHA256 = {
    "DEMO_DEV_00001.wav": "2ffc45a6a5c2b846890c3aed26094cb641ae8f777cc0dc81a52112fb39dd0310",
    "DEMO_TEST_00001.wav": "8071da7a6d8378fd34ef9e68864c73cd3405d32081ec31d71025ccf60b00653b",
    "DEMO_TRAIN_00001.wav": "b22681cf0f09e004316757c1e4161fe99f27ec3c117b4f2a95116085a0e34e6f",
    "DEMO_TRAIN_00002.wav": "7332cf7ad0181db4e1909f0d31f8bad679dfa4505af14bb84fec1e6bac8540a7",
}


def test_demo_audio_unchanged_by_timings(tmp_path):
    import hashlib

    out = build_demo_corpus(tmp_path, n_train=2, n_dev=1, n_test=1, seed=3, progress=False)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "wav").iterdir()} == DEMO_WAV_SHA256
    for split in ("train", "dev", "test"):
        for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            timings, n = row["timings"], len(row["sentence"])
            assert timings[0][0] == 0 and timings[-1][1] == n and len(timings) >= n / 2
            assert all(a[1] == b[0] and a[3] == b[2] and a[2] <= a[3] for a, b in zip(timings, timings[1:]))
            samples = len(read_wav(out / "wav" / f"{row['audio'][0]}.wav"))
            assert abs(timings[-1][3] - samples * 1000 / SAMPLE_RATE) <= 1
