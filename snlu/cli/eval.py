"""``snlu-eval MODEL_DIR --data IN.jsonl [--output-dir DIR] [--alignment]``: predict, score and analyse the errors.

Writes into DIR (default ``runs/eval-<data>-<timestamp>``): ``metrics.json`` (what training reports for a
split), ``predictions.jsonl``, and for NER models ``errors.jsonl`` (every wrong type, boundary error, missed
and spurious span, with its line), ``analysis.json`` (those counts per type and the type confusion matrix)
and ``analysis.png`` (per-type F1 bars and the confusion heat map). ``--alignment`` (models with a CTC head,
data whose lines have espeak ``timings``) also writes ``alignment.json``: how far the CTC forced alignment
starts each character from espeak's timing (mean, median, 90th percentile in ms; snlu/metrics/alignment.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from snlu.analysis import write_analysis
from snlu.cli import exported
from snlu.cli.common import run_main
from snlu.cli.exported import exported_model_in
from snlu.cli.predict import add_model_args, finish, load_and_predict
from snlu.cli.score import format_table
from snlu.core.devices import pick_device
from snlu.core.errors import SnluError
from snlu.core.logs import setup_logging
from snlu.data.inputs import write_predictions
from snlu.data.utterance import Utterance
from snlu.metrics import alignment
from snlu.rundir import make_run_dir
from snlu.tasks.base import Task
from snlu.tasks.ner import NERTask

log = logging.getLogger("snlu")


def main(argv: list[str] | None = None) -> int:
    if exported_model_in(sys.argv[1:] if argv is None else argv):  # snlu-export's folder: onnxruntime, no torch
        return exported.eval_main(argv)
    p = argparse.ArgumentParser(prog="snlu-eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--output-dir", help="where to write (must be empty; default runs/eval-<data>-<timestamp>)")
    p.add_argument("--alignment", action="store_true",
                   help="also measure the CTC alignment against the lines' espeak timings (alignment.json)")
    args = p.parse_args(argv)
    setup_logging()
    out = make_run_dir(args.output_dir, f"eval-{Path(args.data).stem}")  # first: refuse a non-empty folder early

    def check_alignment(task: Task, utts: list[Utterance]) -> None:
        alignment.check_model(task, args.model_dir)
        timed = [alignment.check_timings(u) for u in utts if "timings" in u.record]
        if not timed:
            raise SnluError(f"{args.data}: --alignment: no line has 'timings' (espeak's [char_start, char_end, "
                            "start_ms, end_ms]; snlu-prepare demo and demo-asr write them)")

    task, utts, preds, failures = load_and_predict(args, require_entities=True,
                                                   check=check_alignment if args.alignment else None)
    metrics = task.evaluate(utts, preds)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False), encoding="utf-8")
    write_predictions(out / "predictions.jsonl", task, utts, preds)
    if isinstance(task, NERTask):
        model = Path(args.model_dir).resolve()
        name = model.parent.name if model.name == "best" else model.name
        write_analysis(out, utts, preds, metrics, f"{name} on {Path(args.data).name}")
        print(format_table(metrics))
    else:
        print(json.dumps(metrics, ensure_ascii=False))
    if args.alignment:
        quality = alignment.alignment_quality(task, utts, args.batch_size, pick_device(args.device))
        (out / "alignment.json").write_text(json.dumps(quality, indent=1), encoding="utf-8")
        print(alignment.describe(quality))
    log.info("wrote %s", out)
    if failures:
        log.warning("the metrics cover the %d utterances read, not the %d skipped", len(utts), len(failures))
    return finish(failures, len(utts))


def entry() -> None:
    run_main(main)
