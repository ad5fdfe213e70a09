"""``snlu-prepare cnerta``: a fake CNERTA tree with one bad line of every kind, flat and nested audio;
--strict refuses it, the default skips exactly the bad lines; the manifests train a recipe as they are."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import processes
import pytest
import soundfile as sf
import torch

from snlu.cli.prepare import main as prepare
from snlu.cli.train import main as train
from snlu.core.errors import DataError
from snlu.data.audio import read_wav, write_wav
from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.data.vocab import CharVocab
from snlu.frontends.fbank import Fbank, FbankConfig
from snlu.tasks.base import Task

ASSETS = Path(importlib.util.find_spec("s3tokenizer").submodule_search_locations[0]) / "assets"
RECIPES = Path(__file__).parents[2] / "recipes"


def tone(seconds: float, sr: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(len(t)).standard_normal(len(t))
    return x if channels == 1 else np.stack([x] * channels, axis=1)


def row(sentence: str, audio_id: str, *spans: tuple[int, int, str]) -> str:
    ents = [[s, e, sentence[s:e], t] for s, e, t in spans]
    return json.dumps({"sentence": sentence, "audio": [audio_id], "entity": ents, "speaker_info": [["S0900", "F"]]},
                      ensure_ascii=False)


class FakeCnerta:
    """A CNERTA release in ``root``: jsonl/{train,valid,test}.jsonl and audio/ (flat or AISHELL-nested)."""

    def __init__(self, root: Path, layout: str):
        self.root, self.layout = root, layout
        self.jsonl, self.audio = root / "jsonl", root / "audio"
        self.jsonl.mkdir(parents=True)
        self.bad: dict[str, tuple[Path, int]] = {}  # kind -> (file, line) of its bad line
        self.good: dict[str, list[str]] = {}  # split -> ids of the usable lines

    def wav(self, utt_id: str, split: str) -> Path:
        if self.layout == "flat":
            return self.audio / f"{utt_id}.wav"
        return self.audio / "wav" / split / "S0900" / f"{utt_id}.wav"

    def real(self, utt_id: str, split: str) -> None:
        self.wav(utt_id, split).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ASSETS / f"{utt_id}.wav", self.wav(utt_id, split))

    def gen(self, utt_id: str, split: str, seconds: float = 1.2, sr: int = 16000, channels: int = 1) -> None:
        write_wav(self.wav(utt_id, split), tone(seconds, sr, channels), sr)

    def split(self, split: str, name: str, lines: list[tuple[str | None, str, str | None]]) -> None:
        """``lines``: (bad kind or None, text, id of a good line)."""
        path = self.jsonl / name
        path.write_text("".join(text + "\n" for _, text, _ in lines), encoding="utf-8")
        self.good[split] = [utt_id for kind, _, utt_id in lines if utt_id]
        for n, (kind, _, _) in enumerate(lines, start=1):
            if kind:
                self.bad[kind] = (path, n)

    @classmethod
    def build(cls, root: Path, layout: str) -> FakeCnerta:
        c = cls(root, layout)
        c.real("BAC009S0764W0121", "train")
        c.real("BAC009S0764W0122", "dev")
        for utt_id in ("G1", "G2", "G3", "B_TYPE"):
            c.gen(utt_id, "train")
        c.gen("G4", "train", sr=8000)  # resampled with a warning
        c.gen("G5", "train", channels=2)  # down-mixed with a warning
        c.gen("B_LONG", "train", seconds=21.0)
        c.gen("B_CTC", "train", seconds=0.5)
        c.gen("D1", "dev")
        c.gen("T1", "test")
        c.gen("T2", "test")
        c.wav("B_GARBAGE", "train").write_bytes(b"RIFF this is not a wav file")
        sf.write(c.wav("B_EMPTY", "train"), np.zeros(0, dtype=np.float32), 16000)
        c.split("train", "train.jsonl", [
            (None, row("甚至出现交易几乎停滞的情况", "BAC009S0764W0121"), "BAC009S0764W0121"),
            (None, row("北京欢迎你", "G1", (0, 2, "LOC")), "G1"),
            (None, row("张三去上海", "G2", (0, 2, "PER"), (3, 5, "LOC")), "G2"),
            (None, row("中国银行开门", "G3", (0, 4, "ORG"), (0, 2, "LOC")), "G3"),  # nested: counted, kept
            ("sample_rate", row("上海很大", "G4", (0, 2, "LOC")), "G4"),
            ("channels", row("李四在北京", "G5", (0, 2, "PER"), (3, 5, "LOC")), "G5"),
            ("json", '{"sentence": "北京",', None),
            ("field", json.dumps({"audio": ["G1"], "entity": []}), None),
            ("span", row("北京欢迎", "G1").replace('"entity": []', '"entity": [[0, 9, "北京", "LOC"]]'), None),
            ("span_text", row("北京欢迎", "G1").replace('"entity": []', '"entity": [[0, 2, "上海", "LOC"]]'), None),
            ("entity_type", row("北京欢迎", "B_TYPE", (0, 2, "CITY")), None),
            ("duplicate_id", row("北京欢迎你", "G1", (0, 2, "LOC")), None),
            ("audio_missing", row("北京欢迎", "NOPE"), None),
            ("audio_unreadable", row("北京欢迎", "B_GARBAGE"), None),
            ("audio_empty", row("北京欢迎", "B_EMPTY"), None),
            ("duration", row("北京欢迎", "B_LONG"), None),
            ("ctc_infeasible", row("一二三四五六七八九十一二三四五六七八九十", "B_CTC"), None),
        ])
        dev_name = "valid.jsonl" if layout == "flat" else "dev.jsonl"  # both default names are found
        c.split("dev", dev_name, [(None, row("一二线城市虽然也处于调整中", "BAC009S0764W0122"), "BAC009S0764W0122"),
                                  (None, row("王五在广州", "D1", (0, 2, "PER"), (3, 5, "LOC")), "D1")])
        c.split("test", "test.jsonl", [(None, row("刘六去深圳", "T1", (0, 2, "PER"), (3, 5, "LOC")), "T1"),
                                       (None, row("南京大学很美", "T2", (0, 4, "ORG")), "T2"),
                                       ("duplicate_id_across", row("张三去上海", "G2"), None)])
        return c

    def args(self, out: Path, *extra: str) -> list[str]:
        return ["cnerta", "--jsonl-dir", str(self.jsonl), "--audio-dir", str(self.audio), "--out", str(out), *extra]


KIND_OF = {"span_text": "span", "duplicate_id_across": "duplicate_id"}  # two bad lines of one kind
WARNINGS = {"sample_rate", "channels"}


@pytest.fixture(scope="module", params=["flat", "nested"])
def prepared(request, tmp_path_factory):
    """The fake corpus and its default (non-strict) preparation."""
    corpus = FakeCnerta.build(tmp_path_factory.mktemp(request.param), request.param)
    out = corpus.root / "out"
    assert prepare(corpus.args(out)) == 0
    return corpus, out


def test_every_bad_line_is_reported_with_file_and_line(prepared):
    corpus, out = prepared
    report = json.loads((out / "validation.json").read_text(encoding="utf-8"))
    problems = report["problems"]
    assert len(corpus.bad) == 14
    for name, (path, line) in corpus.bad.items():
        kind = KIND_OF.get(name, name)
        found = [p for p in problems if p["kind"] == kind and p["file"] == str(path) and p["line"] == line]
        assert len(found) == 1, (name, problems)
        assert found[0]["message"].startswith(f"{path}:{line}: ")
        assert found[0]["severity"] == ("warning" if kind in WARNINGS else "error")
    assert len(problems) == len(corpus.bad)  # nothing reported on the good lines
    assert report["splits"]["train"] == {"file": str(corpus.jsonl / "train.jsonl"), "lines": 17, "usable": 6,
                                         "skipped": 11, "warnings": 2, "nested_lines": 1, "nested_dropped": 1}
    md = (out / "validation.md").read_text(encoding="utf-8")
    for path, line in corpus.bad.values():
        assert f"`{path}:{line}: " in md


def test_default_keeps_exactly_the_good_lines(prepared):
    corpus, out = prepared
    for split, ids in corpus.good.items():
        rows = [json.loads(x) for x in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
        assert [r["audio"] for r in rows] == [[i] for i in ids]
        for r in rows:
            assert {"sentence", "audio", "entity", "speaker_info", "path", "duration"} <= set(r)
            info = sf.info(r["path"])
            assert (info.samplerate, info.channels) == (16000, 1)
            assert r["duration"] == pytest.approx(info.frames / 16000, abs=1e-3)
    train = {json.loads(x)["audio"][0]: json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()}
    for converted in ("G4", "G5"):  # 8 kHz and stereo sources: 16 kHz mono copies under out/wav
        assert Path(train[converted]["path"]) == (out / "wav" / f"{converted}.wav").resolve()
    assert train["BAC009S0764W0121"]["path"] == str(corpus.wav("BAC009S0764W0121", "train").resolve())
    assert train["G3"]["entity"] == [[0, 4, "中国银行", "ORG"], [0, 2, "中国", "LOC"]]  # the original, nested


def test_vocab_cmvn_stats_and_histograms(prepared):
    corpus, out = prepared
    train = read_cnerta(out / "train.jsonl", AudioIndex(out))  # the manifest's paths, no audio folder needed
    sentences = [u.sentence for u in train]
    assert set(CharVocab.load(out / "vocab.json").stoi) == {"<blank>", "<pad>", "<unk>", *"".join(sentences)}

    fbank = Fbank(FbankConfig(num_mel_bins=40))
    feats = torch.cat([fbank.featurize(read_wav(u.audio)) for u in train]).double()
    cmvn = json.loads((out / "cmvn.json").read_text())
    torch.testing.assert_close(torch.tensor(cmvn["mean"]), feats.mean(0).float(), atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(torch.tensor(cmvn["std"]), feats.std(0, correction=0).float(), atol=1e-3, rtol=1e-4)

    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["train"]["utterances"] == 6
    assert stats["train"]["entities"] == {"LOC": 4, "ORG": 1, "PER": 2}  # outermost spans
    assert stats["train"]["nested_dropped"] == 1
    assert stats["test"]["entities"] == {"LOC": 1, "ORG": 1, "PER": 1}
    seconds = sum(sf.info(u.audio).duration for u in train)
    assert stats["train"]["hours"] == pytest.approx(seconds / 3600, abs=1e-4)
    assert (out / "lengths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_strict_fails_and_writes_only_the_report(prepared, tmp_path):
    corpus, _ = prepared
    out = tmp_path / "strict"
    with pytest.raises(DataError, match=r"validation.md: 12 errors \(--strict"):
        prepare(corpus.args(out, "--strict"))
    assert (out / "validation.json").is_file() and not (out / "train.jsonl").exists()


def test_refuse_resample_makes_other_rates_an_error(prepared, tmp_path):
    corpus, _ = prepared
    out = tmp_path / "refuse"
    assert prepare(corpus.args(out, "--refuse-resample")) == 0
    problems = json.loads((out / "validation.json").read_text())["problems"]
    rate = [p for p in problems if p["kind"] == "sample_rate"]
    assert [(p["severity"], p["line"]) for p in rate] == [("error", corpus.bad["sample_rate"][1])]
    assert "G4" not in (out / "train.jsonl").read_text()


def test_strict_console_exit_2_one_line(tmp_path):
    corpus = FakeCnerta.build(tmp_path / "c", "flat")
    code = "import sys; from snlu.cli.prepare import entry; sys.argv[0] = 'snlu-prepare'; entry()"
    r = processes.run([sys.executable, "-c", code, *corpus.args(tmp_path / "out", "--strict")], timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'out' / 'validation.md'}: 12 errors")
    path, line = corpus.bad["span_text"]
    assert f"{path}:{line}: field 'entity[0]': text '上海' != sentence[0:2] '北京'" in r.stdout  # the summary


def test_prepared_manifests_train_a_recipe(tmp_path, tiny):
    corpus = FakeCnerta.build(tmp_path / "c", "nested")
    out = tmp_path / "out"
    assert prepare(corpus.args(out)) == 0
    run = tmp_path / "run"
    data = [f"data.{s}={out / f'{s}.jsonl'}" for s in ("train", "dev", "test")]  # no data.audio_dir
    assert train([str(RECIPES / "fusion_raw_all.yaml"), *tiny, *data, "--output-dir", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["f1"] <= 1.0 and metrics["test"]["per_type"]
    assert len((run / "test_predictions.jsonl").read_text().splitlines()) == 2


def test_prepared_features_and_cmvn_train_as_the_audio_does(tmp_path, tiny):
    """``--features`` caches every split (CMVN from the same pass equals the audio's); training one epoch
    with ``data.feature_cache`` and ``frontend.cmvn`` reads both and matches a run on the audio."""
    corpus = FakeCnerta.build(tmp_path / "c", "flat")
    out = tmp_path / "out"
    assert prepare(corpus.args(out, "--features", "--feature-workers", "2")) == 0
    (folder,) = (out / "features").glob("fbank-*")
    assert {p.name for p in folder.glob("*.json")} == {"settings.json", "train.json", "dev.json", "test.json"}
    train_utts = read_cnerta(out / "train.jsonl", AudioIndex(out))
    fbank = Fbank(FbankConfig(num_mel_bins=40))
    feats = torch.cat([fbank.featurize(read_wav(u.audio)) for u in train_utts]).double()
    cmvn = json.loads((out / "cmvn.json").read_text())
    assert cmvn["settings"]["num_mel_bins"] == 40
    torch.testing.assert_close(torch.tensor(cmvn["mean"]), feats.mean(0).float(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.tensor(cmvn["std"]), feats.std(0, correction=0).float(), atol=1e-5, rtol=1e-5)

    data = [f"data.{s}={out / f'{s}.jsonl'}" for s in ("train", "dev", "test")]
    common = [*tiny, *data, "frontend.norm=global", f"frontend.cmvn={out / 'cmvn.json'}", "train.num_workers=1"]
    runs = {"cache": tmp_path / "cache", "audio": tmp_path / "audio"}
    assert train([str(RECIPES / "asr_pretrain.yaml"), *common, f"data.feature_cache={out / 'features'}",
                  "--output-dir", str(runs["cache"])]) == 0
    assert train([str(RECIPES / "asr_pretrain.yaml"), *common, "--output-dir", str(runs["audio"])]) == 0
    log = (runs["cache"] / "train.log").read_text()
    assert f"feature cache: {folder} (train 6, dev 2, test 2)" in log and "building it" not in log
    assert f"global CMVN: read from {out / 'cmvn.json'}" in log
    cached, audio = (json.loads((r / "metrics.json").read_text()) for r in runs.values())
    assert cached["test"]["chars"] == audio["test"]["chars"] > 0
    losses = [json.loads((r / "history.json").read_text())[0]["loss"] for r in runs.values()]
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)  # the same run up to float16 rounding of the features
    model = Task.load(runs["cache"] / "best")  # frontend.cmvn is not needed to reload: the buffers hold it
    assert torch.equal(model.frontend.cmvn_mean, torch.tensor(cmvn["mean"]))
    assert torch.equal(model.frontend.cmvn_std, torch.tensor(cmvn["std"]))
