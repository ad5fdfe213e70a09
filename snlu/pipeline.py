"""Pipeline spoken NER for audio without a transcript: an ASR model transcribes, an NER model tags.

    from snlu.pipeline import transcribe_and_tag
    results = transcribe_and_tag(ner_task, asr_task, utts, batch_size=16, device="auto")
    # -> one (transcript, [(start, end, TYPE), ...]) per utterance, offsets into the transcript

The NER model may read text only (``text_ner``) or text and audio (``spoken_ner``: the same audio with the
predicted transcript). Entities lie in a predicted transcript, so they are scored by text and type
(``snlu.metrics.text_ner``), the same way as the end-to-end task ``e2e_ner``; output lines are the input
lines with ``prediction`` (the transcript) and ``entity`` (offsets into it), also as ``e2e_ner`` writes them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snlu.core.errors import SnluError
from snlu.data.markers import Span, format_prediction
from snlu.data.utterance import Utterance
from snlu.inference import predict_utterances
from snlu.metrics.text_ner import score_predictions
from snlu.tasks.base import Task

Result = tuple[str, list[Span]]  # (transcript, entities in it)


def check_models(ner: Task, asr: Task) -> None:
    """The first model must tag entities, the second transcribe."""
    if ner.cfg.task.name not in ("spoken_ner", "text_ner"):
        raise SnluError(f"pipeline: the NER model is a {ner.cfg.task.name} model, expected spoken_ner or text_ner")
    if asr.cfg.task.name != "asr":
        raise SnluError(f"pipeline: the ASR model is a {asr.cfg.task.name} model, expected asr")
    if not getattr(asr.vocab, "spells_text", True):
        raise SnluError(f"pipeline: the ASR model emits {asr.vocab.kind} units, not text: the NER model needs a "
                        f"transcript (an asr model with units char or sentencepiece)")


def tag_transcripts(ner: Task, utts: Sequence[Utterance], transcripts: Sequence[str], batch_size: int,
                    device: str = "auto", num_workers: int = 0, progress: bool = True) -> list[Result]:
    """Tag each utterance's ``transcripts[i]`` (with its audio, if the NER model reads audio)."""
    if len(utts) != len(transcripts):
        raise ValueError(f"{len(utts)} utterances but {len(transcripts)} transcripts")
    keep = [i for i, t in enumerate(transcripts) if t.strip()]  # an empty transcript has no entities to find
    inputs = [dataclasses.replace(utts[i], sentence=transcripts[i], entities=[], nested=[]) for i in keep]
    tagged = predict_utterances(ner, inputs, batch_size, device, num_workers, progress, desc="tag") if inputs else []
    spans: list[list[Span]] = [[] for _ in utts]
    for i, pred in zip(keep, tagged):
        spans[i] = [(int(s), int(e), str(t)) for s, e, t in pred]
    return list(zip(transcripts, spans))


def transcribe_and_tag(ner: Task, asr: Task, utts: Sequence[Utterance], batch_size: int, device: str = "auto",
                       num_workers: int = 0, progress: bool = True,
                       decode: Mapping[str, Any] | None = None) -> list[Result]:
    """Transcribe with ``asr`` (``decode``: its decoding options, e.g. ``{"beam_size": 4}``, instead of its own),
    then tag the transcripts with ``ner``; one result per utterance, in order."""
    check_models(ner, asr)
    transcripts = predict_utterances(asr, utts, batch_size, device, num_workers, progress, desc="transcribe",
                                     decode=decode)
    return tag_transcripts(ner, utts, transcripts, batch_size, device, num_workers, progress)


def evaluate(utts: Sequence[Utterance], results: Sequence[Result]) -> dict[str, Any]:
    """Entity text + type scores against the gold entities of ``utts``, and the transcripts' CER."""
    return score_predictions(list(utts), list(results))


def write_predictions(path: str | Path, utts: Sequence[Utterance], results: Sequence[Result]) -> None:
    """One JSON line per utterance, in input order: the input with ``prediction`` and ``entity`` set."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for utt, result in zip(utts, results):
            f.write(json.dumps(format_prediction(utt, result), ensure_ascii=False) + "\n")
