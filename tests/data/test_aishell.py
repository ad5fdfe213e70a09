"""``snlu-prepare aishell``: a fake AISHELL-1 tree (the two real recordings + generated audio) becomes
CNERTA-format manifests without word spaces; unmatched audio and transcripts are counted and reported;
the ASR recipe trains on the result."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from snlu.cli.prepare import main as prepare
from snlu.cli.train import main as train
from snlu.core.errors import DataError
from snlu.data.aishell import aishell_lines, read_transcript
from snlu.data.audio import write_wav

ASSETS = Path(importlib.util.find_spec("s3tokenizer").submodule_search_locations[0]) / "assets"
RECIPES = Path(__file__).parents[2] / "recipes"
TRANSCRIPT = """BAC009S0764W0121 甚至 出现 交易 几乎 停滞 的 情况
BAC009S0764W0122 一二 线 城市 虽然 也 处于 调整 中

BAC009S0900W0001 北京 欢迎 你
BAC009S0900W0002 上海 很 大
BAC009S0901W0001 南京 大学
BAC009S0901W0002 深圳 的 天气
BAC009S0999W0001 没有 音频 的 句子
BAC009S0900W0003
"""


@pytest.fixture(scope="module")
def aishell(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("aishell") / "data_aishell"
    (root / "transcript").mkdir(parents=True)
    (root / "transcript" / "aishell_transcript_v0.8.txt").write_text(TRANSCRIPT, encoding="utf-8")
    for n in ("0121", "0122"):
        (root / "wav" / "train" / "S0764").mkdir(parents=True, exist_ok=True)
        shutil.copy(ASSETS / f"BAC009S0764W{n}.wav", root / "wav" / "train" / "S0764")
    rng = np.random.default_rng(0)
    for split, utt_id in [("train", "BAC009S0900W0001"), ("train", "BAC009S0900W0002"),
                          ("train", "BAC009S0900W0003"), ("train", "BAC009S0900W0004"),
                          ("dev", "BAC009S0901W0001"), ("test", "BAC009S0901W0002")]:
        write_wav(root / "wav" / split / utt_id[6:11] / f"{utt_id}.wav", 0.1 * rng.standard_normal(24000))
    return root


def test_read_transcript_removes_word_spaces(aishell):
    rows = read_transcript(aishell / "transcript" / "aishell_transcript_v0.8.txt")
    assert rows[0] == (1, "BAC009S0764W0121", "甚至出现交易几乎停滞的情况")
    assert rows[2] == (4, "BAC009S0900W0001", "北京欢迎你")  # line numbers count the blank line
    assert rows[-1] == (9, "BAC009S0900W0003", "")


def test_unmatched_audio_and_transcripts_are_reported(aishell):
    transcript, lines, problems = aishell_lines(aishell)
    assert [n for n, _ in lines["train"]] == [1, 2, 4, 5, 9] and [n for n, _ in lines["test"]] == [7]
    assert json.loads(lines["dev"][0][1])["path"] == str(aishell / "wav/dev/S0901/BAC009S0901W0001.wav")
    assert [(p.kind, p.severity, p.file, p.line) for p in problems] == [
        ("no_audio", "warning", str(transcript), 8),
        ("no_transcript", "warning", str(aishell / "wav/train/S0900/BAC009S0900W0004.wav"), None)]


def test_prepare_aishell_then_asr_pretrain(aishell, tmp_path, tiny):
    out = tmp_path / "prepared"
    assert prepare(["aishell", "--dir", str(aishell), "--out", str(out)]) == 0
    rows = {s: [json.loads(x) for x in (out / f"{s}.jsonl").read_text(encoding="utf-8").splitlines()]
            for s in ("train", "dev", "test")}
    assert [r["sentence"] for r in rows["train"]] == ["甚至出现交易几乎停滞的情况", "一二线城市虽然也处于调整中",
                                                       "北京欢迎你", "上海很大"]
    assert all(r["entity"] == [] and Path(r["path"]).is_file() for rs in rows.values() for r in rs)
    report = json.loads((out / "validation.json").read_text(encoding="utf-8"))
    transcript = aishell / "transcript" / "aishell_transcript_v0.8.txt"
    errors = [(p["kind"], p["file"], p["line"]) for p in report["problems"] if p["severity"] == "error"]
    assert errors == [("field", str(transcript), 9)]  # the transcript line with no text
    assert report["splits"]["train"]["usable"] == 4 and report["warnings"] == 2
    assert json.loads((out / "stats.json").read_text())["test"]["utterances"] == 1

    with pytest.raises(DataError, match=r"validation.md: 1 error \(--strict"):
        prepare(["aishell", "--dir", str(aishell), "--out", str(tmp_path / "strict"), "--strict"])

    run = tmp_path / "asr"
    data = [f"data.{s}={out / f'{s}.jsonl'}" for s in ("train", "dev", "test")]
    assert train([str(RECIPES / "asr_pretrain.yaml"), *tiny, *data, "--output-dir", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"cer", "errors", "chars"} <= set(metrics["dev"]) and metrics["test"]["chars"] == len("深圳的天气")


def test_missing_split_folder_is_one_error(tmp_path):
    (tmp_path / "wav" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"wav/dev: folder not found"):
        aishell_lines(tmp_path)
