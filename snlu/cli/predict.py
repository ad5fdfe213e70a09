"""``snlu-predict MODEL_DIR --data IN --output OUT.jsonl``: run a trained model on new utterances.

IN is CNERTA JSON Lines (``entity`` may be absent) or a list of ``<audio_path>\\t<transcript>`` lines
(relative paths from --audio-dir, else from the list's folder; ASR models accept a bare path). Each output
line is the input's JSON object with ``entity`` replaced by the predictions (ASR: ``prediction`` added);
a list line becomes ``{"sentence": transcript, "audio": [<file stem>], ...}``. Output order = input order.

An input that cannot be read or prepared (audio missing, empty, unreadable, truncated or too short, a bad line)
is reported with its file, line and reason and skipped; the others are predicted, and the exit status is 3
with a count at the end. ``--strict``: the first one stops the command (one line, exit 2, nothing written).
Predictions run under the run's ``train.amp`` (``--amp`` overrides it).

``--asr-model ASR_MODEL_DIR`` (pipeline spoken NER, for audio without a transcript): transcribe with the ASR
model, then tag the transcripts with MODEL_DIR; IN may then list bare audio paths, and each output line gets
``prediction`` (the transcript) and ``entity`` (offsets into it). See snlu/pipeline.py.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from snlu.cli import exported
from snlu.cli.common import run_main
from snlu.cli.exported import exported_model_in
from snlu.core.devices import check_device
from snlu.core.errors import SnluError
from snlu.core.logs import setup_logging
from snlu.data.inputs import read_inputs, write_predictions
from snlu.inference import AMP_CHOICES, predict_utterances, warn_long
from snlu.tasks.base import Task

log = logging.getLogger("snlu")


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Arguments ``snlu-predict`` and ``snlu-eval`` share."""
    p.add_argument("model_dir", help="a run's best/ folder (or the run directory)")
    p.add_argument("--data", required=True, help="input utterances")
    p.add_argument("--audio-dir", help="where audio ids (or relative list paths) resolve; default: the data's folder")
    p.add_argument("--batch-size", type=int, default=16, help="utterances per batch (default 16)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--num-workers", type=int, default=0, help="data-loader worker processes (default 0)")
    p.add_argument("--beam-size", type=int, metavar="N",
                   help="CTC decoding of asr/e2e_ner models (with --asr-model: of the ASR model): 1 best path, N > 1 "
                        "prefix beam search (default: the model's task.beam_size)")
    p.add_argument("--marker-bonus", type=float, metavar="B",
                   help="e2e_ner models: add B to the entity markers' logits before decoding (default: the model's "
                        "task.marker_bonus, 0)")
    p.add_argument("--amp", choices=AMP_CHOICES,
                   help="autocast for prediction: auto, off, bf16, fp16 (default: the run's train.amp)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first unreadable input (exit 2); default: report it, skip it, predict the "
                        "others and exit 3")
    p.add_argument("--allow-truncated", action="store_true",
                   help="read a WAV holding fewer samples than its header declares as it is (default: an error)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


DECODE_FLAGS = {"beam_size": "--beam-size", "marker_bonus": "--marker-bonus"}  # decoding option -> its flag
SOME_FAILED = 3  # exit status when some inputs were skipped (--strict: the first one stops the command, exit 2)


def decode_args(args: argparse.Namespace, task: Task) -> dict[str, Any]:
    """The decoding options given on the command line, for ``task`` (which must have them): they replace the
    model's own for this command only; the saved model is not changed."""
    given = {k: getattr(args, k) for k in DECODE_FLAGS if getattr(args, k, None) is not None}
    for key in given:
        if key not in task.decode_options:
            raise SnluError(f"{DECODE_FLAGS[key]}: task '{task.cfg.task.name}' has no decoding option {key} (its "
                            f"options: {', '.join(task.decode_options) or 'none'})")
    return given


def check_args(args: argparse.Namespace) -> None:
    if args.batch_size < 1 or args.num_workers < 0:
        raise SnluError("--batch-size must be >= 1 and --num-workers >= 0")
    if args.beam_size is not None and args.beam_size < 1:
        raise SnluError(f"--beam-size must be >= 1, got {args.beam_size}")
    check_device(args.device, f"--device {args.device}")


def read_reported(args: argparse.Namespace, task: Task, require_entities: bool = False) -> tuple[list, list[str]]:
    """The inputs ``task`` can read, and the reasons of those it cannot (each logged; ``--strict``: the first
    one is raised instead)."""
    errors: list | None = None if args.strict else []
    utts = read_inputs(args.data, task, args.audio_dir, require_entities=require_entities, errors=errors,
                       allow_truncated=args.allow_truncated)
    failures = [str(e) for e in errors or ()]
    for failure in failures:
        log.warning("skipped %s", failure)
    if not utts:
        raise SnluError(f"{args.data}: no readable utterance ({len(failures)} skipped, listed above)")
    return utts, failures


def load_and_predict(args: argparse.Namespace, require_entities: bool = False,
                     check: Callable[[Task, list], None] | None = None):
    """Load the model and the inputs, ``check`` them (before the slow part), predict; returns
    ``(task, utterances, predictions, failures)``: the inputs that could not be read or prepared are reported
    (a warning each), left out of the utterances and predictions and listed in ``failures``; with
    ``--strict`` the first one stops the command."""
    check_args(args)
    task = Task.load(args.model_dir)
    decode = decode_args(args, task)
    utts, failures = read_reported(args, task, require_entities)
    if check is not None:
        check(task, utts)
    warn_long(task, utts)
    started = time.perf_counter()
    failed: dict[int, str] | None = None if args.strict else {}
    preds = predict_utterances(task, utts, args.batch_size, args.device, args.num_workers, decode=decode, amp=args.amp,
                               failed=failed)
    for i in sorted(failed or {}):
        log.warning("skipped %s", failed[i])
        failures.append(failed[i])
    kept = [i for i in range(len(utts)) if i not in (failed or {})]
    utts, preds = [utts[i] for i in kept], [preds[i] for i in kept]
    if not utts:
        raise SnluError(f"{args.data}: no input could be predicted ({len(failures)} skipped, listed above)")
    log.info("%d utterances predicted in %.1f s", len(utts), time.perf_counter() - started)
    return task, utts, preds, failures


def finish(failures: list[str], done: int) -> int:
    """The exit status: 0, or SOME_FAILED with a count of the inputs skipped (each reported above)."""
    if not failures:
        return 0
    log.warning("%d input%s skipped (listed above), %d predicted; exit status %d (--strict stops at the first)",
                len(failures), "s" * (len(failures) != 1), done, SOME_FAILED)
    return SOME_FAILED


def main(argv: list[str] | None = None) -> int:
    if exported_model_in(sys.argv[1:] if argv is None else argv):  # snlu-export's folder: onnxruntime, no torch
        return exported.predict_main(argv)
    p = argparse.ArgumentParser(prog="snlu-predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--output", required=True, help="output CNERTA JSONL")
    p.add_argument("--asr-model", help="transcribe with this ASR model first, then tag the transcripts (pipeline "
                   "spoken NER for audio without a transcript)")
    args = p.parse_args(argv)
    setup_logging()
    if args.asr_model:
        return predict_pipeline(args)
    task, utts, preds, failures = load_and_predict(args)
    write_predictions(Path(args.output), task, utts, preds)
    log.info("wrote %s", args.output)
    return finish(failures, len(utts))


def predict_pipeline(args: argparse.Namespace) -> int:
    """``--asr-model``: transcribe, then tag (snlu/pipeline.py)."""
    from snlu import pipeline

    check_args(args)
    ner, asr = Task.load(args.model_dir), Task.load(args.asr_model)
    pipeline.check_models(ner, asr)
    decode = decode_args(args, asr)  # the flags decode the ASR model's transcripts
    utts, failures = read_reported(args, asr)  # audio only: a list may hold bare audio paths
    started = time.perf_counter()
    results = pipeline.transcribe_and_tag(ner, asr, utts, args.batch_size, args.device, args.num_workers,
                                          decode=decode)
    log.info("%d utterances transcribed and tagged in %.1f s", len(utts), time.perf_counter() - started)
    pipeline.write_predictions(args.output, utts, results)
    log.info("wrote %s", args.output)
    return finish(failures, len(utts))


def entry() -> None:
    run_main(main)
