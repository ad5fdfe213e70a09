"""Entity-level precision/recall/F1: the one scoring routine used by training and ``snlu-score``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

Span = tuple[int, int, str]


def _prf(correct: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    p = correct / n_pred if n_pred else 0.0
    r = correct / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return float(p), float(r), float(f)


def _as_set(spans: Iterable[Span]) -> set[Span]:
    return {(int(s), int(e), str(t)) for s, e, t in spans}


def score_entities(gold: Sequence[Iterable[Span]], pred: Sequence[Iterable[Span]]) -> dict:
    """Exact-match entity scores; utterances are paired by position.

    Each utterance's spans ``(start, end_exclusive, TYPE)`` are a set, so duplicates count once.
    Returns ``{"precision", "recall", "f1", "gold", "pred", "correct", "per_type": {TYPE:
    {"precision", "recall", "f1", "support"}}}`` with ``support`` = gold count of the type; types
    seen in gold or pred are listed; 0/0 gives 0.0. Values are plain floats/ints.
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} utterances but pred has {len(pred)}")
    n_gold, n_pred, n_ok = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred):
        gs, ps = _as_set(g), _as_set(p)
        n_gold.update(t for _, _, t in gs)
        n_pred.update(t for _, _, t in ps)
        n_ok.update(t for _, _, t in gs & ps)
    return report(n_gold, n_pred, n_ok)


def report(n_gold: Counter, n_pred: Counter, n_ok: Counter) -> dict:
    """Micro and per-type precision/recall/F1 from per-type counts of gold, predicted and correct entities."""
    tot_g, tot_p, tot_ok = sum(n_gold.values()), sum(n_pred.values()), sum(n_ok.values())
    p, r, f = _prf(tot_ok, tot_p, tot_g)
    per_type = {}
    for typ in sorted(set(n_gold) | set(n_pred)):
        tp, tr, tf = _prf(n_ok[typ], n_pred[typ], n_gold[typ])
        per_type[typ] = {"precision": tp, "recall": tr, "f1": tf, "support": int(n_gold[typ])}
    return {"precision": p, "recall": r, "f1": f, "gold": int(tot_g), "pred": int(tot_p), "correct": int(tot_ok),
            "per_type": per_type}
