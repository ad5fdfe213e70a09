"""Text-based entity scoring (speech-only NER): text + type per utterance, as multisets."""

from __future__ import annotations

import random

import pytest

from snlu.metrics.ner import score_entities
from snlu.metrics.text_ner import entity_texts, score_entity_texts


def test_hand_computed_example():
    gold = [[("北京", "LOC"), ("易纲", "PER")], [("北京", "LOC"), ("北京", "LOC")]]
    pred = [[("北京", "LOC"), ("易刚", "PER"), ("人民银行", "ORG")],  # a misrecognised name is wrong
            [("北京", "LOC"), ("北京", "LOC"), ("北京", "LOC")]]   # said twice: found twice, the third is spurious
    s = score_entity_texts(gold, pred)
    assert (s["gold"], s["pred"], s["correct"]) == (4, 6, 3)
    assert s["precision"] == pytest.approx(3 / 6) and s["recall"] == pytest.approx(3 / 4)
    assert s["f1"] == pytest.approx(2 * 0.5 * 0.75 / 1.25)
    assert s["per_type"]["LOC"] == {"precision": 0.75, "recall": 1.0, "f1": pytest.approx(6 / 7), "support": 3}
    assert s["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert s["per_type"]["PER"]["support"] == 1 and s["per_type"]["PER"]["recall"] == 0.0


def test_type_must_match_and_offsets_do_not_matter():
    assert score_entity_texts([[("北京", "LOC")]], [[("北京", "ORG")]])["correct"] == 0
    # the same entity text at another place of the (predicted) transcript still counts
    assert entity_texts("在北京", [(1, 3, "LOC")]) == entity_texts("北京见", [(0, 2, "LOC")]) == [("北京", "LOC")]


def test_equals_span_scoring_when_every_entity_text_is_unique():
    """With the gold transcript and no repeated entity text, text matching is span matching."""
    rng = random.Random(0)
    chars = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉"
    gold_spans, pred_spans, gold_texts, pred_texts = [], [], [], []
    for _ in range(50):
        sentence = "".join(rng.sample(chars, 12))  # no repeated character: no repeated substring
        cuts = sorted(rng.sample(range(13), 6))
        spans = [(cuts[i], cuts[i + 1], rng.choice("ABC")) for i in (0, 2, 4) if cuts[i] < cuts[i + 1]]
        pred = [(s + rng.choice([0, 0, 1]), e, t if rng.random() < 0.8 else "A") for s, e, t in spans]
        pred = [(s, e, t) for s, e, t in pred if s < e]
        gold_spans.append(spans)
        pred_spans.append(pred)
        gold_texts.append(entity_texts(sentence, spans))
        pred_texts.append(entity_texts(sentence, pred))
    assert score_entity_texts(gold_texts, pred_texts) == score_entities(gold_spans, pred_spans)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="gold has 1 utterances but pred has 0"):
        score_entity_texts([[]], [])
