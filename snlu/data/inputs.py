"""The inputs of prediction: CNERTA JSON Lines (``entity`` optional) or a plain list of
``<audio_path>\\t<transcript>`` lines, and utterances made from a transcript and a file or array; the output lines.

No torch here: the eager models (snlu/inference.py) and the exported ones (snlu/export/runtime.py) read their
inputs with it. ``task`` is anything with ``uses_audio``, ``uses_text`` and ``format_prediction``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from snlu.core.errors import DataError
from snlu.data.audio import SAMPLE_RATE, as_samples, truncation
from snlu.data.cnerta import AudioIndex, read_cnerta, read_lines
from snlu.data.utterance import Utterance

log = logging.getLogger("snlu")


def make_utterance(sentence: str, audio: str | Path | np.ndarray | Any, uid: str, where: str,
                   with_audio: bool, record: dict[str, Any] | None = None,
                   allow_truncated: bool = False) -> Utterance:
    """An utterance without gold, from a transcript and an audio file or a 16 kHz mono array (float samples in
    [-1, 1], or integer PCM, scaled by its type's range). A WAV file holding fewer samples than its header
    declares is a DataError, or with ``allow_truncated`` read as it is, with a warning."""
    path, wave, duration = None, None, 0.0
    if with_audio:
        if audio is None:
            raise DataError(where, "this model needs audio", field="audio")
        if isinstance(audio, (str, Path)):
            path = str(audio)
            if not Path(path).is_file():
                raise DataError(where, f"audio file not found: {path}", field="audio")
            try:
                info = sf.info(path)
            except Exception as e:  # soundfile raises its own types for missing or unreadable files
                raise DataError(where, f"unreadable audio {path}: {str(e).splitlines()[0]}", field="audio") from None
            if info.frames == 0:
                raise DataError(where, f"empty audio {path} (0 samples)", field="audio")
            why = truncation(path, info.frames, info.samplerate)
            if why and not allow_truncated:
                raise DataError(where, f"audio {path}: {why} (--allow-truncated reads it as it is)", field="audio")
            if why:
                log.warning("%s: field 'audio': audio %s: %s: read as it is", where, path, why)
            duration = info.frames / info.samplerate
        else:
            tensor = hasattr(audio, "detach")  # a torch tensor, without importing torch
            wave = as_samples(audio.detach().cpu().numpy() if tensor else audio, where)
            if wave.ndim != 1 or wave.size == 0:
                raise DataError(where, f"expected a non-empty 1-D array of 16 kHz samples, got shape {wave.shape}",
                                field="audio")
            duration = wave.size / SAMPLE_RATE
    record = record if record is not None else {"sentence": sentence, "audio": [uid]}
    return Utterance(uid, sentence, path, duration, [], [], record, where, wave=wave)


def read_list(path: Path, task: Any, audio_dir: Path | None = None, errors: list[DataError] | None = None,
              allow_truncated: bool = False) -> list[Utterance]:
    """``<audio_path>\\t<transcript>`` lines (relative paths from ``audio_dir``, else the list's folder).

    Each becomes ``{"sentence": transcript, "audio": [<file stem>]}``; a bare ``<audio_path>`` is allowed
    for tasks that do not read the transcript (ASR). With an ``errors`` list, a bad line is appended there
    and skipped.
    """
    base = audio_dir if audio_dir is not None else path.parent
    out = []
    for n, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        audio, _, sentence = line.rstrip("\r\n").partition("\t")
        audio, sentence = audio.strip(), sentence.strip()
        try:
            if not audio:
                raise DataError(path, "empty audio path (expected <audio_path>\\t<transcript>)", n, "audio")
            if task.uses_text and not sentence:
                raise DataError(path, "missing transcript (expected <audio_path>\\t<transcript>)", n, "sentence")
            out.append(make_utterance(sentence, base / audio, Path(audio).stem, f"{path}:{n}", task.uses_audio,
                                      allow_truncated=allow_truncated))
        except DataError as e:
            if errors is None:
                raise
            errors.append(e)
    if not out and not errors:
        raise DataError(path, "no utterances (empty file)")
    return out


def read_inputs(path: str | Path, task: Any, audio_dir: str | Path | None = None,
                require_entities: bool = False, errors: list[DataError] | None = None,
                allow_truncated: bool = False) -> list[Utterance]:
    """CNERTA JSON Lines (when the first non-blank line starts with ``{``) or a ``read_list`` file.

    CNERTA audio ids resolve under ``audio_dir`` (default: the data file's folder, searched recursively).
    With an ``errors`` list, a bad line (its audio missing, unreadable, truncated ...) is appended there and
    skipped; without, it stops the reading. ``allow_truncated``: a truncated WAV is read as it is (a warning).
    """
    path = Path(path)
    audio_dir = Path(audio_dir) if audio_dir is not None else None
    first = next((line for line in read_lines(path) if line.strip()), "")
    if not first.lstrip().startswith("{"):
        if require_entities:
            raise DataError(path, "gold entities are needed: give a CNERTA JSONL file")
        return read_list(path, task, audio_dir, errors, allow_truncated)
    index = AudioIndex(audio_dir or path.parent, allow_truncated, "--allow-truncated") if task.uses_audio else None
    utts = read_cnerta(path, index, require_entities=require_entities, errors=errors)
    for where, what in index.truncated if index is not None else ():
        log.warning("%s: field 'audio': %s: read as it is", where, what)
    return utts


def write_predictions(path: str | Path, task: Any, utts: Sequence[Utterance], preds: Sequence[Any]) -> None:
    """One CNERTA-format line per utterance (``Task.format_prediction``), in input order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for utt, pred in zip(utts, preds):
            f.write(json.dumps(task.format_prediction(utt, pred), ensure_ascii=False) + "\n")
