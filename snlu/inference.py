"""Running a trained task on utterances: the one batched, length-sorted prediction routine (the trainer's
evaluation, ``snlu-predict``, ``snlu-eval`` and ``snlu.load`` all use it), and the inputs it accepts.

Inputs are CNERTA JSON Lines (``entity`` optional) or a plain list of ``<audio_path>\\t<transcript>`` lines.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from snlu.core.devices import pick_device, to_device
from snlu.core.errors import DataError
from snlu.data.audio import SAMPLE_RATE
from snlu.data.batching import make_loader
from snlu.data.cnerta import AudioIndex, read_cnerta, read_lines
from snlu.data.utterance import Utterance
from snlu.tasks.base import Task


@torch.no_grad()
def predict_utterances(task: Task, utts: Sequence[Utterance], batch_size: int, device: str | torch.device,
                       num_workers: int = 0, progress: bool = True, desc: str = "predict",
                       decode: Mapping[str, Any] | None = None) -> list[Any]:
    """One prediction per utterance, in the order of ``utts``; batches are length-sorted (little padding).
    ``decode``: decoding options (``beam_size``...) instead of the model's own (``Task.decode_settings``)."""
    options = task.decode_settings(decode)  # (first: an unknown option fails before any work)
    device = pick_device(device) if isinstance(device, str) else device
    task.to(device).eval()
    # The model never sees the gold: predictions cannot depend on it, and gold types the model does not
    # know (scored as missed) cannot break the label encoding in ``prepare``.
    inputs = [dataclasses.replace(u, entities=[], nested=[]) for u in utts]
    loader = make_loader(inputs, task.processor, batch_size, bucket_size=1, shuffle=False, num_workers=num_workers)
    order = [i for b in loader.batch_sampler.batches() for i in b]
    preds: list[Any] = []
    with tqdm(total=len(inputs), desc=desc, unit="utt", leave=False, mininterval=1.0, disable=not progress) as bar:
        for batch in loader:
            preds.extend(task.predict(to_device(batch, device), **options))
            bar.update(len(batch["utts"]))
    restored: list[Any] = [None] * len(inputs)
    for i, p in zip(order, preds):
        restored[i] = p
    return restored


def make_utterance(sentence: str, audio: str | Path | np.ndarray | torch.Tensor | None, uid: str, where: str,
                   with_audio: bool, record: dict[str, Any] | None = None) -> Utterance:
    """An utterance without gold, from a transcript and an audio file or a 16 kHz mono float array."""
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
            duration = info.frames / info.samplerate
        else:
            wave = np.asarray(audio.detach().cpu() if torch.is_tensor(audio) else audio, dtype=np.float32)
            if wave.ndim != 1 or wave.size == 0:
                raise DataError(where, f"expected a non-empty 1-D array of 16 kHz samples, got shape {wave.shape}",
                                field="audio")
            duration = wave.size / SAMPLE_RATE
    record = record if record is not None else {"sentence": sentence, "audio": [uid]}
    return Utterance(uid, sentence, path, duration, [], [], record, where, wave=wave)


def read_list(path: Path, task: Task, audio_dir: Path | None = None) -> list[Utterance]:
    """``<audio_path>\\t<transcript>`` lines (relative paths from ``audio_dir``, else the list's folder).

    Each becomes ``{"sentence": transcript, "audio": [<file stem>]}``; a bare ``<audio_path>`` is allowed
    for tasks that do not read the transcript (ASR).
    """
    base = audio_dir if audio_dir is not None else path.parent
    out = []
    for n, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        audio, _, sentence = line.rstrip("\r\n").partition("\t")
        audio, sentence = audio.strip(), sentence.strip()
        if not audio:
            raise DataError(path, "empty audio path (expected <audio_path>\\t<transcript>)", n, "audio")
        if task.uses_text and not sentence:
            raise DataError(path, "missing transcript (expected <audio_path>\\t<transcript>)", n, "sentence")
        out.append(make_utterance(sentence, base / audio, Path(audio).stem, f"{path}:{n}", task.uses_audio))
    if not out:
        raise DataError(path, "no utterances (empty file)")
    return out


def read_inputs(path: str | Path, task: Task, audio_dir: str | Path | None = None,
                require_entities: bool = False) -> list[Utterance]:
    """CNERTA JSON Lines (when the first non-blank line starts with ``{``) or a ``read_list`` file.

    CNERTA audio ids resolve under ``audio_dir`` (default: the data file's folder, searched recursively).
    """
    path = Path(path)
    audio_dir = Path(audio_dir) if audio_dir is not None else None
    first = next((line for line in read_lines(path) if line.strip()), "")
    if not first.lstrip().startswith("{"):
        if require_entities:
            raise DataError(path, "gold entities are needed: give a CNERTA JSONL file")
        return read_list(path, task, audio_dir)
    index = AudioIndex(audio_dir or path.parent) if task.uses_audio else None
    return read_cnerta(path, index, require_entities=require_entities)


def write_predictions(path: str | Path, task: Task, utts: Sequence[Utterance], preds: Sequence[Any]) -> None:
    """One CNERTA-format line per utterance (``Task.format_prediction``), in input order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for utt, pred in zip(utts, preds):
            f.write(json.dumps(task.format_prediction(utt, pred), ensure_ascii=False) + "\n")
