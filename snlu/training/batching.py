"""Length-bucketed batches and the data loaders (preparation runs in worker processes)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from snlu.data.cnerta import Utterance
from snlu.tasks.base import Task


class UtteranceDataset(Dataset):
    """Utterances turned into tensors by the task's ``prepare`` (audio is read here, in the worker)."""

    def __init__(self, utts: list[Utterance], task: Task):
        self.utts, self.task = utts, task

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.task.prepare(self.utts[i])


class BucketBatchSampler(Sampler[list[int]]):
    """Shuffle, cut into chunks of ``bucket_size`` batches, sort each chunk by length, shuffle the batches.

    Similar lengths share a batch (little padding) while the order still changes every epoch.
    With ``shuffle=False`` it sorts everything by length (evaluation).
    """

    def __init__(self, lengths: list[float], batch_size: int, bucket_size: int, shuffle: bool, seed: int = 0):
        self.lengths, self.batch_size, self.bucket_size = lengths, batch_size, bucket_size
        self.shuffle, self.seed, self.epoch, self.start = shuffle, seed, 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """The batch order of ``epoch`` (a function of seed and epoch only); iteration begins at batch
        ``start`` (a resumed run skips the batches it already trained on, without preparing them)."""
        self.epoch, self.start = epoch, start

    def batches(self) -> list[list[int]]:
        order = list(range(len(self.lengths)))
        if not self.shuffle:
            order.sort(key=lambda i: self.lengths[i])
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        rng = random.Random(self.seed * 1000003 + self.epoch)
        rng.shuffle(order)
        chunk = self.batch_size * self.bucket_size
        out = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=lambda i: self.lengths[i])
            out.extend(part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size))
        rng.shuffle(out)
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches()[self.start :])

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size if not self.shuffle else len(self.batches())


def make_loader(utts: list[Utterance], task: Task, batch_size: int, bucket_size: int, shuffle: bool,
                num_workers: int, seed: int = 0) -> DataLoader:
    sampler = BucketBatchSampler([task.length(u) for u in utts], batch_size, bucket_size, shuffle, seed)
    return DataLoader(
        UtteranceDataset(utts, task),
        batch_sampler=sampler,
        collate_fn=task.collate,
        num_workers=num_workers,
        persistent_workers=num_workers > 0 and shuffle,  # the training loader: no re-fork every epoch
        worker_init_fn=_one_thread,
        generator=torch.Generator().manual_seed(seed),
    )


def _one_thread(_: int) -> None:
    """Workers only compute features: one thread each, so they do not fight the model for cores."""
    torch.set_num_threads(1)
