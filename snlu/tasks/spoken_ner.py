"""``spoken_ner``: the multitask model of DESIGN.md (text CRF + audio CRF + CTC over a fused BERT/speech model).

    wav - fbank - norm - SpecAugment - AudioEncoder - H_a --+-- CTC head - L_ctc
                                                             +-- AudioTokenizer - A_tok - audio CRF - L_acrf
    text - BERT - H_t ---------------- Fusion(H_t, H_a, A_tok) - F - [H_t; F] - text CRF - L_tcrf
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor

from snlu.data.cnerta import Utterance
from snlu.data.labels import LabelSet
from snlu.data.vocab import CharVocab
from snlu.registry import (
    AUDIO_ENCODERS,
    AUDIO_FRONTENDS,
    AUDIO_TOKENIZERS,
    FUSIONS,
    HEADS,
    LOSSES,
    TASKS,
    TEXT_ENCODERS,
)
from snlu.tasks.base import lengths_mask, pad
from snlu.tasks.ner import NERTask


def follow_text_encoder(section: DictConfig, text_encoder: Any) -> DictConfig:
    """A copy of a fusion's config with ``num_heads: null`` set to the text encoder's head count."""
    section = section.copy()
    if "num_heads" in section and section.num_heads is None:
        section.num_heads = text_encoder.num_heads
    return section


@dataclasses.dataclass
class SpokenNERConfig:
    """No options: the components are configured in their own sections."""


@TASKS.register("spoken_ner", config=SpokenNERConfig)
class SpokenNERTask(NERTask):
    """Multitask spoken NER: BERT + speech encoder (CTC) + audio tokenizer + fusion + two CRFs."""

    components = {
        "text_encoder": TEXT_ENCODERS,
        "frontend": AUDIO_FRONTENDS,
        "audio_encoder": AUDIO_ENCODERS,
        "ctc_head": HEADS,
        "audio_tokenizer": AUDIO_TOKENIZERS,
        "fusion": FUSIONS,
        "text_head": HEADS,
        "audio_head": HEADS,
        "loss": LOSSES,
    }
    groups = {
        "text_encoder": "textual_encoder",
        "text_head": "textual_crf",
        "frontend": "audio_encoder",
        "audio_encoder": "audio_encoder",
        "ctc_head": "audio_encoder",
        "audio_head": "audio_crf",
        "audio_tokenizer": "fusion_layer",
        "fusion": "fusion_layer",
    }

    def __init__(self, cfg: DictConfig, vocab: CharVocab, labels: LabelSet, load_weights: bool = True):
        super().__init__(cfg, vocab, labels, load_weights)
        self.frontend = AUDIO_FRONTENDS.build(cfg.frontend)
        self.audio_encoder = AUDIO_ENCODERS.build(cfg.audio_encoder, self.frontend.dim)
        da, dt = self.audio_encoder.dim, self.text_encoder.dim
        self.ctc_head = HEADS.build(cfg.ctc_head, da, len(vocab))
        self.audio_tokenizer = AUDIO_TOKENIZERS.build(cfg.audio_tokenizer)
        self.fusion = FUSIONS.build(follow_text_encoder(cfg.fusion, self.text_encoder), dt, da,
                                    self.text_encoder.intermediate_size)
        self.text_head = HEADS.build(cfg.text_head, 2 * dt, len(labels))
        self.audio_head = HEADS.build(cfg.audio_head, da, len(labels))
        self.loss = LOSSES.build(cfg.loss)

    def prepare(self, utt: Utterance) -> dict[str, Any]:
        return {**self.prepare_text(utt), "feats": self.prepare_audio(utt)}

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().collate(items)
        batch["feats"] = pad([it["feats"] for it in items])
        batch["feat_lengths"] = torch.tensor([len(it["feats"]) for it in items])
        return batch

    def forward(self, batch: dict[str, Any], with_losses: bool) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Text-CRF features (B, P, 2 Dt), their mask, and the loss terms (when asked)."""
        text, text_mask = self.encode_text(batch)  # (B, P, Dt)
        feats = self.frontend(batch["feats"], batch["feat_lengths"])
        frames, frame_lengths = self.audio_encoder(feats, batch["feat_lengths"])  # (B, T', Da)
        ctc_logits = self.ctc_head(frames)  # (B, T', V)
        chars, char_lengths = batch["char_ids"], batch["char_lengths"]
        terms: dict[str, Tensor] = {}
        if with_losses and self.loss.active("ctc"):
            terms["ctc"] = self.ctc_head.loss(ctc_logits, frame_lengths, chars, char_lengths)
        need_audio_crf = with_losses and self.loss.active("audio_crf")
        char_tokens = None
        if self.fusion.uses_tokens or need_audio_crf:
            char_tokens = self.audio_tokenizer(frames, frame_lengths, ctc_logits, chars, char_lengths)  # (B, C, Da)
        if need_audio_crf:
            tags = batch["char_tags"]  # (the mask covers the tensor's width: a batch may be padded further)
            terms["audio_crf"] = self.audio_head.loss(char_tokens, tags, lengths_mask(char_lengths, tags.shape[1]))
        piece_tokens = batch["pool"].to(frames.dtype) @ char_tokens if char_tokens is not None else None  # (B, P, Da)
        fused = self.fusion(text, text_mask, frames, lengths_mask(frame_lengths, frames.shape[1]), piece_tokens)
        features = torch.cat([text, fused], dim=-1)
        if with_losses:
            terms["text_crf"] = self.text_head.loss(features, batch["piece_tags"], text_mask)
        return features, text_mask, terms

    def training_step(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        _, _, terms = self(batch, with_losses=True)
        return self.loss(terms), {k: v.item() for k, v in terms.items()}

    def predict(self, batch: dict[str, Any]) -> list[Any]:
        features, mask, _ = self(batch, with_losses=False)
        return self.decode(batch, features, mask)
