"""Bad input at the command line: one ``error:`` line naming the key, or the file, line and field; exit 2;
no traceback. A few through a real subprocess, the rest through the same ``entry()`` in process (any
exception other than snlu's own would escape it and fail the test). Odd but valid input works."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import processes
import pytest
import soundfile as sf
import torch

from snlu.cli.train import entry
from snlu.data.cnerta import SPLITS

RECIPES = Path(__file__).parents[2] / "recipes"
RAW, ASR = str(RECIPES / "fusion_raw_all.yaml"), str(RECIPES / "asr_pretrain.yaml")
SMALL = ["audio_encoder.n_blocks=1", "audio_encoder.ffn_dim=128", "audio_encoder.d_model=64", "train.epochs=1",
         "train.batch_size=4", "train.num_workers=0"]


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr[-2000:]
    return errors[0]


@pytest.mark.parametrize("args, expected", [
    (["train.epoch=3"], "error: train.epoch: unknown key; did you mean epochs? (valid: epochs, "),
    (["fusion.name=rwa"], "error: fusion.name: unknown fusion 'rwa'; did you mean 'raw'? (valid: "),
    (["data.train=BINARY", "data.dev=BINARY", "data.test=BINARY"], "error: BINARY: not UTF-8 text (byte "),
], ids=["unknown-key", "unknown-component", "binary-jsonl"])
def test_subprocess_one_line_exit_2(tmp_path, args, expected):
    binary = tmp_path / "train.jsonl"
    binary.write_bytes(bytes(range(256)) * 4)
    args = [a.replace("BINARY", str(binary)) for a in args]
    code = "import sys; from snlu.cli.train import entry; sys.argv[0] = 'snlu-train'; entry()"
    r = processes.run([sys.executable, "-c", code, RAW, *args, "--output-dir", str(tmp_path / "run")],
                      timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2
    assert one_error_line(r.stderr).startswith(expected.replace("BINARY", str(binary)))


def train_cli(monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    """``snlu-train ARGV`` in this process: (exit status, stderr)."""
    monkeypatch.setattr(sys, "argv", ["snlu-train", *argv])
    with pytest.raises(SystemExit) as e:
        entry()
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize("overrides, expected", [
    (["optim.lrs.fusion_layer=5"], "error: optim.lrs.fusion_layer: learning rate must be in (0, 1], got 5.0"),
    (["data.train=/no/t.jsonl", "data.dev=/no/d.jsonl", "data.test=/no/e.jsonl"],
     "error: data.train: file not found: /no/t.jsonl"),
    (["train.batch_size=abc"], "error: train.batch_size: wrong type: "),
    (["fusion.name=null"], "error: fusion.name: missing required value (one of: "),
    (["loss.ctc_coef=-0.5"], "error: loss.ctc_coef: must be in [0.0, "),
    (["train.checkpoint_every=-1"], "error: train.checkpoint_every: must be >= 0, got -1"),
])
def test_recipe_errors_in_process(monkeypatch, capsys, overrides, expected):
    code, err = train_cli(monkeypatch, capsys, RAW, *overrides)
    assert code == 2 and one_error_line(err).startswith(expected)


@pytest.fixture
def corpus(tmp_path, demo_dir):
    """A writable copy of the tiny demo corpus: (folder, overrides)."""
    d = Path(shutil.copytree(demo_dir, tmp_path / "corpus", ignore=shutil.ignore_patterns("*.json")))
    return d, [f"data.train={d}/train.jsonl", f"data.dev={d}/dev.jsonl", f"data.test={d}/test.jsonl",
               f"data.audio_dir={d}/wav"]


def first_train_wav(d: Path) -> tuple[Path, int]:
    """The first training line's wav file and that line's number."""
    audio_id = json.loads((d / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])["audio"][0]
    return d / "wav" / f"{audio_id}.wav", 1


def test_empty_jsonl(monkeypatch, capsys, corpus, tmp_path):
    d, data = corpus
    (d / "train.jsonl").write_text("\n\n")
    code, err = train_cli(monkeypatch, capsys, ASR, *SMALL, *data, "--output-dir", str(tmp_path / "run"))
    assert code == 2 and one_error_line(err) == f"error: {d}/train.jsonl: no utterances (empty file)"


def test_zero_second_wav(monkeypatch, capsys, corpus, tmp_path):
    d, data = corpus
    wav, line = first_train_wav(d)
    sf.write(wav, np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")
    code, err = train_cli(monkeypatch, capsys, ASR, *SMALL, *data, "--output-dir", str(tmp_path / "run"))
    assert code == 2
    assert one_error_line(err) == f"error: {d}/train.jsonl:{line}: field 'audio': empty audio {wav} (0 samples)"


def test_truncated_wav(monkeypatch, capsys, corpus, tmp_path):
    """A WAV holding fewer samples than its header declares is an error when its line is read; with
    data.allow_truncated it is read as it is (then this one is too short for the encoder)."""
    d, data = corpus
    wav, line = first_train_wav(d)
    declared = sf.info(wav).frames
    wav.write_bytes(wav.read_bytes()[:44 + 200])  # the header still claims the whole recording
    run = tmp_path / "run"
    code, err = train_cli(monkeypatch, capsys, ASR, *SMALL, *data, "--output-dir", str(run))
    assert code == 2 and not run.exists()
    assert one_error_line(err) == (f"error: {d}/train.jsonl:{line}: field 'audio': audio {wav}: truncated: the header "
                                   f"says {declared / 16000:.2f} s ({declared} samples), the file holds 0.01 s (100) "
                                   f"(data.allow_truncated reads it as it is)")
    allow = "data.allow_truncated=true"
    code, err = train_cli(monkeypatch, capsys, ASR, *SMALL, *data, allow, "--output-dir", str(run))
    assert code == 2 and not run.exists()
    assert one_error_line(err) == (f"error: {d}/train.jsonl:{line}: field 'audio': audio {wav} has 100 samples: "
                                   f"too short for the encoder (truncated file?)")


def test_partly_truncated_wav_is_an_error_or_with_the_option_a_warning(monkeypatch, capsys, corpus, tmp_path):
    d, data = corpus
    wav, line = first_train_wav(d)
    declared, keep = sf.info(wav).frames, 15040  # 0.94 s of the recording left
    wav.write_bytes(wav.read_bytes()[:44 + 2 * keep])
    run = tmp_path / "run"
    code, err = train_cli(monkeypatch, capsys, ASR, *SMALL, *data, "--output-dir", str(run))
    assert code == 2 and not run.exists()
    assert one_error_line(err).endswith(f"the header says {declared / 16000:.2f} s ({declared} samples), the file "
                                        f"holds 0.94 s ({keep}) (data.allow_truncated reads it as it is)")
    allow = "data.allow_truncated=true"
    code, err = train_cli(monkeypatch, capsys, ASR, *SMALL, *data, allow, "--output-dir", str(run))
    assert code == 0, err[-2000:]
    assert (f"1 truncated audio file read as far as they go (data.allow_truncated; first: {d}/train.jsonl:{line}: "
            f"audio {wav}: truncated: ") in (run / "train.log").read_text()


def test_unknown_entity_type_is_refused_unless_the_recipe_adds_it(monkeypatch, capsys, corpus, tmp_path):
    d, data = corpus
    lines = (d / "train.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["entity"] = [[0, 1, first["sentence"][0], "MISC"]]
    (d / "train.jsonl").write_text("\n".join([json.dumps(first, ensure_ascii=False), *lines[1:]]) + "\n",
                                   encoding="utf-8")
    run = tmp_path / "run"
    code, err = train_cli(monkeypatch, capsys, ASR, *SMALL, *data, "--output-dir", str(run))
    assert code == 2 and not run.exists()
    assert one_error_line(err) == (f"error: {d}/train.jsonl:1: field 'entity[0]': type 'MISC' is not one of PER, "
                                   f"LOC, ORG (data.entity_types adds types)")
    from snlu.data.cnerta import CnertaConfig, CnertaData

    cfg = CnertaConfig(train=f"{d}/train.jsonl", dev=f"{d}/dev.jsonl", test=f"{d}/test.jsonl", audio_dir=f"{d}/wav",
                       entity_types=["PER", "LOC", "ORG", "MISC"])
    assert CnertaData(cfg).load()["train"][0].entities == [(0, 1, "MISC")]


def test_fusion_head_count_is_checked_before_any_data_is_read(monkeypatch, capsys, tmp_path):
    binary = tmp_path / "train.jsonl"  # reading it would be an error of its own
    binary.write_bytes(bytes(range(256)) * 4)
    run = tmp_path / "run"
    code, err = train_cli(monkeypatch, capsys, RAW, "fusion.num_heads=5", *(f"data.{s}={binary}" for s in SPLITS),
                          "--output-dir", str(run))
    assert code == 2 and not run.exists()
    assert one_error_line(err) == "error: fusion.num_heads: must divide the text hidden size 512, got 5"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_machine_without_it(monkeypatch, capsys, tmp_path):
    run = tmp_path / "run"
    code, err = train_cli(monkeypatch, capsys, RAW, "train.device=cuda", "--output-dir", str(run))
    assert code == 2 and not run.exists()
    assert one_error_line(err) == ("error: train.device=cuda: no CUDA device is available on this machine (use cpu or "
                                   "auto)")


BROKEN = r"""
import torch
from snlu.fusions.base import Fusion
from snlu.registry import FUSIONS


@FUSIONS.register("fails_in_forward")
class FailsInForward(Fusion):
    '''Builds, then fails in its first forward, as a bug in a component would.'''

    consumes = ("frames",)

    def __init__(self, cfg, text_dim, audio_dim, intermediate_size, text_heads):
        super().__init__()
        self.proj = torch.nn.Linear(audio_dim, text_dim)

    def forward(self, text, text_mask, frames, frame_mask, tokens):
        raise RuntimeError("shapes (4, 9) and (3, 9) do not match\nmore detail")
"""


def test_an_error_while_training_is_one_line_and_leaves_no_run_directory(monkeypatch, capsys, corpus, tmp_path):
    """Not snlu's own error (a bug in a plugin's forward): still one line and exit 2; the run stopped before its
    first checkpoint, so its directory is removed and the same command can run again."""
    _, data = corpus
    (tmp_path / "broken.py").write_text(BROKEN)
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("defaults: [fusion_raw_all.yaml]\nplugins: [broken.py]\nfusion: {name: fails_in_forward}\n")
    expected = "error: RuntimeError: shapes (4, 9) and (3, 9) do not match (--debug shows the traceback)"
    run = tmp_path / "run"
    for _ in range(2):  # the second time is not refused as "run directory is not empty"
        code, err = train_cli(monkeypatch, capsys, str(recipe), *SMALL, *data, "--output-dir", str(run))
        assert code == 2 and one_error_line(err) == expected
        assert not run.exists()
    run.mkdir()  # a folder the user made stays, emptied
    code, err = train_cli(monkeypatch, capsys, str(recipe), *SMALL, *data, "--output-dir", str(run))
    assert code == 2 and one_error_line(err) == expected
    assert run.is_dir() and not any(run.iterdir())


def test_a_bom_at_the_start_of_a_jsonl_file_is_read_past(monkeypatch, capsys, corpus, tmp_path):
    d, data = corpus
    for split in SPLITS:
        path = d / f"{split}.jsonl"
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    code, err = train_cli(monkeypatch, capsys, ASR, *SMALL, *data, "--output-dir", str(tmp_path / "run"))
    assert code == 0, err[-2000:]


def test_8khz_stereo_wav_and_overlong_transcript_still_train(monkeypatch, capsys, corpus, tmp_path):
    """An 8 kHz stereo file is resampled and down-mixed; a 1,000-character line is skipped and counted."""
    from snlu.data.audio import read_wav

    d, data = corpus
    wav, _ = first_train_wav(d)
    mono16 = read_wav(wav)
    stereo8, _ = sf.read(wav)
    stereo8 = np.stack([stereo8[::2], 0.5 * stereo8[::2]], axis=1)  # crude decimation: the length is what counts
    sf.write(wav, stereo8, 8000, subtype="PCM_16")
    assert abs(len(read_wav(wav)) - len(mono16)) <= 2
    lines = (d / "train.jsonl").read_text(encoding="utf-8").splitlines()
    long = {**json.loads(lines[1]), "sentence": "长" * 1000, "entity": [[0, 2, "长长", "LOC"]]}
    (d / "train.jsonl").write_text("\n".join([*lines, json.dumps(long, ensure_ascii=False)]) + "\n",
                                   encoding="utf-8")
    run = tmp_path / "run"
    code, err = train_cli(monkeypatch, capsys, ASR, *SMALL, *data, "--output-dir", str(run))
    assert code == 0, err[-2000:]
    assert f"train: skipped 1 of {len(lines) + 1} utterances over max_chars=50" in (run / "train.log").read_text()
    assert (run / "metrics.json").is_file()


def test_overlong_sentence_at_evaluation_is_tagged_as_far_as_bert_reads(random_run, demo_dir, snlu_caplog):
    """Longer than BERT's 512 word pieces: the first 510 are tagged, the rest count as missed, logged."""
    from snlu.data.cnerta import read_cnerta
    from snlu.inference import predict_utterances
    from snlu.tasks.base import Task

    task = Task.load(random_run)
    utt = read_cnerta(demo_dir / "test.jsonl", None)[0]
    audio = demo_dir / "wav" / f"{utt.id}.wav"
    k = 1000 // len(utt.sentence) + 1
    entities = [(s + i * len(utt.sentence), e + i * len(utt.sentence), t) for i in range(k) for s, e, t in utt.entities]
    long = dataclasses.replace(utt, sentence=(utt.sentence * k)[:1000], audio=str(audio),
                               entities=[x for x in entities if x[1] <= 1000])
    (pred,) = predict_utterances(task, [long], 1, "cpu", progress=False)
    assert all(0 <= s < e <= 510 for s, e, _ in pred)
    metrics = task.evaluate([long], [pred])
    assert metrics["recall"] <= 510 / 1000 + 1e-9
    assert (f"{utt.where}: field 'sentence': 1000 characters exceed BERT's 512 word pieces: only characters "
            "[0, 510) are tagged, entities after them count as missed") in snlu_caplog.text


@pytest.fixture
def snlu_caplog(caplog):
    import logging

    logger = logging.getLogger("snlu")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def test_ctrl_c_before_the_first_checkpoint_leaves_no_run_directory(monkeypatch, capsys, corpus, tmp_path):
    import snlu.run

    def interrupted(cfg):  # Ctrl-C while the data loads
        raise KeyboardInterrupt

    monkeypatch.setattr(snlu.run, "build", interrupted)
    _, data = corpus
    run = tmp_path / "run"
    code, err = train_cli(monkeypatch, capsys, ASR, *SMALL, *data, "--output-dir", str(run))
    assert code == 130 and err.strip().splitlines()[-1] == "interrupted"
    assert not run.exists()
