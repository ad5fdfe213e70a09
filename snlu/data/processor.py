"""Data processors: what turns utterances into tensors and tensors into batches.

A task's processor holds what preparing data needs (the output units, the labels, the text tokenizer, a frontend
that computes features) and no model weights. It is the one part of a task that data-loader workers get: they
prepare utterances (``prepare``, reading audio and computing features there), the loader batches them
(``collate``), and the batch sampler sorts by ``length``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from snlu.core.errors import DataError
from snlu.core.tensors import pad
from snlu.data.audio import read_wav
from snlu.data.units import Units
from snlu.data.utterance import Utterance

MIN_FRAMES = 7  # the Conv2d 4x subsampling needs 7 frames (~85 ms) for one output frame


class Processor:
    """Base of every task's processor: ``prepare`` one utterance, ``collate`` a batch of prepared ones, and the
    ``length`` that length-bucketed batching sorts by (seconds of audio, else characters)."""

    aux_units: Units | None = None  # the auxiliary CTC's units (``ctc_head.aux``): the task sets them

    def __init__(self, vocab: Units, uses_audio: bool = True):
        self.vocab = vocab
        self.uses_audio = uses_audio

    def aux_targets(self, utt: Utterance) -> dict[str, Tensor]:
        """``aux_ids``: the transcript in the auxiliary CTC's units (nothing without ``ctc_head.aux``)."""
        if self.aux_units is None:
            return {}
        return {"aux_ids": torch.tensor(self.aux_units.encode(utt.sentence), dtype=torch.long)}

    def aux_collate(self, items: list[dict[str, Any]]) -> dict[str, Tensor]:
        """``aux_ids`` (B, L) padded and ``aux_lengths`` (B,) of prepared items (nothing without them)."""
        if self.aux_units is None:
            return {}
        return {"aux_ids": pad([it["aux_ids"] for it in items], self.aux_units.pad_id),
                "aux_lengths": torch.tensor([len(it["aux_ids"]) for it in items])}

    def prepare(self, utt: Utterance) -> dict[str, Any]:
        """One utterance -> tensors (runs in data-loader workers)."""
        raise NotImplementedError

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Prepared utterances -> one padded batch (with ``utts``, the utterances themselves)."""
        raise NotImplementedError

    def length(self, utt: Utterance) -> float:
        """Sort key for length-bucketed batching."""
        return utt.duration if self.uses_audio else len(utt.sentence)


class AudioFeatures:
    """The features of an utterance's audio by a frontend's ``featurize`` (on the CPU, in the workers): read
    from the dataset's feature cache when it has one, else computed from the in-memory wave or the audio file.

    The frontend here only computes features; the model's own frontend normalises and augments them. An audio
    encoder may say what the cache holds instead (``data_features(frontend)``: a frozen pretrained encoder's own
    outputs, or None when the frontend's features are not worth caching, as samples) and the fewest frames an
    utterance needs."""

    def __init__(self, frontend: Any, encoder: Any = None):
        self.frontend = frontend
        spec = getattr(encoder, "data_features", None)
        self.cached, self.min_frames = spec(frontend) if spec else (frontend, MIN_FRAMES)

    def from_cache(self, utt: Utterance) -> bool:
        return utt.features is not None and utt.wave is None and self.cached is not None

    def features(self, utt: Utterance) -> tuple[Tensor, int]:
        """(T, F) features of the utterance and its number of samples."""
        if self.from_cache(utt):
            return utt.features.load(utt, self.cached)
        wave = utt.wave if utt.wave is not None else read_wav(utt.audio)
        if self.frontend.num_frames(len(wave)) == 0:  # shorter than one window: no frames
            return torch.zeros(0, self.frontend.dim), len(wave)
        return self.frontend.featurize(wave), len(wave)

    def prepare(self, utt: Utterance) -> Tensor:
        """(T, F) features; an utterance too short for the encoder is a DataError naming its line."""
        feats, samples = self.features(utt)
        if feats.shape[0] < (getattr(self.cached, "min_frames", self.min_frames) if self.from_cache(utt)
                             else self.min_frames):
            raise DataError(utt.where, f"audio {utt.audio or '(array)'} has {samples} samples: too short for the "
                            f"encoder (truncated file?)", field="audio")
        return feats

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Tensor]:
        """``feats`` (B, T, F) zero-padded and ``feat_lengths`` (B,) of prepared items."""
        return {"feats": pad([it["feats"] for it in items]),
                "feat_lengths": torch.tensor([len(it["feats"]) for it in items])}
