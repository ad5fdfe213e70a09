"""``text_ner``: the BERT-CRF text-only baseline (no audio)."""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig
from torch import Tensor

from snlu.data.labels import LabelSet
from snlu.data.vocab import CharVocab
from snlu.registry import HEADS, TASKS, TEXT_ENCODERS
from snlu.tasks.ner import NERTask


@dataclasses.dataclass
class TextNERConfig:
    """No options."""


@TASKS.register("text_ner", config=TextNERConfig)
class TextNERTask(NERTask):
    """BERT + linear + CRF over word pieces: the text-only baseline."""

    components = {"text_encoder": TEXT_ENCODERS, "text_head": HEADS}
    uses_audio = False

    def __init__(self, cfg: DictConfig, vocab: CharVocab, labels: LabelSet, load_weights: bool = True):
        super().__init__(cfg, vocab, labels, load_weights)
        self.text_head = HEADS.build(cfg.text_head, self.text_encoder.dim, len(labels))

    def training_step(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        states, mask = self.encode_text(batch)
        loss = self.text_head.loss(states, batch["piece_tags"], mask)
        return loss, {"text_crf": loss.item()}

    def predict(self, batch: dict[str, Any]) -> list[Any]:
        states, mask = self.encode_text(batch)
        return self.decode(batch, states, mask)
