"""``spoken_ner``: the multitask model (text CRF + audio CRF + CTC over a fused BERT/speech model).

    wav - fbank - norm - SpecAugment - AudioEncoder - H_a --+-- CTC head - L_ctc
                                                             +-- AudioTokenizer - A_tok - audio CRF - L_acrf
    text - BERT - H_t ---------------- Fusion(H_t, H_a, A_tok) - F - [H_t; F] - text CRF - L_tcrf

The fusion and the audio tokenizer get the audio representations they consume (snlu/tasks/views.py: frames, CTC
logits or posteriors, the CTC forced alignment, tokens); a batch computes only those and what an active loss
needs (at inference the raw fusion runs no CTC head and no tokenizer).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from snlu.core.tensors import lengths_mask
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
from snlu.tasks.ner import NERProcessor, NERTask
from snlu.tasks.processor import AudioFeatures
from snlu.tasks.views import (
    FUSION_ARGS,
    FUSION_DEFAULT,
    TOKENIZER_DEFAULT,
    VIEWS,
    AudioViews,
    check_consumes,
)

TOKENIZER_OFFERS = tuple(v for v in VIEWS if v != "tokens")  # (a tokenizer makes the tokens)
CTC_VIEWS = {"ctc_logits", "ctc_posteriors", "alignment"}  # what needs the CTC head


def follow_text_encoder(section: DictConfig, text_encoder: Any) -> DictConfig:
    """A copy of a fusion's config with ``num_heads: null`` set to the text encoder's head count."""
    section = section.copy()
    if "num_heads" in section and section.num_heads is None:
        section.num_heads = text_encoder.num_heads
    return section


class SpokenNERProcessor(NERProcessor):
    """The NER text inputs plus the audio's features (``feats``, ``feat_lengths``)."""

    def __init__(self, vocab: CharVocab, labels: LabelSet, tokenizer: Any, audio: AudioFeatures):
        super().__init__(vocab, labels, tokenizer, uses_audio=True)
        self.audio = audio

    def prepare(self, utt: Utterance) -> dict[str, Any]:
        return {**self.prepare_text(utt), "feats": self.audio.prepare(utt)}

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {**super().collate(items), **self.audio.collate(items)}


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
        self.fusion_consumes = check_consumes("fusion", self.fusion, FUSION_DEFAULT, tuple(VIEWS))
        self.tokenizer_consumes = check_consumes("audio_tokenizer", self.audio_tokenizer, TOKENIZER_DEFAULT,
                                                 TOKENIZER_OFFERS)
        self.processor = SpokenNERProcessor(vocab, labels, self.text_encoder.tokenizer,
                                            AudioFeatures(AUDIO_FRONTENDS.build(cfg.frontend), self.audio_encoder))

    def to_compile(self) -> list[nn.Module]:
        return [self.text_encoder, self.audio_encoder]

    @classmethod
    def check_recipe(cls, cfg: DictConfig) -> list[str]:
        """Also: what the fusion and the tokenizer consume is offered; a warning for each component nothing
        uses (the tokenizer when no fusion consumes tokens and the audio CRF loss is off, ...): it is never run."""
        warnings = super().check_recipe(cfg)
        fusion = check_consumes("fusion", FUSIONS.get(cfg.fusion.name).cls, FUSION_DEFAULT, tuple(VIEWS))
        tokenizer = check_consumes("audio_tokenizer", AUDIO_TOKENIZERS.get(cfg.audio_tokenizer.name).cls,
                                   TOKENIZER_DEFAULT, TOKENIZER_OFFERS)
        loss = LOSSES.build(cfg.loss)
        active = getattr(loss, "active", lambda term: True)
        tokens = "tokens" in fusion or active("audio_crf")
        ctc = active("ctc") or bool(CTC_VIEWS & set(fusion)) or (tokens and bool(CTC_VIEWS & set(tokenizer)))
        coef = "loss.audio_crf_coef is 0" if "audio_crf_coef" in cfg.loss else "the loss has no audio_crf term"
        if not tokens:
            warnings.append(f"audio_tokenizer: inert, never run: nothing consumes its tokens (fusion "
                            f"'{cfg.fusion.name}' consumes {', '.join(fusion)}; {coef})")
        if not active("audio_crf"):
            warnings.append(f"audio_head: inert, never trained: the audio CRF loss is off ({coef})")
        if not ctc:
            warnings.append("ctc_head: inert, never run: loss.ctc_coef is 0 and nothing consumes the CTC outputs")
        return warnings

    def forward(self, batch: dict[str, Any], with_losses: bool) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Text-CRF features (B, P, 2 Dt), their mask, and the loss terms (when asked)."""
        text, text_mask = self.encode_text(batch)  # (B, P, Dt)
        feats = self.frontend(batch["feats"], batch["feat_lengths"])
        frames, frame_lengths = self.audio_encoder(feats, batch["feat_lengths"])  # (B, T', Da)
        audio = AudioViews(self, batch, frames, frame_lengths)  # the rest on first use
        terms: dict[str, Tensor] = {}
        if with_losses and self.loss.active("ctc"):
            terms["ctc"] = self.ctc_head.loss(audio.ctc_logits, frame_lengths, batch["char_ids"], batch["char_lengths"])
        if with_losses and self.loss.active("audio_crf"):
            tags = batch["char_tags"]  # (the mask covers the tensor's width: a batch may be padded further)
            terms["audio_crf"] = self.audio_head.loss(audio.char_tokens, tags,
                                                      lengths_mask(batch["char_lengths"], tags.shape[1]))
        wants = self.fusion_consumes
        tokens = audio.tokens if "tokens" in wants else None  # (B, P, Da)
        fused = self.fusion(text, text_mask, frames, audio.frame_mask, tokens, **audio.others(wants, FUSION_ARGS))
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
