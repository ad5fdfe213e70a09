"""``snlu-score --gold GOLD.jsonl --pred PRED.jsonl [--nested] [--json]``: entity-level exact-match scores.

Both files are CNERTA JSON Lines, paired line by line (blank lines skipped); the sentences must agree.
Flat mode (the default) scores the outermost spans, the policy training uses; ``--nested`` scores every span.

``--transcripts``: speech-only NER output (``snlu-predict NER --asr-model ASR``, ``e2e_ner``), where each line's
entities index into its ``prediction`` (the transcript) and not its sentence: an entity is right when its text
and type match a gold entity of the line (as ``e2e_ner``'s own metric), and the transcripts' CER is reported.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from snlu.cli.common import run_main
from snlu.core.errors import DataError
from snlu.data.cnerta import read_cnerta, read_lines
from snlu.data.markers import Span
from snlu.data.utterance import Utterance
from snlu.metrics.ner import score_entities
from snlu.metrics.text_ner import score_predictions


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snlu-score", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gold", required=True, help="reference CNERTA JSONL")
    p.add_argument("--pred", required=True, help="system output: CNERTA JSONL, the same sentences in the same order")
    p.add_argument("--nested", action="store_true", help="score every span (default: the outermost spans)")
    p.add_argument("--transcripts", action="store_true",
                   help="the entities index into each line's 'prediction' transcript (speech-only NER): scored by "
                        "(text, type), with the transcripts' CER")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def paired(gold_path: Path, pred_path: Path) -> tuple[list[Utterance], list[Utterance]]:
    """Read both files (no audio) and check that they hold the same sentences in the same order."""
    gold, pred = read_cnerta(gold_path, None), read_cnerta(pred_path, None)
    for g, p in zip(gold, pred):
        if g.sentence != p.sentence:
            raise DataError(p.where, f"'{p.sentence}' differs from the gold sentence '{g.sentence}' at {g.where} "
                            "(lines are paired in order)", field="sentence")
    if len(gold) != len(pred):
        longer, shorter = (gold, pred) if len(gold) > len(pred) else (pred, gold)
        raise DataError(pred_path, f"{len(pred)} utterances but the gold has {len(gold)}: "
                        f"{longer[len(shorter)].where} has no counterpart")
    return gold, pred


def transcribed(gold_path: Path, pred_path: Path) -> tuple[list[Utterance], list[tuple[str, list[Span]]]]:
    """The gold, and (transcript, entity spans into it) of each output line, paired in order."""
    gold = read_cnerta(gold_path, None)
    preds = []
    for n, line in enumerate(read_lines(pred_path), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not isinstance(record.get("prediction"), str):
            raise DataError(pred_path, "no 'prediction' transcript (--transcripts scores speech-only NER output)", n,
                            "prediction")
        text = record["prediction"]
        try:
            preds.append((text, [(int(e[0]), int(e[1]), str(e[-1])) for e in record.get("entity") or []]))
        except (TypeError, ValueError, IndexError):
            raise DataError(pred_path, "expected [start, end, text, TYPE] entities", n, "entity") from None
    if len(gold) != len(preds):
        raise DataError(pred_path, f"{len(preds)} utterances but the gold has {len(gold)} (lines are paired in order)")
    return gold, preds


def format_table(scores: dict[str, Any]) -> str:
    """Per-type and micro precision/recall/F1 as an aligned text table."""
    rows = [f"{'type':<10} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
    for typ, m in scores["per_type"].items():
        rows.append(f"{typ:<10} {m['precision']:>9.4f} {m['recall']:>9.4f} {m['f1']:>9.4f} {m['support']:>8}")
    rows.append(f"{'micro':<10} {scores['precision']:>9.4f} {scores['recall']:>9.4f} {scores['f1']:>9.4f} "
                f"{scores['gold']:>8}")
    rows.append(f"gold {scores['gold']}, predicted {scores['pred']}, correct {scores['correct']}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.transcripts:
        gold, preds = transcribed(Path(args.gold), Path(args.pred))
        scores = score_predictions(gold, preds)
        table = format_table(scores) + f"\ntranscript CER {scores['cer']:.4f}"
        print(json.dumps(scores, ensure_ascii=False) if args.json else table)
        return 0
    gold, pred = paired(Path(args.gold), Path(args.pred))
    spans = (lambda u: u.nested) if args.nested else (lambda u: u.entities)
    scores = score_entities([spans(u) for u in gold], [spans(u) for u in pred])
    print(json.dumps(scores, ensure_ascii=False) if args.json else format_table(scores))
    return 0


def entry() -> None:
    run_main(main)
