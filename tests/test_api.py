"""``snlu.load``: identical predictions in a new process, from a path or an array, after ``save``; decoding options
at load and per call; cheap import."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import processes
import pytest
import torch
from safetensors.torch import load_file

import snlu
import snlu.run
from snlu.core.errors import SnluError
from snlu.data.audio import read_wav
from snlu.data.inputs import make_utterance
from snlu.heads.ctc import CTCHead, prefix_beam_search

RECIPES = Path(__file__).parents[1] / "recipes"


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


@pytest.fixture(scope="module")
def asr_model(tmp_path_factory, tiny, demo_overrides):
    """A tiny asr model at its random initialisation (a wide spread of CTC posteriors), saved as training saves
    ``best/``; its recipe decodes with the best path (task.beam_size 1)."""
    cfg = snlu.run.load(RECIPES / "asr_pretrain.yaml", [*tiny, *demo_overrides])
    out = tmp_path_factory.mktemp("asr_model") / "best"
    snlu.run.build(cfg).task.save(out)
    return out


def test_load_with_a_beam_decodes_with_that_beam(asr_model, demo_dir):
    wavs = sorted((demo_dir / "wav").glob("DEMO_TEST_*.wav"))
    saved = (asr_model / "config.yaml").read_bytes()
    model = snlu.load(asr_model, device="cpu", beam_size=4)
    assert model.decode == {"beam_size": 4}
    # the reference: each utterance's CTC log-probabilities searched directly by prefix_beam_search (and greedily)
    task, beam4, greedy = model.task, [], []
    for w in wavs:
        batch = task.processor.collate([task.processor.prepare(make_utterance("", w, w.stem, str(w), True))])
        with torch.no_grad():
            logits, lengths = task(batch)
        beam4.append(task.vocab.decode(prefix_beam_search(logits[0, : lengths[0]].log_softmax(-1), 4)))
        greedy.append(task.vocab.decode(CTCHead.greedy_decode(logits, lengths)[0]))
    assert beam4 != greedy  # (the comparison tells a beam of 4 from the best path)
    assert model.predict_batch(wavs, batch_size=1) == beam4
    assert [model.predict(w, beam_size=1) for w in wavs] == greedy  # one call's option
    assert snlu.load(asr_model, device="cpu").predict_batch(wavs, batch_size=1) == greedy  # the recipe's beam
    assert (asr_model / "config.yaml").read_bytes() == saved and task.cfg.task.beam_size == 1  # never changed


def test_unknown_or_bad_decoding_options_are_snlu_errors(asr_model, random_run):
    with pytest.raises(SnluError, match=r"^decoding option 'marker_bonus': task 'asr' has no such option \(its "
                                        r"options: beam_size\)$"):
        snlu.load(asr_model, device="cpu", marker_bonus=2.0)
    with pytest.raises(SnluError, match=r"^decoding option 'beam_size': must be >= 1, got 0$"):
        snlu.load(asr_model, device="cpu", beam_size=0)
    with pytest.raises(SnluError, match=r"^decoding option 'beam_size': expected int, got '4'$"):
        snlu.load(asr_model, device="cpu").predict_batch([], beam_size="4")
    with pytest.raises(SnluError, match=r"^decoding option 'beam_size': task 'spoken_ner' has no such option \(its "
                                        r"options: none\)$"):
        snlu.load(random_run, device="cpu", beam_size=4)


def test_import_snlu_is_cheap_and_load_is_lazy():
    """``snlu.load`` decides between an exported folder and a saved model before importing either path."""
    code = ("import sys, snlu; f = snlu.load; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert f.__module__ == 'snlu'; print(snlu.__version__)")
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
