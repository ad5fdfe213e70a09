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
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import open_dict

from snlu.cli import exported
from snlu.cli.common import run_main
from snlu.cli.exported import exported_model_in
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
                   help="CTC decoding of asr/e2e_ner models: 1 best path, N > 1 prefix beam search (default: the "
                        "model's task.beam_size)")
    p.add_argument("--marker-bonus", type=float, metavar="B",
                   help="e2e_ner models: add B to the entity markers' logits before decoding (default: the model's "
                        "task.marker_bonus, 0)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def set_marker_bonus(task: Task, bonus: float | None) -> None:
    """Decode an ``e2e_ner`` model with a marker insertion bonus instead of the saved ``task.marker_bonus``."""
    if bonus is None:
        return
    if task.cfg.task.name != "e2e_ner":
        raise SnluError(f"--marker-bonus: task '{task.cfg.task.name}' has no entity markers (e2e_ner has)")
    with open_dict(task.cfg.task):  # a model saved before the option has no such key
        task.cfg.task.marker_bonus = bonus


def set_beam(task: Task, beam_size: int | None, flag: str = "--beam-size") -> None:
    """Decode with ``beam_size`` instead of the saved ``task.beam_size`` (CTC-decoding tasks only)."""
    if beam_size is None:
        return
    if beam_size < 1:
        raise SnluError(f"{flag} must be >= 1, got {beam_size}")
    if "beam_size" not in task.cfg.task:
        raise SnluError(f"{flag}: task '{task.cfg.task.name}' does not decode with CTC (asr and e2e_ner do)")
    task.cfg.task.beam_size = beam_size


def check_args(args: argparse.Namespace) -> None:
    if args.batch_size < 1 or args.num_workers < 0:
        raise SnluError("--batch-size must be >= 1 and --num-workers >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SnluError("--device cuda: no CUDA device is available")


def load_and_predict(args: argparse.Namespace, require_entities: bool = False,
                     check: Callable[[Task, list], None] | None = None):
    """Load the model and the inputs, ``check`` them (before the slow part), predict; returns
    ``(task, utterances, predictions)``."""
    check_args(args)
    task = Task.load(args.model_dir)
    set_beam(task, args.beam_size)
    set_marker_bonus(task, args.marker_bonus)
    utts = read_inputs(args.data, task, args.audio_dir, require_entities=require_entities)
    if check is not None:
        check(task, utts)
    started = time.perf_counter()
    preds = predict_utterances(task, utts, args.batch_size, args.device, args.num_workers)
    log.info("%d utterances predicted in %.1f s", len(utts), time.perf_counter() - started)
    return task, utts, preds


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
    task, utts, preds = load_and_predict(args)
    write_predictions(Path(args.output), task, utts, preds)
    log.info("wrote %s", args.output)
    return 0


def predict_pipeline(args: argparse.Namespace) -> int:
    """``--asr-model``: transcribe, then tag (snlu/pipeline.py)."""
    from snlu import pipeline

    check_args(args)
    ner, asr = Task.load(args.model_dir), Task.load(args.asr_model)
    set_beam(asr, args.beam_size)
    pipeline.check_models(ner, asr)
    utts = read_inputs(args.data, asr, args.audio_dir)  # audio only: a list may hold bare audio paths
    started = time.perf_counter()
    results = pipeline.transcribe_and_tag(ner, asr, utts, args.batch_size, args.device, args.num_workers)
    log.info("%d utterances transcribed and tagged in %.1f s", len(utts), time.perf_counter() - started)
    pipeline.write_predictions(args.output, utts, results)
    log.info("wrote %s", args.output)
    return 0


def entry() -> None:
    run_main(main)
