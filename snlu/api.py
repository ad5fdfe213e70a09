"""The Python API: ``snlu.load(MODEL_DIR)`` gives a model that tags utterances from audio and transcript.

    import snlu
    model = snlu.load("runs/fusion_raw_all-20250101-120000/best")
    model.predict("BAC009S0764W0121.wav", "甚至出现交易几乎停滞的情况")   # -> [[start, end, text, TYPE], ...]

    asr = snlu.load("runs/asr/best", beam_size=4)     # decoding options (Task.decode_options) for every call,
    asr.predict("BAC009S0764W0121.wav", beam_size=8)  # or for one call; the saved model is never changed

Loading reads safetensors weights and a YAML config only: nothing is unpickled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snlu.core.devices import check_device, pick_device
from snlu.core.errors import SnluError
from snlu.data.inputs import make_utterance
from snlu.data.utterance import Utterance
from snlu.inference import amp_setting, predict_utterances, warn_long
from snlu.tasks.base import Task

Audio = str | Path | np.ndarray | torch.Tensor  # a file, or 16 kHz mono samples: floats in [-1, 1] or integer PCM


class Model:
    """A trained task on a device, ready for inference, with its decoding options (``decode``: the model's own
    ``task.beam_size`` ... where not given)."""

    def __init__(self, task: Task, device: str = "auto", decode: Mapping[str, Any] | None = None,
                 amp: str | None = None):
        """``amp``: autocast for prediction (auto | off | bf16 | fp16; None: the run's ``train.amp``)."""
        check_device(device, f"device {device}")  # the message snlu-predict --device gives
        self.task = task
        self.decode = task.decode_settings(decode)  # (checked now: an unknown option fails at load)
        self.device = pick_device(device)
        self.amp = amp_setting(task, amp)
        self.task.to(self.device).eval()

    def predict(self, audio: Audio | None = None, text: str | None = None, **decode: Any) -> Any:
        """One utterance: entities as ``[start, end, text, TYPE]`` lists (NER), or the transcript (ASR);
        a task that predicts several fields gives a dict of them. Text-only models need no audio, ASR models
        no text. ``decode``: decoding options for this call (``beam_size=8``).
        """
        return self.predict_batch(None if audio is None else [audio], None if text is None else [text], **decode)[0]

    def predict_batch(self, audios: Sequence[Audio] | None = None, texts: Sequence[str] | None = None,
                      batch_size: int = 16, progress: bool = False, **decode: Any) -> list[Any]:
        """Many utterances (length-sorted batches); results in input order. ``decode``: as for ``predict``."""
        n = len(audios) if audios is not None else len(texts) if texts is not None else 0
        if (audios is not None and len(audios) != n) or (texts is not None and len(texts) != n):
            raise SnluError(f"predict_batch: {len(audios)} audios but {len(texts)} texts")
        if self.task.uses_text and texts is None:
            raise SnluError("this model reads the transcript: pass text")
        if self.task.uses_audio and audios is None:
            raise SnluError("this model reads audio: pass audio (a path or a 16 kHz float array)")
        utts = [self._utterance(audios[i] if audios is not None else None, texts[i] if texts is not None else "", i)
                for i in range(n)]
        warn_long(self.task, utts)
        preds = predict_utterances(self.task, utts, batch_size, self.device, progress=progress,
                                   decode={**self.decode, **decode}, amp=self.amp)
        return [self._result(u, p) for u, p in zip(utts, preds)]

    def _utterance(self, audio: Audio | None, text: str, i: int) -> Utterance:
        if not isinstance(text, str):
            raise SnluError(f"predict_batch item {i}: text must be a string, got {type(text).__name__}")
        path = isinstance(audio, (str, Path))
        uid = Path(audio).stem if path else f"utt{i}"
        where = f"{audio}" if path else f"predict_batch item {i}"
        return make_utterance(text, audio, uid, where, self.task.uses_audio)

    def _result(self, utt: Utterance, pred: Any) -> Any:
        """The fields the task's output line adds to the input (NER: ``entity``, ASR: ``prediction``)."""
        line = self.task.format_prediction(utt, pred)
        fields = {k: v for k, v in line.items() if k not in utt.record}
        return next(iter(fields.values())) if len(fields) == 1 else fields

    def save(self, out: str | Path) -> None:
        """Write the model as training writes ``best/`` (reload with ``snlu.load(out)``)."""
        self.task.save(Path(out))


def load(model_dir: str | Path, device: str = "auto", amp: str | None = None, **decode: Any) -> Model:
    """Load a saved model (a run's ``best/`` folder or the run directory) onto ``device`` (auto|cpu|cuda);
    ``amp``: autocast for prediction (auto | off | bf16 | fp16; None: the run's ``train.amp``, as ``snlu-predict``);
    ``decode``: decoding options instead of the model's own (asr, e2e_ner: ``beam_size``; e2e_ner:
    ``marker_bonus``), an unknown one an SnluError naming it and the task."""
    check_device(device, f"device {device}")  # before the slow part
    return Model(Task.load(model_dir), device, decode, amp)
