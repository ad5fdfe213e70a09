"""Running a trained task on utterances: the one batched, length-sorted prediction routine (the trainer's
evaluation, ``snlu-predict``, ``snlu-eval``, ``snlu.load`` and ``snlu-bench`` all use it), and the inputs it accepts.

Inputs are CNERTA JSON Lines (``entity`` optional) or a plain list of ``<audio_path>\\t<transcript>`` lines.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from snlu.core.devices import amp_dtype, pick_device, to_device
from snlu.core.errors import DataError, SnluError
from snlu.core.frames import frames_seconds
from snlu.data.audio import SAMPLE_RATE, as_samples, truncation
from snlu.data.batching import make_loader
from snlu.data.cnerta import AudioIndex, read_cnerta, read_lines
from snlu.data.processor import Processor
from snlu.data.utterance import Utterance
from snlu.tasks.base import Task

log = logging.getLogger("snlu")


AMP_CHOICES = ("auto", "off", "bf16", "fp16")
FAILED = "failed"  # the key of a prepared item whose utterance could not be prepared


class SkipFailed(Processor):
    """A task's processor whose utterances that cannot be prepared (a DataError: audio unreadable or too short)
    are left out of their batch and listed in it (``failed``: position in the batch, reason), so that one bad
    file does not stop a whole prediction job."""

    def __init__(self, inner: Processor):
        super().__init__(inner.vocab, inner.uses_audio)
        self.inner = inner

    def prepare(self, utt: Utterance) -> dict[str, Any]:
        try:
            return self.inner.prepare(utt)
        except DataError as e:
            return {"utt": utt, FAILED: str(e)}

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        good = [it for it in items if FAILED not in it]
        batch = self.inner.collate(good) if good else {"utts": []}
        batch[FAILED] = [(k, it[FAILED]) for k, it in enumerate(items) if FAILED in it]
        return batch

    def length(self, utt: Utterance) -> float:
        return self.inner.length(utt)


def amp_setting(task: Task, amp: str | None) -> str:
    """The autocast setting predictions run under: ``amp``, else the run's ``train.amp`` (the precision its dev
    evaluation used)."""
    setting = amp if amp is not None else str(task.cfg.get("train", {}).get("amp", "off"))
    setting = "off" if setting in ("False", "false") else setting  # (YAML 1.1 reads an unquoted off as false)
    if setting not in AMP_CHOICES:
        raise SnluError(f"amp: expected one of {', '.join(AMP_CHOICES)}, got '{setting}'")
    return setting


@torch.no_grad()
def predict_utterances(task: Task, utts: Sequence[Utterance], batch_size: int, device: str | torch.device,
                       num_workers: int = 0, progress: bool = True, desc: str = "predict",
                       decode: Mapping[str, Any] | None = None, amp: str | None = None,
                       failed: dict[int, str] | None = None) -> list[Any]:
    """One prediction per utterance, in the order of ``utts``; batches are length-sorted (little padding).

    The one prediction routine: the trainer's dev and test evaluation, ``snlu-predict``, ``snlu-eval``,
    ``snlu.load().predict`` and ``snlu-bench`` all run it. ``decode``: decoding options (``beam_size``...)
    instead of the model's own (``Task.decode_settings``). It runs under the autocast of ``amp``
    (auto | off | bf16 | fp16; None: the run's ``train.amp``). With a ``failed`` dict, an utterance whose audio
    cannot be prepared gets None, and its index and reason go to ``failed``; without, its DataError stops all.
    """
    options = task.decode_settings(decode)  # (first: an unknown option fails before any work)
    device = pick_device(device) if isinstance(device, str) else device
    dtype = amp_dtype(amp_setting(task, amp), device)
    task.to(device).eval()
    # The model never sees the gold: predictions cannot depend on it, and gold types the model does not
    # know (scored as missed) cannot break the label encoding in ``prepare``.
    inputs = [dataclasses.replace(u, entities=[], nested=[]) for u in utts]
    processor = task.processor if failed is None else SkipFailed(task.processor)
    loader = make_loader(inputs, processor, batch_size, bucket_size=1, shuffle=False, num_workers=num_workers)
    restored: list[Any] = [None] * len(inputs)
    with tqdm(total=len(inputs), desc=desc, unit="utt", leave=False, mininterval=1.0, disable=not progress) as bar:
        for indices, batch in zip(loader.batch_sampler.batches(), loader):
            bad = dict(batch.pop(FAILED, []))
            for k, reason in bad.items():
                failed[indices[k]] = reason
            good = [i for k, i in enumerate(indices) if k not in bad]
            if good:
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    preds = task.predict(to_device(batch, device), **options)
                for i, p in zip(good, preds):
                    restored[i] = p
            bar.update(len(indices))
    return restored


def warn_long(task: Task, utts: Sequence[Utterance]) -> None:
    """A warning for audio longer than the longest the run trained on (``data.max_frames``): it is predicted
    whole, not cut into pieces, and the model has not seen such lengths."""
    max_frames = task.cfg.get("data", {}).get("max_frames")
    if not task.uses_audio or not max_frames:
        return
    limit = frames_seconds(int(max_frames))
    long = [u for u in utts if u.duration > limit]
    if long:
        first = max(long, key=lambda u: u.duration)
        log.warning("%d utterance%s longer than the %.1f s (data.max_frames=%d) the model was trained on, "
                    "predicted whole (longest: %s, %.1f s); cut long recordings into utterances for better results",
                    len(long), "s" * (len(long) != 1), limit, max_frames, first.where, first.duration)


def make_utterance(sentence: str, audio: str | Path | np.ndarray | torch.Tensor | None, uid: str, where: str,
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
            wave = as_samples(audio.detach().cpu().numpy() if torch.is_tensor(audio) else audio, where)
            if wave.ndim != 1 or wave.size == 0:
                raise DataError(where, f"expected a non-empty 1-D array of 16 kHz samples, got shape {wave.shape}",
                                field="audio")
            duration = wave.size / SAMPLE_RATE
    record = record if record is not None else {"sentence": sentence, "audio": [uid]}
    return Utterance(uid, sentence, path, duration, [], [], record, where, wave=wave)


def read_list(path: Path, task: Task, audio_dir: Path | None = None, errors: list[DataError] | None = None,
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


def read_inputs(path: str | Path, task: Task, audio_dir: str | Path | None = None,
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


def write_predictions(path: str | Path, task: Task, utts: Sequence[Utterance], preds: Sequence[Any]) -> None:
    """One CNERTA-format line per utterance (``Task.format_prediction``), in input order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for utt, pred in zip(utts, preds):
            f.write(json.dumps(task.format_prediction(utt, pred), ensure_ascii=False) + "\n")
