"""Exported models against the eager ones they came from, on the tiny demo corpus's dev and test utterances:
the scores (emissions, CTC logits) of every real position within the stated tolerance, and the same entities or
transcripts for batch 1 and for a padded batch (a batch's results are each utterance's alone)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.export.exporter import TOLERANCE, eager_scores, runtime_scores
from snlu.export.runtime import load_task
from snlu.inference import predict_utterances
from snlu.tasks.base import Task

pytestmark = pytest.mark.timeout(900)  # a session's first test trains and exports its model
EXPORTS = ["raw_all", "tokenized_all", "tokenized_dpmask", "text_graph", "asr", "asr_pt2", "e2e"]


def utterances(demo_dir, with_audio: bool):
    index = AudioIndex(demo_dir / "wav") if with_audio else None
    return [u for split in ("dev", "test") for u in read_cnerta(demo_dir / f"{split}.jsonl", index)]


@pytest.mark.parametrize("name", EXPORTS)
def test_exported_equals_eager(name, exported, demo_dir):
    run, folder = exported(name)
    task = Task.load(run).eval()
    runtime = load_task(folder, "cpu")
    utts = utterances(demo_dir, task.uses_audio)
    kind = "ner" if runtime.decoder == "crf" else "ctc"
    for batch in ([u] for u in utts), [utts]:  # each alone, then all in one padded batch
        for group in batch:
            ref, _ = eager_scores(task, group, kind)
            got, _ = runtime_scores(runtime, group)
            if runtime.manifest["decode"] == "graph":
                assert got == []  # tags only: compared below
                continue
            assert len(got) == len(ref) == len(group)
            for r, g in zip(ref, got):
                assert r.shape == g.shape
                assert np.abs(r - g).max() <= TOLERANCE * max(1.0, np.abs(r).max())
    eager = predict_utterances(task, utts, batch_size=1, device="cpu", progress=False)
    assert eager == predict_utterances(task, utts, batch_size=len(utts), device="cpu", progress=False)
    assert runtime.predict_utterances(utts, batch_size=1) == eager
    assert runtime.predict_utterances(utts, batch_size=len(utts)) == eager
    assert runtime.predict_utterances(utts, batch_size=3) == eager  # batches of mixed lengths, one of two
    assert any(eager) or kind == "ctc"  # the NER models predict spans to compare
    if kind == "ctc":
        assert any(p[0] if isinstance(p, tuple) else p for p in eager)  # non-empty transcripts to compare


def test_the_manifest_records_the_check_and_the_axes(exported):
    _, folder = exported("tokenized_dpmask")
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["verified"]["max_relative_diff"] <= TOLERANCE
    assert manifest["verified"]["batches"] == [2, 1, 3]
    assert manifest["axes"]["pieces"] == {"min": 2, "max": 510}
    assert manifest["axes"]["samples"]["min"] >= 1360
    assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "attention_mask", "waveform", "wave_lengths",
                                                       "char_ids", "char_lengths", "pool"]
    for f in ("model.onnx", "config.yaml", "tokenizer.json", "labels.json", "crf.json", "vocab.json", "cmvn.json"):
        assert (folder / f).is_file(), f


def bonus_with_entities(task, utts) -> float:
    """The smallest marker bonus (a grid of quarters) with which the tiny model's beam search emits an entity: the
    comparison then covers entities, whatever the model's few training steps made of its marker logits."""
    for bonus in np.arange(0.25, 4.01, 0.25):
        decode = {"beam_size": 4, "marker_bonus": float(bonus)}
        if any(spans for _, spans in predict_utterances(task, utts, 4, "cpu", progress=False, decode=decode)):
            return float(bonus)
    raise AssertionError("no marker bonus up to 4 makes the tiny e2e model emit an entity")


@pytest.mark.parametrize("name", ["asr", "e2e"])
def test_beam_search_and_marker_bonus_match(name, exported, demo_dir):
    run, folder = exported(name)
    task = Task.load(run).eval()
    utts = utterances(demo_dir, True)
    options = {"beam_size": 4} | ({"marker_bonus": bonus_with_entities(task, utts)} if name == "e2e" else {})
    runtime = load_task(folder, "cpu", **options)
    eager = predict_utterances(task, utts, batch_size=4, device="cpu", progress=False, decode=options)
    assert runtime.predict_utterances(utts, batch_size=4) == eager
    assert eager != predict_utterances(task, utts, batch_size=4, device="cpu", progress=False)  # options used
