"""Running a trained task on utterances: the one batched, length-sorted prediction routine (the trainer's
evaluation, ``snlu-predict``, ``snlu-eval``, ``snlu.load`` and ``snlu-bench`` all use it).

The inputs it accepts (CNERTA JSON Lines, ``entity`` optional, or a plain list of ``<audio_path>\\t<transcript>``
lines) are read by snlu/data/inputs.py, torch-free, as exported models read them too.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tqdm import tqdm

from snlu.core.devices import amp_dtype, pick_device, to_device
from snlu.core.errors import DataError, SnluError
from snlu.core.frames import frames_seconds
from snlu.data.batching import make_loader
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


