"""Entity scores by text, for NER from speech alone, where the transcript is predicted too.

Predicted entities lie in a predicted transcript, so their offsets mean nothing against the gold sentence.
As in the speech-only NER literature (e.g. Ghannay et al. 2018; Yadav et al. 2020; Chen et al. 2022 on
AISHELL-NER), an entity counts as correct when its text and its type equal those of a gold entity of the same
utterance. Each utterance's entities are a multiset of ``(text, TYPE)``: an entity said twice must be found
twice, and each gold entity matches at most one prediction. Micro precision/recall/F1 and per type, with
the same output keys as ``snlu.metrics.ner.score_entities``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from snlu.metrics.cer import cer
from snlu.metrics.ner import report

TextEntity = tuple[str, str]  # (text, TYPE)


def entity_texts(sentence: str, spans: Iterable[tuple[int, int, str]]) -> list[TextEntity]:
    """``(sentence[start:end], TYPE)`` for each span."""
    return [(sentence[s:e], str(t)) for s, e, t in spans]


def score_entity_texts(gold: Sequence[Iterable[TextEntity]], pred: Sequence[Iterable[TextEntity]]) -> dict:
    """Text-and-type entity scores; utterances are paired by position.

    Returns ``{"precision", "recall", "f1", "gold", "pred", "correct", "per_type": {TYPE: {"precision",
    "recall", "f1", "support"}}}`` (``support``: gold count of the type; 0/0 gives 0.0).
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} utterances but pred has {len(pred)}")
    n_gold, n_pred, n_ok = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred):
        gs = Counter((str(text), str(t)) for text, t in g)
        ps = Counter((str(text), str(t)) for text, t in p)
        for counts, total in ((gs, n_gold), (ps, n_pred), (gs & ps, n_ok)):  # &: multiset intersection
            for (_, t), n in counts.items():
                total[t] += n
    return report(n_gold, n_pred, n_ok)


def score_predictions(utts: Sequence[Any], preds: Sequence[tuple[str, Iterable[tuple[int, int, str]]]]) -> dict:
    """Entity text + type scores of (transcript, entities) predictions against the gold of ``utts`` (their
    ``sentence`` and ``entities``), and the transcript CER: what ``e2e_ner`` reports."""
    scores = score_entity_texts([entity_texts(u.sentence, u.entities) for u in utts],
                                [entity_texts(text, spans) for text, spans in preds])
    return {**scores, "cer": cer([u.sentence for u in utts], [text for text, _ in preds])["cer"]}
