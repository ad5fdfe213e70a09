"""``snlu-predict`` and ``snlu-eval`` on an exported folder (snlu-export's): onnxruntime, numpy and the tokenizer,
no torch. The console scripts (snlu/cli/entry.py) send a model folder with ``export.json`` here, any other to
the eager command (snlu/cli/predict.py, snlu/cli/eval.py).

The options are the eager commands' that apply to an exported model (``--device``, ``--beam-size``,
``--marker-bonus``, ...), and ``--threads`` (onnxruntime's intra-op threads).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from snlu.core.errors import SnluError
from snlu.core.logs import setup_logging
from snlu.export.manifest import is_exported

log = logging.getLogger("snlu")


def exported_model_in(argv: list[str]) -> bool:
    """Whether the command line names an exported folder as its model (the first word that is not an option
    or an option's value)."""
    takes_value = {"--data", "--audio-dir", "--batch-size", "--device", "--num-workers", "--beam-size",
                   "--marker-bonus", "--output", "--output-dir", "--asr-model", "--threads", "--amp"}
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in takes_value:
            skip = True
        elif not word.startswith("-"):
            return is_exported(word)
    return False


def parser(prog: str, doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="an exported folder (snlu-export)")
    p.add_argument("--data", required=True, help="input utterances")
    p.add_argument("--audio-dir", help="where audio ids (or relative list paths) resolve; default: the data's folder")
    p.add_argument("--batch-size", type=int, default=16, help="utterances per batch (default 16)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="onnxruntime's provider (default: CUDA when this onnxruntime has it)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: its own choice)")
    p.add_argument("--beam-size", type=int, metavar="N",
                   help="CTC decoding of asr/e2e_ner models: 1 best path, N > 1 prefix beam search (default: the "
                        "exported task.beam_size)")
    p.add_argument("--marker-bonus", type=float, metavar="B",
                   help="e2e_ner models: add B to the entity markers' logits before decoding (default: the "
                        "exported task.marker_bonus)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def load_and_predict(args: argparse.Namespace, require_entities: bool = False):
    """The exported task, the inputs and their predictions."""
    from snlu.data.inputs import read_inputs
    from snlu.export.runtime import load_task

    if args.batch_size < 1 or (args.threads is not None and args.threads < 1):
        raise SnluError("--batch-size and --threads must be >= 1")
    task = load_task(args.model_dir, args.device, args.threads, args.beam_size, args.marker_bonus)
    utts = read_inputs(args.data, task, args.audio_dir, require_entities=require_entities)
    started = time.perf_counter()
    preds = task.predict_utterances(utts, args.batch_size, progress=True)
    log.info("%d utterances predicted in %.1f s (exported, %s)", len(utts), time.perf_counter() - started,
             task.graph.device)
    return task, utts, preds


def predict_main(argv: list[str] | None = None) -> int:
    """``snlu-predict EXPORTED --data IN --output OUT.jsonl``."""
    p = parser("snlu-predict", __doc__)
    p.add_argument("--output", required=True, help="output CNERTA JSONL")
    args = p.parse_args(argv)
    setup_logging()
    from snlu.data.inputs import write_predictions

    task, utts, preds = load_and_predict(args)
    write_predictions(Path(args.output), task, utts, preds)
    log.info("wrote %s", args.output)
    return 0


def eval_main(argv: list[str] | None = None) -> int:
    """``snlu-eval EXPORTED --data IN.jsonl [--output-dir DIR]``: what the eager snlu-eval writes."""
    p = parser("snlu-eval", __doc__)
    p.add_argument("--output-dir", help="where to write (must be empty; default runs/eval-<data>-<timestamp>)")
    args = p.parse_args(argv)
    setup_logging()
    from snlu.analysis import write_analysis
    from snlu.cli.score import format_table
    from snlu.data.inputs import write_predictions
    from snlu.rundir import make_run_dir

    out = make_run_dir(args.output_dir, f"eval-{Path(args.data).stem}")  # first: refuse a non-empty folder early
    task, utts, preds = load_and_predict(args, require_entities=True)
    metrics = task.evaluate(utts, preds)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False), encoding="utf-8")
    write_predictions(out / "predictions.jsonl", task, utts, preds)
    if task.decoder == "crf":
        model = Path(args.model_dir).resolve()
        write_analysis(out, utts, preds, metrics, f"{model.parent.name}/{model.name} on {Path(args.data).name}")
        print(format_table(metrics))
    else:
        print(json.dumps(metrics, ensure_ascii=False))
    log.info("wrote %s", out)
    return 0
