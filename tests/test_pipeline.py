"""Pipeline spoken NER (ASR, then NER) on a tiny demo corpus: transcribe, tag, score by entity text + type,
the oracle-transcript case, and ``snlu-predict NER --asr-model ASR`` on a bare audio list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snlu.cli import predict
from snlu.cli.train import main
from snlu.core.errors import SnluError
from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.inference import predict_utterances
from snlu.metrics.text_ner import score_entity_texts
from snlu.pipeline import evaluate, tag_transcripts, transcribe_and_tag, write_predictions
from snlu.tasks.base import Task

RECIPES = Path(__file__).parents[1] / "recipes"


@pytest.fixture(scope="module")
def asr_run(tmp_path_factory, tiny, demo_overrides):
    run = tmp_path_factory.mktemp("asr") / "run"
    assert main([str(RECIPES / "asr_pretrain.yaml"), *tiny, *demo_overrides, "--output-dir", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def test_utts(demo_dir):
    return read_cnerta(demo_dir / "test.jsonl", AudioIndex(demo_dir / "wav"))


def test_transcribe_tag_and_score(random_run, asr_run, test_utts):
    ner, asr = Task.load(random_run), Task.load(asr_run)
    results = transcribe_and_tag(ner, asr, test_utts, batch_size=3, device="cpu", progress=False)
    transcripts = predict_utterances(asr, test_utts, 2, "cpu", progress=False)
    assert [text for text, _ in results] == transcripts
    for text, spans in results:
        assert all(0 <= s < e <= len(text) for s, e, _ in spans)
    scores = evaluate(test_utts, results)
    gold = [[(u.sentence[s:e], t) for s, e, t in u.entities] for u in test_utts]
    pred = [[(text[s:e], t) for s, e, t in spans] for text, spans in results]
    assert {k: v for k, v in scores.items() if k != "cer"} == score_entity_texts(gold, pred)
    assert scores["gold"] == sum(len(u.entities) for u in test_utts) and 0.0 <= scores["f1"] <= 1.0
    assert scores["cer"] == json.loads((asr_run / "metrics.json").read_text())["test"]["cer"]


def test_oracle_transcripts_give_the_ner_models_own_predictions(random_run, test_utts):
    """With the gold transcripts the pipeline is the NER model on gold text: same spans, and an empty
    transcript has no entities."""
    ner = Task.load(random_run)
    direct = predict_utterances(ner, test_utts, 2, "cpu", progress=False)
    assert any(direct)  # the comparison is not between empty outputs
    oracle = tag_transcripts(ner, test_utts, [u.sentence for u in test_utts], 3, "cpu", progress=False)
    assert [spans for _, spans in oracle] == [[tuple(s) for s in p] for p in direct]
    blank = tag_transcripts(ner, test_utts[:2], ["", test_utts[1].sentence], 2, "cpu", progress=False)
    assert blank == [("", []), oracle[1]]


def test_snlu_predict_with_asr_model(random_run, asr_run, test_utts, demo_dir, tmp_path):
    listing = tmp_path / "audio.list"
    listing.write_text("".join(f"wav/{u.id}.wav\n" for u in test_utts), encoding="utf-8")  # audio only
    out = tmp_path / "pred.jsonl"
    assert predict.main([str(random_run / "best"), "--asr-model", str(asr_run), "--data", str(listing),
                         "--audio-dir", str(demo_dir), "--output", str(out), "--batch-size", "3"]) == 0
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    results = transcribe_and_tag(Task.load(random_run), Task.load(asr_run), test_utts, 2, "cpu", progress=False)
    expected = tmp_path / "expected.jsonl"
    write_predictions(expected, test_utts, results)
    want = [json.loads(x) for x in expected.read_text(encoding="utf-8").splitlines()]
    assert [x["audio"] for x in lines] == [[u.id] for u in test_utts]
    assert [(x["prediction"], x["entity"]) for x in lines] == [(x["prediction"], x["entity"]) for x in want]
    with pytest.raises(SnluError, match="NER model is a asr model, expected spoken_ner or text_ner"):  # models swapped
        predict.main([str(asr_run), "--asr-model", str(random_run), "--data", str(listing), "--output", str(out)])
