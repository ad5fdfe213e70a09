"""``task.units=sentencepiece`` in the CTC tasks: an ``asr`` run trains, saves its SentencePiece model in best/
and reloads in a new process (snlu.load, snlu-predict) without the training data to identical predictions;
``e2e_ner`` decodes pieces with markers back into entities; ``audio_encoder.init_from`` across unit kinds
copies the encoder only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from snlu.cli.train import main
from snlu.config import load_recipe
from snlu.core.errors import SnluError
from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.data.units import SentencePieceUnits
from snlu.data.vocab import CharVocab
from snlu.inference import predict_utterances
from snlu.registry import TASKS
from snlu.tasks.base import Task

ROOT = Path(__file__).parents[2]
RECIPES = ROOT / "recipes"


def levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def sp_run(tmp_path_factory, tiny, demo_overrides):
    """One epoch of asr_pretrain_sp.yaml at learning rate 1e-9: the model stays random, so it predicts plenty
    of pieces to compare."""
    run = tmp_path_factory.mktemp("sp") / "run"
    assert main([str(RECIPES / "asr_pretrain_sp.yaml"), *tiny, *demo_overrides, "optim.lrs.audio_encoder=1e-9",
                 "--output-dir", str(run)]) == 0
    return run


def test_run_saves_the_model_trained_on_the_transcripts_and_scores_characters(sp_run, demo_dir):
    best = sp_run / "best"
    assert (best / "units.model").is_file() and not (best / "vocab.json").exists()
    transcripts = [u.sentence for u in read_cnerta(demo_dir / "train.jsonl", None)]
    again = SentencePieceUnits.train(transcripts, "unigram", 5000)
    assert again.proto == (best / "units.model").read_bytes()  # deterministic: a resumed run rebuilds it
    lines = read_jsonl(sp_run / "test_predictions.jsonl")
    assert any(x["prediction"] for x in lines)
    errors = sum(levenshtein(x["sentence"], x["prediction"]) for x in lines)
    metrics = json.loads((sp_run / "metrics.json").read_text())["test"]
    assert metrics["errors"] == errors and metrics["chars"] == sum(len(x["sentence"]) for x in lines)


SCRIPT = """
import json, sys
import snlu
from snlu.cli import predict
model_dir, data, wav_dir, out = sys.argv[1:]
assert predict.main([model_dir, "--data", data, "--audio-dir", wav_dir, "--output", out, "--device", "cpu"]) == 0
wavs = [f"{wav_dir}/{json.loads(x)['audio'][0]}.wav" for x in open(data, encoding="utf-8")]
print(json.dumps(snlu.load(model_dir, device="cpu").predict_batch(wavs, batch_size=3), ensure_ascii=False))
"""


def test_best_reloads_in_a_new_process_without_the_training_data(sp_run, demo_dir, tmp_path):
    model = Path(shutil.copytree(sp_run / "best", tmp_path / "model"))
    cfg = OmegaConf.load(model / "config.yaml")
    for split in ("train", "dev", "test"):
        cfg.data[split] = f"{tmp_path}/nowhere/{split}.jsonl"
    OmegaConf.save(cfg, model / "config.yaml")
    data = tmp_path / "in.jsonl"
    shutil.copy(demo_dir / "test.jsonl", data)
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # this checkout's snlu
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(model), str(data), str(demo_dir / "wav"), str(out)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    expected = [x["prediction"] for x in read_jsonl(sp_run / "test_predictions.jsonl")]
    assert [x["prediction"] for x in read_jsonl(out)] == expected
    assert json.loads(r.stdout.splitlines()[-1]) == expected


def untrained(recipe: str, overrides: list[str], demo_dir: Path) -> Task:
    cfg = load_recipe(RECIPES / recipe, overrides)
    return TASKS.get(cfg.task.name).cls.from_data(cfg, read_cnerta(demo_dir / "train.jsonl", None))


def test_e2e_ner_pieces_decode_back_into_entities(tiny, demo_overrides, demo_dir, tmp_path):
    task = untrained("e2e_ner_sp.yaml", [*tiny, *demo_overrides, "task.sp_type=bpe", "task.beam_size=3"], demo_dir)
    utts = read_cnerta(demo_dir / "train.jsonl", None)
    assert isinstance(task.vocab, SentencePieceUnits) and any(u.entities for u in utts)
    targets = [task.vocab.encode(task.processor.target(u)) for u in utts]
    assert sum(map(len, targets)) < sum(len(task.processor.target(u)) for u in utts)  # pieces, not characters
    # CTC outputs that spell each target (a blank between pieces) decode, through predict, to the gold
    frames = 2 * max(map(len, targets)) + 1
    logits = torch.full((len(utts), frames, len(task.vocab)), -10.0)
    logits[:, :, 0] = 10.0
    for b, ids in enumerate(targets):
        for k, i in enumerate(ids):
            logits[b, 2 * k + 1, i], logits[b, 2 * k + 1, 0] = 10.0, -10.0
    task.forward = lambda batch: (logits, torch.full((len(utts),), frames))
    assert task.predict({}) == [(u.sentence, sorted(u.entities)) for u in utts]
    task.save(tmp_path / "best")
    again = Task.load(tmp_path / "best")
    assert again.vocab.proto == task.vocab.proto and again.markers == task.markers


def test_init_from_across_unit_kinds_copies_the_encoder_only(sp_run, tiny, demo_overrides, demo_dir, tmp_path,
                                                             snlu_log):
    source = load_file(str(sp_run / "best" / "model.safetensors"))
    task = untrained("e2e_ner.yaml", [*tiny, *demo_overrides, f"audio_encoder.init_from={sp_run}"], demo_dir)
    assert isinstance(task.vocab, CharVocab)
    assert "CTC units are char here, sentencepiece in" in snlu_log.text
    own = task.state_dict()
    encoder = [k for k in source if k.startswith(("audio_encoder.", "frontend."))]
    assert encoder and all(torch.equal(own[k], source[k]) for k in encoder)
    # the other way: a character model initialises a SentencePiece one
    task.save(tmp_path / "char")
    snlu_log.clear()
    sp = untrained("asr_pretrain_sp.yaml", [*tiny, *demo_overrides, f"audio_encoder.init_from={tmp_path / 'char'}"],
                   demo_dir)
    assert "CTC units are sentencepiece here, char in" in snlu_log.text
    mine = sp.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in task.state_dict().items()
               if k.startswith(("audio_encoder.", "frontend.")))
    assert mine["ctc_head.embedding"].shape != own["ctc_head.embedding"].shape


def test_init_from_between_character_models_still_copies_shared_rows(tiny, demo_overrides, demo_dir, tmp_path,
                                                                     snlu_log):
    torch.manual_seed(1)
    asr = untrained("asr_pretrain.yaml", [*tiny, *demo_overrides], demo_dir)
    asr.save(tmp_path / "asr")
    torch.manual_seed(2)
    e2e = untrained("e2e_ner.yaml", [*tiny, *demo_overrides, f"audio_encoder.init_from={tmp_path / 'asr'}"], demo_dir)
    shared = [c for c in asr.vocab.stoi if c in e2e.vocab.stoi]
    assert len(shared) > 10 and f"copied the CTC rows of {len(shared)} shared characters" in snlu_log.text
    for c in shared:
        assert torch.equal(e2e.ctc_head.embedding[e2e.vocab.stoi[c]], asr.ctc_head.embedding[asr.vocab.stoi[c]])
    markers = [m for pair in e2e.markers.values() for m in pair]
    assert not any(torch.equal(e2e.ctc_head.embedding[e2e.vocab.stoi[m]], row)
                   for m in markers for row in asr.ctc_head.embedding)


def test_e2e_ner_sp_recipe_trains_and_reloads(tmp_path, tiny, demo_overrides, demo_dir):
    run = tmp_path / "run"
    assert main([str(RECIPES / "e2e_ner_sp.yaml"), *tiny, *demo_overrides, "optim.lrs.audio_encoder=1e-9",
                 "--output-dir", str(run)]) == 0
    assert {"f1", "cer"} <= set(json.loads((run / "metrics.json").read_text())["test"])
    task = Task.load(run)
    assert isinstance(task.vocab, SentencePieceUnits) and all(task.vocab.single(m) for p in task.markers.values()
                                                                 for m in p)
    lines = read_jsonl(run / "test_predictions.jsonl")
    test = read_cnerta(demo_dir / "test.jsonl", AudioIndex(demo_dir / "wav"))
    again = predict_utterances(task, test, 2, "cpu", progress=False)
    assert [text for text, _ in again] == [x["prediction"] for x in lines] and any(x["prediction"] for x in lines)


def test_missing_or_broken_units_model_is_one_line(sp_run, tmp_path):
    model = Path(shutil.copytree(sp_run / "best", tmp_path / "best"))
    (model / "units.model").write_bytes(b"not a model")
    with pytest.raises(SnluError) as e:
        Task.load(model)
    assert str(e.value).startswith(f"{model}/units.model: not a vocabulary: ") and "\n" not in str(e.value)
    (model / "units.model").unlink()
    with pytest.raises(SnluError, match=r"units\.model: not found \(.* is not a saved model"):
        Task.load(model)
