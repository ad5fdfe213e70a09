"""``snlu.load``: identical predictions in a new process, from a path or an array, after ``save``; cheap import."""

from __future__ import annotations

import json
import sys

import processes
import pytest
import torch
from safetensors.torch import load_file

import snlu
from snlu.data.audio import read_wav
from snlu.errors import SnluError


def inputs_of(run, demo_dir):
    lines = [json.loads(x) for x in (run / "test_predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    wavs = [str(demo_dir / "wav" / f"{x['audio'][0]}.wav") for x in lines]
    return wavs, [x["sentence"] for x in lines], [x["entity"] for x in lines]


SCRIPT = """
import json, sys
import snlu
wavs, texts = json.loads(sys.argv[2]), json.loads(sys.argv[3])
model = snlu.load(sys.argv[1], device="cpu")
print(json.dumps({"batch": model.predict_batch(wavs, texts, batch_size=2),
                  "one": [model.predict(w, t) for w, t in zip(wavs, texts)]}, ensure_ascii=False))
"""


def test_load_in_a_new_process_gives_identical_predictions(random_run, demo_dir):
    wavs, texts, expected = inputs_of(random_run, demo_dir)
    assert any(expected)
    r = processes.run([sys.executable, "-c", SCRIPT, str(random_run / "best"), json.dumps(wavs), json.dumps(texts)],
                      timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["batch"] == expected  # the trainer's own test predictions
    assert out["one"] == expected
    model = snlu.load(random_run / "best", device="cpu")
    assert model.predict_batch(wavs, texts) == expected


def test_array_input_and_save_round_trip(random_run, demo_dir, tmp_path):
    wavs, texts, expected = inputs_of(random_run, demo_dir)
    model = snlu.load(random_run, device="cpu")
    assert [model.predict(read_wav(w), t) for w, t in zip(wavs, texts)] == expected
    assert model.predict_batch([read_wav(w) for w in wavs], texts, batch_size=3) == expected
    saved = tmp_path / "copy"
    model.save(saved)
    best = random_run / "best"
    layout = [sorted(p.relative_to(d) for p in d.rglob("*")) for d in (saved, best)]
    assert layout[0] == layout[1]
    a, b = load_file(str(saved / "model.safetensors")), load_file(str(best / "model.safetensors"))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    assert snlu.load(saved, device="cpu").predict_batch(wavs, texts) == expected


def test_bad_calls_are_snlu_errors(random_run, demo_dir):
    wavs, texts, _ = inputs_of(random_run, demo_dir)
    model = snlu.load(random_run, device="cpu")
    with pytest.raises(SnluError, match="pass text"):
        model.predict(wavs[0])
    with pytest.raises(SnluError, match="pass audio"):
        model.predict(text=texts[0])
    with pytest.raises(SnluError, match="2 audios but 1 texts"):
        model.predict_batch(wavs[:2], texts[:1])
    with pytest.raises(SnluError, match="predict_batch item 0: field 'audio': expected a non-empty 1-D array"):
        model.predict([[0.0, 0.1]], texts[0])
    with pytest.raises(SnluError, match="audio file not found"):
        model.predict(str(demo_dir / "missing.wav"), texts[0])
    with pytest.raises(SnluError, match="not a saved model"):
        snlu.load(demo_dir)


def test_import_snlu_is_cheap_and_load_is_lazy():
    code = ("import sys, snlu; assert 'torch' not in sys.modules, 'torch imported'; f = snlu.load; "
            "assert 'torch' in sys.modules and f.__module__ == 'snlu.api'; print(snlu.__version__)")
    r = processes.run([sys.executable, "-c", code], timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        snlu.nope  # noqa: B018


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_missing_gpu_is_the_commands_one_line_error(random_run, tmp_path, demo_dir):
    with pytest.raises(SnluError) as e:
        snlu.load(random_run, device="cuda")
    assert str(e.value) == "device cuda: no CUDA device is available on this machine (use cpu or auto)"
    r = processes.run([sys.executable, "-c", "import sys; from snlu.cli.predict import entry; entry()",
                       str(random_run), "--data", str(demo_dir / "test.jsonl"), "--output", str(tmp_path / "o"),
                       "--device", "cuda"], timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == ("error: --device cuda: no CUDA device is available on this "
                                                 "machine (use cpu or auto)")


def test_amp_is_the_runs_unless_given(random_run):
    assert snlu.load(random_run, device="cpu").amp == "auto"  # the run's train.amp: off on CPU
    assert snlu.load(random_run, device="cpu", amp="bf16").amp == "bf16"
    with pytest.raises(SnluError, match="amp: expected one of auto, off, bf16, fp16, got 'half'"):
        snlu.load(random_run, device="cpu", amp="half")
