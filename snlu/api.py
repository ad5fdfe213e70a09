"""The Python API: ``snlu.load(MODEL_DIR)`` gives a model that tags utterances from audio and transcript.

    import snlu
    model = snlu.load("runs/fusion_raw_all-20250101-120000/best")
    model.predict("BAC009S0764W0121.wav", "甚至出现交易几乎停滞的情况")   # -> [[start, end, text, TYPE], ...]

Loading reads safetensors weights and a YAML config only: nothing is unpickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snlu.core.devices import pick_device
from snlu.core.errors import SnluError
from snlu.data.cnerta import Utterance
from snlu.export.manifest import is_exported
from snlu.export.runtime import load_exported
from snlu.inference import make_utterance, predict_utterances
from snlu.tasks.base import Task

Audio = str | Path | np.ndarray | torch.Tensor  # a file, or 16 kHz mono float samples in [-1, 1]


class Model:
    """A trained task on a device, ready for inference."""

    def __init__(self, task: Task, device: str = "auto"):
        self.task = task
        self.device = pick_device(device)
        self.task.to(self.device).eval()

    def predict(self, audio: Audio | None = None, text: str | None = None) -> Any:
        """One utterance: entities as ``[start, end, text, TYPE]`` lists (NER), or the transcript (ASR);
        a task that predicts several fields gives a dict of them. Text-only models need no audio, ASR models
        no text.
        """
        return self.predict_batch(None if audio is None else [audio], None if text is None else [text])[0]

    def predict_batch(self, audios: Sequence[Audio] | None = None, texts: Sequence[str] | None = None,
                      batch_size: int = 16, progress: bool = False) -> list[Any]:
        """Many utterances (length-sorted batches); results in input order."""
        n = len(audios) if audios is not None else len(texts) if texts is not None else 0
        if (audios is not None and len(audios) != n) or (texts is not None and len(texts) != n):
            raise SnluError(f"predict_batch: {len(audios)} audios but {len(texts)} texts")
        if self.task.uses_text and texts is None:
            raise SnluError("this model reads the transcript: pass text")
        if self.task.uses_audio and audios is None:
            raise SnluError("this model reads audio: pass audio (a path or a 16 kHz float array)")
        utts = [self._utterance(audios[i] if audios is not None else None, texts[i] if texts is not None else "", i)
                for i in range(n)]
        preds = predict_utterances(self.task, utts, batch_size, self.device, progress=progress)
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


def load(model_dir: str | Path, device: str = "auto") -> Model:
    """Load a saved model (a run's ``best/`` folder or the run directory) onto ``device`` (auto|cpu|cuda); an
    exported folder (snlu-export's) runs through onnxruntime (snlu/export/runtime.py)."""
    if is_exported(model_dir):
        return load_exported(model_dir, device)
    return Model(Task.load(model_dir), device)
