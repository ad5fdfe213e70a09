"""Running a trained task on utterances: the one batched, length-sorted prediction routine (the trainer's
evaluation, ``snlu-predict``, ``snlu-eval`` and ``snlu.load`` all use it).

The inputs it accepts (CNERTA JSON Lines, ``entity`` optional, or a plain list of ``<audio_path>\\t<transcript>``
lines) are read by snlu/data/inputs.py, torch-free, as exported models read them too; imported here as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from tqdm import tqdm

from snlu.core.devices import pick_device, to_device
from snlu.data.cnerta import Utterance
from snlu.data.inputs import make_utterance, read_inputs, read_list, write_predictions  # noqa: F401 (re-exported)
from snlu.tasks.base import Task
from snlu.training.batching import make_loader


@torch.no_grad()
def predict_utterances(task: Task, utts: Sequence[Utterance], batch_size: int, device: str | torch.device,
                       num_workers: int = 0, progress: bool = True, desc: str = "predict") -> list[Any]:
    """One prediction per utterance, in the order of ``utts``; batches are length-sorted (little padding)."""
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
            preds.extend(task.predict(to_device(batch, device)))
            bar.update(len(batch["utts"]))
    restored: list[Any] = [None] * len(inputs)
    for i, p in zip(order, preds):
        restored[i] = p
    return restored
