"""``snlu-predict MODEL_DIR --data IN --output OUT.jsonl``: run a trained model on new utterances.

IN is CNERTA JSON Lines (``entity`` may be absent) or a list of ``<audio_path>\\t<transcript>`` lines
(relative paths from --audio-dir, else from the list's folder; ASR models accept a bare path). Each output
line is the input's JSON object with ``entity`` replaced by the predictions (ASR: ``prediction`` added);
a list line becomes ``{"sentence": transcript, "audio": [<file stem>], ...}``. Output order = input order.

``--asr-model ASR_MODEL_DIR`` (pipeline spoken NER, for audio without a transcript): transcribe with the ASR
model, then tag the transcripts with MODEL_DIR; IN may then list bare audio paths, and each output line gets
``prediction`` (the transcript) and ``entity`` (offsets into it). See snlu/pipeline.py.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from snlu.cli.common import run_main
from snlu.core.errors import SnluError
from snlu.core.logs import setup_logging
from snlu.inference import predict_utterances, read_inputs, write_predictions
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
    p.add_argument("--debug", action="store_true", help="show tracebacks")


DECODE_FLAGS = {"beam_size": "--beam-size", "marker_bonus": "--marker-bonus"}  # decoding option -> its flag


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
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SnluError("--device cuda: no CUDA device is available")


def load_and_predict(args: argparse.Namespace, require_entities: bool = False,
                     check: Callable[[Task, list], None] | None = None):
    """Load the model and the inputs, ``check`` them (before the slow part), predict; returns
    ``(task, utterances, predictions)``."""
    check_args(args)
    task = Task.load(args.model_dir)
    decode = decode_args(args, task)
    utts = read_inputs(args.data, task, args.audio_dir, require_entities=require_entities)
    if check is not None:
        check(task, utts)
    started = time.perf_counter()
    preds = predict_utterances(task, utts, args.batch_size, args.device, args.num_workers, decode=decode)
    log.info("%d utterances predicted in %.1f s", len(utts), time.perf_counter() - started)
    return task, utts, preds


def main(argv: list[str] | None = None) -> int:
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
    task, utts, preds = load_and_predict(args)
    write_predictions(Path(args.output), task, utts, preds)
    log.info("wrote %s", args.output)
    return 0


def predict_pipeline(args: argparse.Namespace) -> int:
    """``--asr-model``: transcribe, then tag (snlu/pipeline.py)."""
    from snlu import pipeline

    check_args(args)
    ner, asr = Task.load(args.model_dir), Task.load(args.asr_model)
    pipeline.check_models(ner, asr)
    decode = decode_args(args, asr)  # the flags decode the ASR model's transcripts
    utts = read_inputs(args.data, asr, args.audio_dir)  # audio only: a list may hold bare audio paths
    started = time.perf_counter()
    results = pipeline.transcribe_and_tag(ner, asr, utts, args.batch_size, args.device, args.num_workers,
                                          decode=decode)
    log.info("%d utterances transcribed and tagged in %.1f s", len(utts), time.perf_counter() - started)
    pipeline.write_predictions(args.output, utts, results)
    log.info("wrote %s", args.output)
    return 0


def entry() -> None:
    run_main(main)
