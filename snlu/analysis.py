"""Error analysis of entity predictions: each gold and predicted span paired at most once, per utterance.

Pairing, in order: the same span (``correct``); the same extent with another type (``type``); overlapping
extents, largest overlap first (``boundary``, whatever the types); then unpaired gold spans are ``missed``
and unpaired predictions ``spurious``. ``correct`` is exactly the count ``score_entities`` calls correct.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from snlu.metrics.ner import Span

KINDS = ("correct", "type", "boundary", "missed", "spurious")
NONE = "(none)"  # the confusion matrix's row of spurious spans and column of missed ones


def pair_spans(gold: Iterable[Span], pred: Iterable[Span]) -> list[tuple[str, Span | None, Span | None]]:
    """``(kind, gold span, predicted span)`` for one utterance; duplicates count once, as in the scorer."""
    gold_left = sorted({(int(s), int(e), str(t)) for s, e, t in gold})
    pred_left = sorted({(int(s), int(e), str(t)) for s, e, t in pred})
    out: list[tuple[str, Span | None, Span | None]] = []

    def take(kind: str, candidates: list[tuple[Span, Span]]) -> None:
        for g, p in candidates:
            if g in gold_left and p in pred_left:
                gold_left.remove(g)
                pred_left.remove(p)
                out.append((kind, g, p))

    take("correct", [(g, g) for g in gold_left if g in pred_left])
    take("type", [(g, p) for g in gold_left for p in pred_left if g[:2] == p[:2]])
    overlaps = [(min(g[1], p[1]) - max(g[0], p[0]), g, p) for g in gold_left for p in pred_left]
    take("boundary", [(g, p) for n, g, p in sorted(overlaps, key=lambda x: (-x[0], x[1], x[2])) if n > 0])
    out += [("missed", g, None) for g in gold_left] + [("spurious", None, p) for p in pred_left]
    return out


def error_analysis(gold: Sequence[Iterable[Span]], pred: Sequence[Iterable[Span]]) -> dict[str, Any]:
    """Counts per type and the type confusion of paired spans, over utterances paired by position.

    Returns ``{"counts": {TYPE: {kind: n}}, "confusion": {"labels": [...], "matrix": rows}, "cases": [...]}``:
    a gold type's correct + type + boundary + missed is its support; ``spurious`` is counted under the
    predicted type. The matrix has a row per gold type and a column per predicted type (both ending with
    ``(none)``): paired spans (same or overlapping extent), missed spans in the last column, spurious ones in
    the last row. ``cases`` lists ``(utterance index, kind, gold, pred)`` for every pair but the correct ones.
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} utterances but pred has {len(pred)}")
    pairs = [(i, *pair) for i, (g, p) in enumerate(zip(gold, pred)) for pair in pair_spans(g, p)]
    types = sorted({s[2] for _, _, g, p in pairs for s in (g, p) if s is not None})
    counts = {t: dict.fromkeys(KINDS, 0) for t in types}
    labels = [*types, NONE]
    matrix = [[0] * len(labels) for _ in labels]
    for _, kind, g, p in pairs:
        counts[(g or p)[2]][kind] += 1
        matrix[labels.index(g[2] if g else NONE)][labels.index(p[2] if p else NONE)] += 1
    cases = [(i, kind, g, p) for i, kind, g, p in pairs if kind != "correct"]
    return {"counts": counts, "confusion": {"labels": labels, "matrix": matrix}, "cases": cases}


def plot_analysis(scores: dict[str, Any], analysis: dict[str, Any], out: Path, title: str = "") -> None:
    """One PNG: per-type F1 bars (and micro F1), the error kinds per type, and the confusion heat map."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot, no global backend

    fig = Figure(figsize=(12, 3.6), layout="constrained")
    bars, kinds, heat = fig.subplots(1, 3, width_ratios=[1, 1, 1.2])
    names = [*scores["per_type"], "micro"]
    f1s = [m["f1"] for m in scores["per_type"].values()] + [scores["f1"]]
    drawn = bars.bar(names, f1s, color=["tab:blue"] * (len(names) - 1) + ["tab:gray"])
    bars.bar_label(drawn, fmt="%.3f", fontsize=8)
    bars.set_ylim(0, 1.08)
    bars.set_ylabel("F1")
    bars.set_title("F1 per type (support)", fontsize=10)
    bars.set_xticks(range(len(names)),
                    [f"{t}\n({m['support']})" for t, m in scores["per_type"].items()] + [f"micro\n({scores['gold']})"])
    counts = analysis["counts"]
    left = [0] * len(counts)
    for kind in KINDS:
        values = [c[kind] for c in counts.values()]
        kinds.barh(list(counts), values, left=left, label=kind)
        left = [a + b for a, b in zip(left, values)]
    kinds.invert_yaxis()
    kinds.set_xlabel("spans")
    kinds.legend(fontsize=7, loc="lower right")
    kinds.set_title("outcome per type (spurious: predicted type)", fontsize=10)
    labels, matrix = analysis["confusion"]["labels"], analysis["confusion"]["matrix"]
    image = heat.imshow(matrix, cmap="Blues")
    peak = max((v for row in matrix for v in row), default=0)
    for r, row in enumerate(matrix):
        for c, v in enumerate(row):
            heat.text(c, r, str(v), ha="center", va="center", fontsize=8,
                      color="white" if peak and v > 0.6 * peak else "black")
    heat.set_xticks(range(len(labels)), labels, fontsize=8)
    heat.set_yticks(range(len(labels)), labels, fontsize=8)
    heat.set_xlabel("predicted")
    heat.set_ylabel("gold")
    heat.set_title("type of paired spans (same or overlapping)", fontsize=10)
    fig.colorbar(image, ax=heat, shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(out, dpi=90)


def write_analysis(out: Path, utts: Sequence[Any], preds: Sequence[Any], scores: dict[str, Any], title: str) -> None:
    """``errors.jsonl``, ``analysis.json`` and ``analysis.png`` (``snlu-eval``'s) for flat entity predictions of
    utterances (``entities``, ``sentence``, ``where``)."""
    analysis = error_analysis([u.entities for u in utts], preds)
    with open(out / "errors.jsonl", "w", encoding="utf-8") as f:
        for i, kind, gold, pred in analysis["cases"]:
            u = utts[i]
            spans = {k: [s[0], s[1], u.sentence[s[0] : s[1]], s[2]] if s else None
                     for k, s in (("gold", gold), ("pred", pred))}
            f.write(json.dumps({"where": u.where, "sentence": u.sentence, "kind": kind, **spans},
                               ensure_ascii=False) + "\n")
    summary = {k: analysis[k] for k in ("counts", "confusion")}
    (out / "analysis.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    plot_analysis(scores, analysis, out / "analysis.png", title)
