"""The speech-pretraining corpus (``snlu-prepare demo-asr``): determinism, exclusions, voices, timings, noise,
the manifests' layout, the CLI's errors."""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from snlu.data import demo_asr
from snlu.data.audio import SAMPLE_RATE, read_wav
from snlu.data.cnerta import SPLITS, AudioIndex, CnertaConfig, CnertaData, read_cnerta
from snlu.data.demo import DEFAULT_SIZES, _candidates, _shuffled, clauses
from snlu.data.msra import msra_path, read_msra
from snlu.data.synth import Synthesizer, word_timings

SIZES = dict(n=10, n_dev=3, n_test=3, seed=5)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return demo_asr.build_asr_corpus(tmp_path_factory.mktemp("asr") / "a", **SIZES, progress=False)


def rows(out: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def wav_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (out / "wav").glob("*.wav")}


def test_layout_and_snlu_reader(corpus):
    meta = json.loads((corpus / "asr.json").read_text(encoding="utf-8"))
    assert meta["counts"] == {"train": 10, "dev": 3, "test": 3} and meta["skipped"] == 0
    for name in ("vocab.json", "cmvn.json", "stats.json", "lengths.png", "validation.json"):
        assert (corpus / name).is_file(), name
    for split in SPLITS:
        utts = read_cnerta(corpus / f"{split}.jsonl", AudioIndex(corpus / "wav"))
        assert [u.id for u in utts] == [f"ASR_{split.upper()}_{i:06d}" for i in range(1, len(utts) + 1)]
        for u, row in zip(utts, rows(corpus, split)):
            assert row["path"] == f"wav/{u.id}.wav"  # relative: the folder can move
            assert abs(u.duration - row["duration"]) < 1e-3 and u.duration > 0.5
            assert demo_asr.MIN_CHARS <= len(u.sentence) <= demo_asr.MAX_CHARS
    # train_entities.jsonl: exactly the train lines that carry an entity, in order
    assert rows(corpus, "train_entities") == [r for r in rows(corpus, "train") if r["entity"]]
    # The dataset reads it as a recipe would, also after the folder moved.
    moved = Path(shutil.copytree(corpus, corpus.parent / "moved"))
    cfg = CnertaConfig(**{s: str(moved / f"{s}.jsonl") for s in SPLITS}, audio_dir=str(moved / "wav"))
    splits = CnertaData(cfg).load()
    assert {s: len(u) for s, u in splits.items()} == meta["counts"]
    assert all(Path(u.audio).is_relative_to(moved) for u in splits["train"])


def test_deterministic_cached_and_extensible(corpus, tmp_path):
    stamps = {p.name: p.stat().st_mtime_ns for p in corpus.iterdir()}
    assert demo_asr.build_asr_corpus(corpus, **SIZES, progress=False) == corpus  # same parameters: nothing rebuilt
    assert {p.name: p.stat().st_mtime_ns for p in corpus.iterdir()} == stamps

    again = demo_asr.build_asr_corpus(tmp_path / "b", **SIZES, progress=False)
    assert wav_bytes(again) == wav_bytes(corpus)
    assert all(rows(again, s) == rows(corpus, s) for s in SPLITS)

    # Each utterance depends on (seed, id) only: a smaller train is a prefix, dev/test unchanged.
    small = demo_asr.build_asr_corpus(tmp_path / "c", **{**SIZES, "n": 4}, progress=False)
    assert rows(small, "train") == rows(corpus, "train")[:4]
    assert rows(small, "dev") == rows(corpus, "dev")
    full = wav_bytes(corpus)
    assert all(full[name] == data for name, data in wav_bytes(small).items())


def test_splits_are_disjoint(corpus):
    texts = {s: [r["sentence"] for r in rows(corpus, s)] for s in SPLITS}
    assert sum(len(t) for t in texts.values()) == len(set().union(*texts.values()))


def msra_clauses(split: str) -> list[tuple[str, list]]:
    return [c for sentence in read_msra(msra_path(split)) for c in clauses(*sentence)]


def test_pool_excludes_every_demo_dev_and_test_sentence(demo_dir):
    pool = {text for text, _ in demo_asr.asr_pool()[0]}
    assert len(pool) > 50_000
    # Brute force, from MSRA itself: no clause of the test file; no 6-14 character train clause with an entity.
    assert not pool & {text for text, _ in msra_clauses("test")}
    assert not pool & {text for text, spans in msra_clauses("train") if spans and 6 <= len(text) <= 14}
    # The default-sized demo's dev and test for a few seeds, as demo.py picks them.
    test_pool = _candidates(msra_path("test"), 6, 14, exclude=frozenset())
    train_pool = _candidates(msra_path("train"), 6, 14, exclude=frozenset(s for s, _ in test_pool))
    for seed in range(3):
        dev = _shuffled(train_pool, seed)[:DEFAULT_SIZES["n_dev"]]
        test = _shuffled(test_pool, seed)[:DEFAULT_SIZES["n_test"]]
        assert not pool & {s for s, _ in dev + test}
    # And a demo corpus actually built (the session's tiny one).
    built = {json.loads(line)["sentence"] for s in ("dev", "test")
             for line in (demo_dir / f"{s}.jsonl").read_text(encoding="utf-8").splitlines()}
    assert len(built) == 8 and not pool & built
    assert all(demo_asr.SPOKEN.fullmatch(text) for text in pool)


def test_voices_vary_and_are_recorded(corpus):
    all_rows = [r for s in SPLITS for r in rows(corpus, s)]
    voices = [r["voice"] for r in all_rows]
    assert len({v["variant"] for v in voices}) >= 4 and len({v["rate"] for v in voices}) >= 4
    for r in all_rows:
        v = r["voice"]
        assert v == demo_asr.voice_of(SIZES["seed"], r["audio"][0])
        assert r["speaker_info"] == [["espeak-cmn" + (f"+{v['variant']}" if v["variant"] else ""),
                                      demo_asr.VARIANTS[v["variant"]]]]
    drawn = [demo_asr.voice_of(0, f"ASR_TRAIN_{i:06d}") for i in range(500)]
    assert Counter(v["variant"] for v in drawn).keys() == demo_asr.VARIANTS.keys()
    for key, (lo, hi) in (("rate", demo_asr.RATE_RANGE), ("pitch", demo_asr.PITCH_RANGE),
                          ("volume", demo_asr.VOLUME_RANGE)):
        values = [v[key] for v in drawn]
        assert lo <= min(values) < max(values) <= hi
    # The variants really sound different: same text and settings, different samples and lengths.
    synth = Synthesizer()
    audios = [synth.speak("北京欢迎你", variant=v or None).audio for v in ("", "f2", "m5", "klatt")]
    assert len({a.tobytes() for a in audios}) == 4


def check_timings(timings: list[list[int]], n_chars: int, audio_ms: float) -> None:
    assert timings[0][0] == 0 and timings[-1][1] == n_chars
    for (c0, c1, s, e), nxt in zip(timings, [*timings[1:], None]):
        assert c0 < c1 and 0 <= s <= e
        if nxt is not None:
            assert (nxt[0], nxt[2]) == (c1, e)  # contiguous in characters and time
    assert abs(timings[-1][3] - audio_ms) <= 1


def test_timings_tile_the_sentence_and_the_audio(corpus):
    for split in SPLITS:
        for r in rows(corpus, split):
            check_timings(r["timings"], len(r["sentence"]), len(read_wav(corpus / r["path"])) * 1000 / SAMPLE_RATE)
            assert len(r["timings"]) >= len(r["sentence"]) / 2  # nearly one event per character


def test_timings_follow_the_audio():
    """A pause (the comma) shows up as silence right before the next character's start time."""
    speech = Synthesizer().speak("北京，上海", rate=150)
    check_timings(speech.timings, 5, len(speech.audio) * 1000 / SAMPLE_RATE)
    shang = next(t for t in speech.timings if t[0] == 3)
    frames = speech.audio[: len(speech.audio) // 160 * 160].reshape(-1, 160)  # 10 ms frames
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(1))
    silent = np.flatnonzero(rms < 0.01 * rms.max())
    gap_end = max(f for f in silent if f * 10 < shang[2] + 30) * 10 + 10  # the pause's last silent frame
    assert shang[2] - 60 <= gap_end <= shang[2] + 30
    assert (rms[shang[2] // 10 + 3 : shang[2] // 10 + 10] > 0.05 * rms.max()).all()  # speech right after


@pytest.mark.parametrize("events, n, total, expected", [
    ([(0, 0.0), (1, 100.4), (2, 200.6)], 3, 300.0, [[0, 1, 0, 100], [1, 2, 100, 201], [2, 3, 201, 300]]),
    ([(0, 0.0), (2, 150.0)], 4, 400.0, [[0, 2, 0, 150], [2, 4, 150, 400]]),  # a dictionary word: one event
    ([(0, 0.0), (1, 100.0), (1, 180.0), (1, 260.0), (4, 330.0)], 5, 500.0,
     [[0, 1, 0, 100], [1, 4, 100, 330], [4, 5, 330, 500]]),  # a number: several events at one position
    ([(1, 50.0), (0, 80.0), (2, 40.0), (9, 90.0)], 3, 120.0, [[0, 2, 0, 50], [2, 3, 50, 120]]),  # odd input
    ([], 2, 90.0, [[0, 2, 0, 90]]),
])
def test_word_timings(events, n, total, expected):
    assert word_timings(events, n, total) == expected


def test_noise_at_the_requested_snr(corpus, tmp_path):
    noisy = demo_asr.build_asr_corpus(tmp_path / "n", **{**SIZES, "n": 2}, noise_snr=10.0, progress=False)
    for r in rows(noisy, "train") + rows(noisy, "dev"):
        assert r["noise_snr"] == 10.0
        clean = read_wav(corpus / r["path"]).astype(np.float64)
        mixed = read_wav(noisy / r["path"]).astype(np.float64)
        gain = mixed @ clean / (clean @ clean)  # 1 unless the mix was scaled down against clipping
        noise = mixed - gain * clean
        snr = 10 * np.log10((gain * gain * (clean @ clean)) / (noise @ noise))
        assert abs(snr - 10.0) < 0.2, snr
        assert abs(np.corrcoef(noise[:-1], noise[1:])[0, 1]) < 0.05  # white
    assert "noise_snr" not in rows(corpus, "train")[0]


def test_features(corpus, tmp_path):
    out = Path(shutil.copytree(corpus, tmp_path / "f"))
    stamp = (out / "asr.json").stat().st_mtime_ns
    demo_asr.build_asr_corpus(out, **SIZES, features=True, progress=False)
    assert (out / "asr.json").stat().st_mtime_ns == stamp  # the corpus was not rebuilt
    (folder,) = (out / "features").glob("fbank-*")
    for split in SPLITS:
        index = json.loads((folder / f"{split}.json").read_text(encoding="utf-8"))
        assert len(index["utterances"]) == len(rows(out, split))


def run_cli(monkeypatch, capsys, *argv: str) -> tuple[int, str, str]:
    from snlu.cli.prepare import entry

    monkeypatch.setattr(sys, "argv", ["snlu-prepare", "demo-asr", *argv])
    with pytest.raises(SystemExit) as e:
        entry()
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_builds_then_hits_the_cache(monkeypatch, capsys, corpus):
    args = ["--out", str(corpus), "--n", "10", "--n-dev", "3", "--n-test", "3", "--seed", "5"]
    code, out, _ = run_cli(monkeypatch, capsys, *args)
    assert code == 0 and "train 10 utterances" in out and f"data.train={corpus}/train.jsonl" in out


@pytest.mark.parametrize("argv, expected", [
    (["--hours", "1", "--n", "5"], "error: demo-asr: give --hours or --n, not both"),
    (["--hours", "0"], "error: demo-asr: --hours must be > 0, got 0.0"),
    (["--n", "0"], "error: demo-asr: --n must be >= 1, got 0"),
    (["--n", "2", "--n-dev", "0"], "error: demo-asr: --n-dev and --n-test must be >= 1, got 0 and 300"),
    (["--n", "2", "--noise-snr", "1000"], "error: demo-asr: --noise-snr must be within -20..100 dB, got 1000.0"),
    (["--n", "10000000"], "error: demo-asr: MSRA has only "),
])
def test_cli_bad_arguments_are_one_line(monkeypatch, capsys, tmp_path, argv, expected):
    code, _, err = run_cli(monkeypatch, capsys, *argv, "--out", str(tmp_path / "x"))
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(expected) and err.count("error: ") == 1


@pytest.mark.parametrize("variant", ["f3", "f5"])
def test_breathy_voices_are_deterministic(variant):
    """Breath noise comes from espeak's generator, which espeak seeds from the clock (in seconds)."""
    import time

    synth = Synthesizer()
    first = synth.speak("黄河源的草地", variant=variant).audio
    time.sleep(1.05)  # another second on the clock
    synth.speak("上海交通大学", variant="f2")
    assert np.array_equal(synth.speak("黄河源的草地", variant=variant).audio, first)
