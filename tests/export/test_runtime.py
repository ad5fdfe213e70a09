"""The torch-free path: ``snlu.load`` of an exported folder and ``snlu-predict``/``snlu-eval`` on it, in a process
where ``import torch`` fails, give the eager model's results; the Python API's checks."""

from __future__ import annotations

import json
import sys

import pytest
from processes import run as run_process

import snlu
from snlu.cli.eval import main as eval_main
from snlu.core.errors import SnluError
from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.export.runtime import ExportedModel

pytestmark = pytest.mark.timeout(900)
NO_TORCH = "import sys; sys.modules['torch'] = None  # import torch fails from here on\n"


def test_snlu_load_runs_without_torch(exported, demo_dir):
    run, folder = exported("raw_all")
    utts = read_cnerta(demo_dir / "test.jsonl", AudioIndex(demo_dir / "wav"))
    wavs, texts = [u.audio for u in utts], [u.sentence for u in utts]
    code = NO_TORCH + f"""
import json, snlu
model = snlu.load({str(folder)!r}, device="cpu")
print(json.dumps([model.predict_batch({wavs!r}, {texts!r}, batch_size=3), model.predict({wavs[0]!r}, {texts[0]!r})]))
assert sys.modules.get("torch") is None and "torchaudio" not in sys.modules and "transformers" not in sys.modules
"""
    r = run_process([sys.executable, "-c", code], timeout=600)
    assert r.returncode == 0, r.stderr
    batch, one = json.loads(r.stdout)
    eager = snlu.load(run, device="cpu")
    assert batch == json.loads(json.dumps(eager.predict_batch(wavs, texts)))  # (tuples become lists in JSON)
    assert one == batch[0]


def test_snlu_eval_and_predict_run_without_torch_with_the_eager_results(exported, demo_dir, tmp_path):
    run, folder = exported("tokenized_dpmask")
    data = demo_dir / "test.jsonl"
    assert eval_main([str(run), "--data", str(data), "--output-dir", str(tmp_path / "eager"), "--device", "cpu"]) == 0
    for command, extra in (("eval", ["--output-dir", str(tmp_path / "exported")]),
                           ("predict", ["--output", str(tmp_path / "pred.jsonl")])):
        argv = [f"snlu-{command}", str(folder), "--data", str(data), "--batch-size", "3", *extra]
        code = NO_TORCH + f"sys.argv = {argv!r}\nfrom snlu.cli.entry import {command}_entry\n{command}_entry()\n"
        r = run_process([sys.executable, "-c", code], timeout=600)
        assert r.returncode == 0, r.stderr
    eager, got = tmp_path / "eager", tmp_path / "exported"
    assert json.loads((got / "metrics.json").read_text()) == json.loads((eager / "metrics.json").read_text())
    for f in ("predictions.jsonl", "errors.jsonl", "analysis.json"):
        assert (got / f).read_text(encoding="utf-8") == (eager / f).read_text(encoding="utf-8"), f
    assert (tmp_path / "pred.jsonl").read_text(encoding="utf-8") == (eager / "predictions.jsonl").read_text(
        encoding="utf-8")
    assert (got / "analysis.png").is_file()


def test_the_eager_commands_dispatch_on_an_exported_folder(exported, demo_dir, tmp_path):
    from snlu.cli.predict import main as predict_main

    run, folder = exported("asr")
    data = demo_dir / "test.jsonl"
    assert predict_main([str(folder), "--data", str(data), "--output", str(tmp_path / "a.jsonl")]) == 0
    assert predict_main([str(run), "--data", str(data), "--output", str(tmp_path / "b.jsonl")]) == 0
    assert (tmp_path / "a.jsonl").read_text(encoding="utf-8") == (tmp_path / "b.jsonl").read_text(encoding="utf-8")


def test_the_python_api_checks_its_inputs(exported):
    _, folder = exported("text_graph")
    model = snlu.load(folder)
    assert isinstance(model, ExportedModel)
    assert isinstance(model.predict(text="北京大学在海淀区"), list)
    with pytest.raises(SnluError, match="reads the transcript"):
        model.predict_batch(audios=["a.wav"])
    with pytest.raises(SnluError, match="--beam-size: task 'text_ner' does not decode with CTC"):
        snlu.load(folder, beam_size=4)
    with pytest.raises(SnluError, match="device: expected one of"):
        snlu.load(folder, device="tpu")


def test_the_runtime_tokenizes_as_the_eager_processor(exported, demo_dir):
    from snlu.data.inputs import make_utterance
    from snlu.export.runtime import ExportedTask
    from snlu.tasks.base import Task

    run, folder = exported("tokenized_all")
    task, runtime = Task.load(run), ExportedTask(folder)
    sentences = [u.sentence for split in ("train", "dev", "test")
                 for u in read_cnerta(demo_dir / f"{split}.jsonl", None)]
    sentences += ["iPhone 15 Pro售价7999元", "ＡＢＣ全角ＤＥＦ", "e-mail: a.b@c.com!", "北京\u3000上海", "😀表情",
                  "  空格  "]
    for s in sentences:
        utt = make_utterance(s, None, "u", "here", False)
        eager, got = task.processor.prepare_text(utt), runtime.prepare_text(utt)
        assert got["input_ids"].tolist() == eager["input_ids"].tolist(), s
        assert got["offsets"] == eager["offsets"], s
        assert got["char_ids"].tolist() == eager["char_ids"].tolist(), s
