"""``asr``: audio encoder + CTC over characters or SentencePiece pieces (``task.units``), scored by character
error rate of the decoded text.

Trained on an ASR corpus (AISHELL-1 for CNERTA), its frontend and audio encoder initialise a
spoken-NER recipe through ``audio_encoder.init_from: RUN_DIR``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from snlu.core.checks import positive
from snlu.core.tensors import pad
from snlu.data.cnerta import Utterance
from snlu.data.units import Units, UnitsConfig, build_units
from snlu.heads.ctc import CTCHead
from snlu.metrics.cer import cer
from snlu.registry import AUDIO_ENCODERS, AUDIO_FRONTENDS, HEADS, TASKS
from snlu.tasks.base import Task
from snlu.tasks.processor import AudioFeatures, Processor


class ASRProcessor(Processor):
    """Audio features and the target units (``target``: the transcript; ``e2e_ner`` adds entity markers)."""

    def __init__(self, vocab: Units, audio: AudioFeatures):
        super().__init__(vocab, uses_audio=True)
        self.audio = audio

    def target(self, utt: Utterance) -> str:
        """What CTC learns to emit."""
        return utt.sentence

    def prepare(self, utt: Utterance) -> dict[str, Any]:
        chars = torch.tensor(self.vocab.encode(self.target(utt)), dtype=torch.long)  # long even when empty
        return {"feats": self.audio.prepare(utt), "char_ids": chars, "utt": utt}

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            **self.audio.collate(items),
            "char_ids": pad([it["char_ids"] for it in items], self.vocab.pad_id),
            "char_lengths": torch.tensor([len(it["char_ids"]) for it in items]),
            "utts": [it["utt"] for it in items],
        }


@dataclasses.dataclass
class ASRConfig(UnitsConfig):
    """``beam_size``: 1 decodes the best path; more runs CTC prefix beam search with that beam. The output
    units: ``units`` (char | sentencepiece), ``sp_type``, ``sp_vocab_size``, ``sp_model`` (snlu.data.units)."""

    beam_size: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "beam_size")


@TASKS.register("asr", config=ASRConfig)
class ASRTask(Task):
    """Speech recognition with CTC (best path or prefix beam search), metric: character error rate."""

    components = {"frontend": AUDIO_FRONTENDS, "audio_encoder": AUDIO_ENCODERS, "ctc_head": HEADS}
    main_metric = "cer"
    higher_is_better = False
    uses_text = False

    def __init__(self, cfg: DictConfig, vocab: Units, load_weights: bool = True):
        super().__init__(cfg, vocab)
        self.frontend = AUDIO_FRONTENDS.build(cfg.frontend)
        self.audio_encoder = AUDIO_ENCODERS.build(cfg.audio_encoder, self.frontend.dim)
        self.ctc_head = HEADS.build(cfg.ctc_head, self.audio_encoder.dim, len(vocab))
        self.processor = ASRProcessor(vocab, AudioFeatures(AUDIO_FRONTENDS.build(cfg.frontend), self.audio_encoder))

    def to_compile(self) -> list[nn.Module]:
        return [self.audio_encoder]

    @classmethod
    def from_data(cls, cfg: DictConfig, train: list[Utterance]) -> ASRTask:
        """A fresh model: characters of the training transcripts, or a SentencePiece model trained on them."""
        task = cls(cfg, build_units(cfg.task, (u.sentence for u in train)))
        task.fit(train)
        return task

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        feats = self.frontend(batch["feats"], batch["feat_lengths"])
        frames, lengths = self.audio_encoder(feats, batch["feat_lengths"])
        return self.ctc_head(frames), lengths

    def training_step(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        logits, lengths = self(batch)
        loss = self.ctc_head.loss(logits, lengths, batch["char_ids"], batch["char_lengths"])
        return loss, {"ctc": loss.item()}

    def predict(self, batch: dict[str, Any]) -> list[str]:
        logits, lengths = self(batch)
        beam = self.cfg.task.get("beam_size", 1)  # models saved before the option decode greedily
        return [self.vocab.decode(ids) for ids in CTCHead.decode(logits, lengths, beam)]

    def evaluate(self, utts: list[Utterance], preds: list[str]) -> dict[str, Any]:
        return cer([u.sentence for u in utts], preds)

    def format_prediction(self, utt: Utterance, pred: str) -> dict[str, Any]:
        return {**utt.record, "prediction": pred}
