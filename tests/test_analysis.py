"""Error analysis: the pairing of gold and predicted spans, its agreement with the scorer, the plot."""

from __future__ import annotations

import random

from snlu.analysis import KINDS, NONE, error_analysis, pair_spans, plot_analysis
from snlu.metrics.ner import score_entities

TYPES = ["PER", "LOC", "ORG"]


def test_each_kind_on_a_hand_made_utterance():
    gold = [(0, 2, "PER"), (3, 5, "LOC"), (6, 9, "ORG"), (10, 12, "LOC")]
    pred = [(0, 2, "PER"), (0, 2, "PER"), (3, 5, "ORG"), (6, 8, "ORG"), (13, 14, "PER")]
    assert sorted(pair_spans(gold, pred), key=lambda x: KINDS.index(x[0])) == [
        ("correct", (0, 2, "PER"), (0, 2, "PER")),
        ("type", (3, 5, "LOC"), (3, 5, "ORG")),
        ("boundary", (6, 9, "ORG"), (6, 8, "ORG")),
        ("missed", (10, 12, "LOC"), None),
        ("spurious", None, (13, 14, "PER")),
    ]


def test_boundary_pairs_the_largest_overlap_and_each_span_once():
    gold = [(0, 4, "LOC")]
    pred = [(0, 1, "LOC"), (1, 4, "PER")]
    assert pair_spans(gold, pred) == [("boundary", (0, 4, "LOC"), (1, 4, "PER")), ("spurious", None, (0, 1, "LOC"))]
    # an exact match wins over a same-extent type error, which wins over an overlap
    assert pair_spans([(0, 2, "PER"), (0, 2, "LOC")], [(0, 2, "LOC"), (0, 3, "ORG")]) == [
        ("correct", (0, 2, "LOC"), (0, 2, "LOC")), ("boundary", (0, 2, "PER"), (0, 3, "ORG"))]


def test_counts_and_confusion_agree_with_the_scorer_on_random_data():
    rng = random.Random(5)
    for _ in range(30):
        gold, pred = [], []
        for _ in range(rng.randint(1, 12)):
            n = rng.randint(1, 12)
            spans = [(a, rng.randint(a + 1, n), rng.choice(TYPES)) for a in (rng.randrange(n) for _ in range(4))]
            gold.append(spans[: rng.randint(0, 4)])
            pred.append([s for s in spans if rng.random() < 0.5] * rng.randint(1, 2))
        a, s = error_analysis(gold, pred), score_entities(gold, pred)
        counts, labels, matrix = a["counts"], a["confusion"]["labels"], a["confusion"]["matrix"]
        assert sum(c["correct"] for c in counts.values()) == s["correct"]
        assert sum(c["spurious"] for c in counts.values()) + sum(c["type"] + c["boundary"] + c["correct"]
                                                                  for c in counts.values()) == s["pred"]
        for typ, m in s["per_type"].items():
            c = counts[typ]
            assert c["correct"] + c["type"] + c["boundary"] + c["missed"] == m["support"]
            assert sum(matrix[labels.index(typ)]) == m["support"]  # a gold type's row: all its spans
            assert c["missed"] == matrix[labels.index(typ)][labels.index(NONE)]
            assert c["spurious"] == matrix[labels.index(NONE)][labels.index(typ)]
        n_pred_per_type = [sum(row[j] for row in matrix) for j in range(len(labels) - 1)]
        assert sum(n_pred_per_type) == s["pred"]
        assert len(a["cases"]) == sum(c[k] for c in counts.values() for k in KINDS if k != "correct")


def test_plot_writes_a_png(tmp_path):
    gold, pred = [[(0, 2, "PER"), (3, 5, "LOC")]], [[(0, 2, "PER"), (3, 5, "ORG")]]
    plot_analysis(score_entities(gold, pred), error_analysis(gold, pred), tmp_path / "a.png", "title")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
