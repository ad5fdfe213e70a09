"""Tests for snlu.metrics.ner.score_entities (against seqeval and a brute-force count)."""

import json
import random

import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from snlu.data.labels import bio_to_spans
from snlu.metrics.ner import score_entities

TYPES = ["PER", "LOC", "ORG"]


def _random_tags(rng, n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            out.append("O")
        elif r < 0.75:
            out.append("B-" + rng.choice(TYPES))
        else:
            out.append("I-" + rng.choice(TYPES))  # often an invalid I- start
    return out


def _perturb(rng, tags):
    return [t if rng.random() < 0.7 else _random_tags(rng, 1)[0] for t in tags]


@pytest.mark.parametrize("seed", range(20))
def test_matches_seqeval_strict_iob2(seed):
    rng = random.Random(seed)
    gold_tags, pred_tags = [], []
    for _ in range(rng.randint(1, 60)):
        g = _random_tags(rng, rng.randint(0, 25))
        gold_tags.append(g)
        pred_tags.append(_perturb(rng, g))
    if not any(bio_to_spans(g) for g in gold_tags) or not any(bio_to_spans(p) for p in pred_tags):
        pytest.skip("degenerate draw")
    ours = score_entities([bio_to_spans(g) for g in gold_tags], [bio_to_spans(p) for p in pred_tags])
    kw = {"mode": "strict", "scheme": IOB2}
    assert ours["precision"] == pytest.approx(precision_score(gold_tags, pred_tags, **kw), abs=1e-9)
    assert ours["recall"] == pytest.approx(recall_score(gold_tags, pred_tags, **kw), abs=1e-9)
    assert ours["f1"] == pytest.approx(f1_score(gold_tags, pred_tags, **kw), abs=1e-9)
    report = classification_report(gold_tags, pred_tags, output_dict=True, zero_division=0, **kw)
    for key, theirs in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
        assert ours[key] == pytest.approx(report["micro avg"][theirs], abs=1e-9)
    assert ours["gold"] == report["micro avg"]["support"]
    report_types = {k for k in report if not k.endswith(" avg")}
    assert set(ours["per_type"]) == report_types
    for typ, m in ours["per_type"].items():
        for key, theirs in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert m[key] == pytest.approx(report[typ][theirs], abs=1e-9), (typ, key)
        assert m["support"] == report[typ]["support"]


def _brute(gold, pred):
    gold_items = {(i, *s) for i, spans in enumerate(gold) for s in spans}
    pred_items = {(i, *s) for i, spans in enumerate(pred) for s in spans}
    return gold_items, pred_items


def test_nested_against_brute_force():
    rng = random.Random(123)
    for _ in range(50):
        gold, pred = [], []
        for _ in range(rng.randint(1, 20)):
            n = rng.randint(1, 15)
            g = []
            for _ in range(rng.randint(0, 6)):  # nested / overlapping spans
                a = rng.randrange(n)
                g.append((a, rng.randint(a + 1, n), rng.choice(TYPES)))
            p = [s for s in g if rng.random() < 0.6]
            for _ in range(rng.randint(0, 3)):
                a = rng.randrange(n)
                p.append((a, rng.randint(a + 1, n), rng.choice(TYPES)))
            p += p[: rng.randint(0, len(p))]  # duplicates
            gold.append(g)
            pred.append(p)
        ours = score_entities(gold, pred)
        gi, pi = _brute(gold, pred)
        ok = gi & pi
        assert (ours["gold"], ours["pred"], ours["correct"]) == (len(gi), len(pi), len(ok))
        for typ in {x[3] for x in gi | pi}:
            g_t = {x for x in gi if x[3] == typ}
            p_t = {x for x in pi if x[3] == typ}
            c_t = len(g_t & p_t)
            m = ours["per_type"][typ]
            assert m["support"] == len(g_t)
            assert m["precision"] == pytest.approx(c_t / len(p_t) if p_t else 0.0, abs=1e-12)
            assert m["recall"] == pytest.approx(c_t / len(g_t) if g_t else 0.0, abs=1e-12)


def test_empty_gold_and_empty_pred():
    empty = score_entities([[], []], [[], []])
    assert empty == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "gold": 0,
        "pred": 0,
        "correct": 0,
        "per_type": {},
    }
    assert score_entities([], [])["f1"] == 0.0
    no_gold = score_entities([[]], [[(0, 2, "PER")]])
    assert (no_gold["precision"], no_gold["recall"], no_gold["pred"]) == (0.0, 0.0, 1)
    assert no_gold["per_type"]["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    no_pred = score_entities([[(0, 2, "PER"), (3, 4, "LOC")]], [[]])
    assert (no_pred["precision"], no_pred["recall"], no_pred["gold"]) == (0.0, 0.0, 2)
    assert no_pred["per_type"]["LOC"]["support"] == 1


def test_duplicates_and_exact_match():
    gold = [[(0, 2, "PER"), (3, 5, "LOC")]]
    pred = [[(0, 2, "PER"), (0, 2, "PER"), (0, 2, "PER"), (3, 5, "ORG"), (3, 4, "LOC")]]
    s = score_entities(gold, pred)
    assert (s["gold"], s["pred"], s["correct"]) == (2, 3, 1)
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == pytest.approx(0.5)
    assert s["f1"] == pytest.approx(0.4)
    assert sorted(s["per_type"]) == ["LOC", "ORG", "PER"]
    assert s["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}


def test_matched_by_position_and_json_types():
    # the same span in a different utterance is not a match
    s = score_entities([[(0, 1, "PER")], []], [[], [(0, 1, "PER")]])
    assert s["correct"] == 0
    json.dumps(s)
    assert all(type(s[k]) is float for k in ("precision", "recall", "f1"))
    assert all(type(s[k]) is int for k in ("gold", "pred", "correct"))
    with pytest.raises(ValueError):
        score_entities([[]], [[], []])


def test_bio_decoding_matches_seqeval_entities():
    from seqeval.scheme import Entities

    rng = random.Random(7)
    seqs = [_random_tags(rng, rng.randint(0, 20)) for _ in range(2000)]
    theirs = Entities(seqs, IOB2).entities
    for tags, ents in zip(seqs, theirs):
        assert bio_to_spans(tags) == [(e.start, e.end, e.tag) for e in ents], tags
