"""Length-bucketed batches, sharded across data-parallel ranks, and the data loaders.

Preparation (audio decoding, features, tokenization) runs in worker processes, overlapping the model's step:
each worker gets the task's data processor (``task.processor``: no model weights), never the model. Waveform
augmentation of the training split (the recipe's ``augment``) runs there too, before the processor prepares an
utterance, with draws seeded by (seed, epoch, utterance index).
"""

from __future__ import annotations

import dataclasses
import random
import signal
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from snlu.core.frames import SAMPLE_RATE
from snlu.data.audio import read_wav
from snlu.data.processor import Processor
from snlu.data.utterance import Utterance

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]  # (16 kHz samples, generator) -> samples


class UtteranceDataset(Dataset):
    """Utterances turned into tensors by the processor's ``prepare`` (audio is read here, in the worker)."""

    def __init__(self, utts: list[Utterance], processor: Processor):
        self.utts, self.processor = utts, processor

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.processor.prepare(self.utts[i])


class AugmentedDataset(UtteranceDataset):
    """Training utterances whose samples ``augment`` changes before the processor prepares them. Item keys are
    (epoch, index) (from a ``keyed`` sampler): the draws of utterance i in epoch e come from a generator seeded
    by (seed, e, i), so they do not depend on the worker that prepares it or on where a run was resumed. The
    features are computed from the augmented samples (a feature cache cannot hold them)."""

    def __init__(self, utts: list[Utterance], processor: Processor, augment: Augment, seed: int):
        super().__init__(utts, processor)
        self.augment, self.seed = augment, seed

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:  # type: ignore[override]
        epoch, i = key
        utt = self.utts[i]
        wave = utt.wave if utt.wave is not None else read_wav(utt.audio)
        wave = self.augment(wave, np.random.default_rng([self.seed, epoch, i]))
        heard = dataclasses.replace(utt, wave=wave, features=None, duration=len(wave) / SAMPLE_RATE)
        item = self.processor.prepare(heard)
        return {k: utt if v is heard else v for k, v in item.items()}  # batches carry the utterance, not its samples


def fill(order: list[int], lengths: list[float], size: int, budget: float) -> list[list[int]]:
    """Cut length-sorted ``order`` into batches: ``size`` items each, or (``budget`` > 0) as many as keep
    items x longest item <= ``budget`` (at least one item per batch)."""
    if budget <= 0:
        return [order[i : i + size] for i in range(0, len(order), size)]
    out: list[list[int]] = []
    for i in order:
        if out and (len(out[-1]) + 1) * max(lengths[out[-1][-1]], lengths[i]) <= budget:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def shard(batch: list[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s part of a length-sorted global batch: every ``world_size``-th item (similar lengths
    on every rank, sizes differing by at most one)."""
    return batch[rank::world_size]


class BucketBatchSampler(Sampler[list[int]]):
    """Shuffle, cut into chunks of ``bucket_size`` batches, sort each chunk by length, shuffle the batches.

    Similar lengths share a batch (little padding) while the order still changes every epoch; the order is
    a function of ``seed`` and the epoch only. With ``shuffle=False`` it sorts everything by length (evaluation).

    Data-parallel training: the *global* batches (``batch_size`` x ``world_size`` items, or ``budget`` x
    ``world_size`` padded length) are the same for every world size, and rank ``r`` trains on its shard of
    each. A last global batch too small to give every rank an item joins the one before it, so every rank
    runs the same number of steps and every utterance is used exactly once per epoch.
    """

    def __init__(self, lengths: list[float], batch_size: int, bucket_size: int, shuffle: bool, seed: int = 0,
                 rank: int = 0, world_size: int = 1, budget: float = 0.0, keyed: bool = False):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        if len(lengths) < world_size:
            raise ValueError(f"{len(lengths)} utterances cannot be shared by {world_size} ranks")
        self.lengths, self.batch_size, self.bucket_size = lengths, batch_size * world_size, bucket_size
        self.budget = budget * world_size
        self.shuffle, self.seed, self.epoch, self.start = shuffle, seed, 0, 0
        self.rank, self.world_size = rank, world_size
        self.keyed = keyed  # yield (epoch, index) keys instead of indices (for AugmentedDataset)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """The batch order of ``epoch`` (a function of seed and epoch only); iteration begins at batch
        ``start`` (a resumed run skips the batches it already trained on, without preparing them)."""
        self.epoch, self.start = epoch, start

    def global_batches(self) -> list[list[int]]:
        """This epoch's batches over all ranks (each sorted by length)."""
        order = list(range(len(self.lengths)))
        if not self.shuffle:
            order.sort(key=lambda i: self.lengths[i])
            return self._merge_small(fill(order, self.lengths, self.batch_size, self.budget))
        rng = random.Random(self.seed * 1000003 + self.epoch)
        rng.shuffle(order)
        chunk = self.batch_size * self.bucket_size
        out = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=lambda i: self.lengths[i])
            out.extend(fill(part, self.lengths, self.batch_size, self.budget))
        rng.shuffle(out)
        return self._merge_small(out)

    def _merge_small(self, batches: list[list[int]]) -> list[list[int]]:
        """Merge each batch with fewer items than ranks into a neighbour (each batch kept sorted by length)."""
        out: list[list[int]] = []
        carry: list[int] = []  # a too-small first batch waits for the next one
        for b in batches:
            b = sorted(carry + b, key=lambda i: self.lengths[i]) if carry else b
            carry = []
            if len(b) >= self.world_size:
                out.append(b)
            elif out:
                out[-1] = sorted(out[-1] + b, key=lambda i: self.lengths[i])
            else:
                carry = b
        return out

    def batches(self) -> list[list[int]]:
        """This rank's batches of the epoch."""
        return [shard(b, self.rank, self.world_size) for b in self.global_batches()]

    def __iter__(self) -> Iterator[list[Any]]:
        batches = self.batches()[self.start :]
        if self.keyed:
            return iter([[(self.epoch, i) for i in b] for b in batches])
        return iter(batches)

    def __len__(self) -> int:
        return len(self.global_batches())


def padding_efficiency(batches: list[list[int]], lengths: list[float]) -> float:
    """Real length over padded length (batch size x longest item) summed over ``batches``."""
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
    return real / padded if padded else 1.0


def batch_budget(batch_frames: int, processor: Processor) -> float:
    """``train.batch_frames`` in ``processor.length`` units: seconds for audio tasks (10 ms frames), else
    characters."""
    return batch_frames / 100.0 if processor.uses_audio else float(batch_frames)


def make_loader(utts: list[Utterance], processor: Processor, batch_size: int, bucket_size: int, shuffle: bool,
                num_workers: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                budget: float = 0.0, augment: Augment | None = None) -> DataLoader:
    """Batches of ``processor.prepare``d utterances (``budget``: padded length per batch, in ``processor.length``
    units); ``augment``: change each utterance's samples first (the training split's waveform augmentation)."""
    sampler = BucketBatchSampler([processor.length(u) for u in utts], batch_size, bucket_size, shuffle, seed,
                                 rank, world_size, budget, keyed=augment is not None)
    dataset = UtteranceDataset(utts, processor) if augment is None else AugmentedDataset(utts, processor, augment, seed)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=processor.collate,
        num_workers=num_workers,
        persistent_workers=num_workers > 0 and shuffle,  # the training loader: no re-fork every epoch
        worker_init_fn=_one_thread,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=torch.cuda.is_available(),
    )


def _one_thread(_: int) -> None:
    """Workers only compute features: one thread each, so they do not fight the model for cores. Signals are the
    main process's to handle: a forked worker would otherwise run the trainer's stop handler too (and log its
    Ctrl-C message a second time); the loader ends its workers when the main process stops."""
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
