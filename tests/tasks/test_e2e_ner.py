"""``e2e_ner``: entity markers round-trip through the CTC targets, the recipe trains, saves, reloads and
scores end to end by entity text + type on a tiny demo corpus."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from snlu.cli.predict import decode_args
from snlu.cli.train import main
from snlu.core.errors import SnluError
from snlu.data.cnerta import AudioIndex, read_cnerta
from snlu.data.markers import insert_markers, make_markers, strip_markers
from snlu.inference import predict_utterances
from snlu.metrics.cer import cer
from snlu.metrics.text_ner import score_entity_texts
from snlu.tasks.base import Task

RECIPE = Path(__file__).parents[2] / "recipes" / "e2e_ner.yaml"
M = make_markers(["PER", "LOC", "ORG"])  # sorted: LOC, ORG, PER


def test_markers_are_private_use_pairs_per_type():
    assert M == {"LOC": ("\ue000", "\ue001"), "ORG": ("\ue002", "\ue003"), "PER": ("\ue004", "\ue005")}
    assert insert_markers("在北京见易纲", [(4, 6, "PER"), (1, 3, "LOC")], M) == "在\ue000北京\ue001见\ue004易纲\ue005"


def test_insert_then_strip_round_trips():
    rng = random.Random(0)
    for _ in range(200):
        sentence = "".join(rng.choice("甲乙丙丁戊己") for _ in range(rng.randint(1, 12)))
        cuts = sorted(rng.sample(range(len(sentence) + 1), min(len(sentence) + 1, rng.choice([2, 4, 6]))))
        spans = [(cuts[i], cuts[i + 1], rng.choice(sorted(M))) for i in range(0, len(cuts) - 1, 2)
                 if cuts[i] < cuts[i + 1]]
        assert strip_markers(insert_markers(sentence, spans, M), M) == (sentence, spans)


def test_malformed_marker_sequences_drop_the_broken_pairs():
    lo, lc = M["LOC"]
    po, pc = M["PER"]
    assert strip_markers(f"{lo}北京{pc}见{po}易纲{pc}", M) == ("北京见易纲", [(3, 5, "PER")])  # wrong close type
    assert strip_markers(f"{lo}北{lo}京{lc}", M) == ("北京", [(1, 2, "LOC")])  # a second open restarts
    assert strip_markers(f"北京{lc}{lo}{lc}{po}", M) == ("北京", [])  # close alone, empty pair, open alone


def test_recipe_trains_saves_reloads_and_scores(tmp_path, tiny, demo_overrides, demo_dir):
    run = tmp_path / "run"
    assert main([str(RECIPE), *tiny, *demo_overrides, "task.beam_size=3", "--output-dir", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    assert {"precision", "recall", "f1", "per_type", "cer"} <= set(metrics)
    markers = json.loads((run / "best" / "markers.json").read_text(encoding="utf-8"))
    vocab = json.loads((run / "best" / "vocab.json").read_text(encoding="utf-8"))
    assert sorted(markers) == ["LOC", "ORG", "PER"] and all(m in vocab for pair in markers.values() for m in pair)
    # the written predictions score to metrics.json, by text + type, independently of the task's code
    test = read_cnerta(demo_dir / "test.jsonl", AudioIndex(demo_dir / "wav"))
    lines = [json.loads(x) for x in (run / "test_predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [x["audio"] for x in lines] == [u.record["audio"] for u in test]
    for x in lines:
        assert all(x["prediction"][s:e] == text for s, e, text, _ in x["entity"])
    gold = [[(u.sentence[s:e], t) for s, e, t in u.entities] for u in test]
    pred = [[(text, t) for _, _, text, t in x["entity"]] for x in lines]
    assert score_entity_texts(gold, pred) == {k: v for k, v in metrics.items() if k != "cer"}
    assert metrics["cer"] == cer([u.sentence for u in test], [x["prediction"] for x in lines])["cer"]
    # reloaded without the recipe, the model decodes the same
    task = Task.load(run)
    assert task.markers == {t: tuple(pair) for t, pair in markers.items()} and task.cfg.task.beam_size == 3
    again = predict_utterances(task, test, 2, "cpu", progress=False)
    assert [[text, [list(s) for s in spans]] for text, spans in again] == \
        [[x["prediction"], [[s, e, t] for s, e, _, t in x["entity"]]] for x in lines]
    # a decode-time marker bonus: 0 changes nothing; one that outweighs every other unit makes every frame a
    # marker, so no character (and no entity, which needs text between its markers) is left; the model's own
    # options stay as saved
    assert predict_utterances(task, test, 2, "cpu", progress=False, decode={"marker_bonus": 0.0}) == again
    assert predict_utterances(task, test, 2, "cpu", progress=False, decode={"marker_bonus": 1e4}) == \
        [("", [])] * len(test)
    assert task.cfg.task.marker_bonus == 0.0 and task.decode_settings() == {"beam_size": 3, "marker_bonus": 0.0}


def test_decoding_flags_refuse_tasks_without_the_option():
    args = SimpleNamespace(beam_size=None, marker_bonus=2.0)
    task = SimpleNamespace(cfg=OmegaConf.create({"task": {"name": "asr", "beam_size": 1}}),
                           decode_options={"beam_size": 1})
    with pytest.raises(SnluError, match=r"^--marker-bonus: task 'asr' has no decoding option marker_bonus \(its "
                                        r"options: beam_size\)$"):
        decode_args(args, task)
    assert decode_args(SimpleNamespace(beam_size=4, marker_bonus=None), task) == {"beam_size": 4}
