"""``spoken_ner``: the multitask model (text CRF + audio CRF + CTC over a fused BERT/speech model).

    wav - fbank - norm - SpecAugment - AudioEncoder - H_a --+-- CTC head - L_ctc
                                                             +-- AudioTokenizer - A_tok - audio CRF - L_acrf
    text - BERT - H_t ---------------- Fusion(H_t, H_a, A_tok) - F - [H_t; F] - text CRF - L_tcrf

The fusion and the audio tokenizer get the audio representations they consume (snlu/tasks/views.py: frames, CTC
logits or posteriors, the CTC forced alignment, tokens); a batch computes only those and what an active loss
needs (at inference the raw fusion runs no CTC head and no tokenizer). What each component consumes and which
loss terms are on is read from the recipe once (``Wiring``): by the recipe check, and once per build.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from snlu.core.errors import ConfigError
from snlu.core.tensors import lengths_mask
from snlu.data.labels import LabelSet
from snlu.data.processor import AudioFeatures
from snlu.data.units import Units
from snlu.data.utterance import Utterance
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
from snlu.tasks.audio import AudioTask
from snlu.tasks.aux_ctc import aux_loss, check_aux
from snlu.tasks.ner import NERProcessor, NERTask
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
TERMS = ("text_crf", "audio_crf", "ctc")  # the loss terms the task computes


@dataclasses.dataclass(frozen=True)
class Wiring:
    """What the recipe's fusion and audio tokenizer consume and which loss terms are on: from their classes and
    the loss's config alone (a loss class without ``active_terms`` has every term on)."""

    fusion: tuple[str, ...]
    tokenizer: tuple[str, ...]
    terms: frozenset[str]

    @classmethod
    def of(cls, cfg: DictConfig, classes: Mapping[str, type]) -> Wiring:
        """The wiring of ``cfg`` whose sections name ``classes``; a consumed name the task does not offer is a
        ConfigError naming the section."""
        fusion = check_consumes("fusion", classes["fusion"], FUSION_DEFAULT, tuple(VIEWS))
        tokenizer = check_consumes("audio_tokenizer", classes["audio_tokenizer"], TOKENIZER_DEFAULT, TOKENIZER_OFFERS)
        hook = getattr(classes["loss"], "active_terms", None)
        return cls(fusion, tokenizer, frozenset(hook(cfg.loss, TERMS) if hook else TERMS))

    @property
    def tokens(self) -> bool:
        """Whether the audio tokenizer runs: the fusion consumes its tokens, or the audio CRF loss is on."""
        return "tokens" in self.fusion or "audio_crf" in self.terms

    @property
    def ctc(self) -> bool:
        """Whether the CTC head runs: its loss is on, or the fusion (or a running tokenizer) consumes its outputs."""
        return ("ctc" in self.terms or bool(CTC_VIEWS & set(self.fusion))
                or (self.tokens and bool(CTC_VIEWS & set(self.tokenizer))))

    def warnings(self, cfg: DictConfig) -> list[str]:
        """One warning for each component nothing uses (it is never run, or never trained)."""
        out = []
        coef = "loss.audio_crf_coef is 0" if "audio_crf_coef" in cfg.loss else "the loss has no audio_crf term"
        if not self.tokens:
            out.append(f"audio_tokenizer: inert, never run: nothing consumes its tokens (fusion "
                       f"'{cfg.fusion.name}' consumes {', '.join(self.fusion)}; {coef})")
        if "audio_crf" not in self.terms:
            out.append(f"audio_head: inert, never trained: the audio CRF loss is off ({coef})")
        if not self.ctc:
            out.append("ctc_head: inert, never run: loss.ctc_coef is 0 and nothing consumes the CTC outputs")
        return out


def dry_build(section: str, build: Callable[[], Any]) -> Any:
    """``build()``; a ValueError its constructor raises is a ConfigError naming ``section``."""
    try:
        return build()
    except ValueError as e:
        message = str(e)
        raise ConfigError(message if message.startswith(f"{section}.") else f"{section}: {message}") from None



class SpokenNERProcessor(NERProcessor):
    """The NER text inputs plus the audio's features (``feats``, ``feat_lengths``), and the auxiliary CTC's
    targets when there is one."""

    def __init__(self, vocab: CharVocab, labels: LabelSet, tokenizer: Any, audio: AudioFeatures,
                 aux_units: Units | None = None):
        super().__init__(vocab, labels, tokenizer, uses_audio=True)
        self.audio = audio
        self.aux_units = aux_units

    def prepare(self, utt: Utterance) -> dict[str, Any]:
        return {**self.prepare_text(utt), "feats": self.audio.prepare(utt), **self.aux_targets(utt)}

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {**super().collate(items), **self.audio.collate(items), **self.aux_collate(items)}


@dataclasses.dataclass
class SpokenNERConfig:
    """No options: the components are configured in their own sections."""


@TASKS.register("spoken_ner", config=SpokenNERConfig)
class SpokenNERTask(AudioTask, NERTask):
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

    def __init__(self, cfg: DictConfig, vocab: CharVocab, labels: LabelSet, load_weights: bool = True,
                 aux_units: Units | None = None):
        super().__init__(cfg, vocab, labels, load_weights)  # (the text encoder)
        self.aux_units = aux_units
        c = self.component_classes(cfg)
        self.wiring = Wiring.of(cfg, c)
        self.frontend = c["frontend"](cfg.frontend)
        self.audio_encoder = c["audio_encoder"](cfg.audio_encoder, self.frontend.dim)
        text = self.text_encoder
        da, dt = self.audio_encoder.dim, text.dim
        aux = {"aux_size": len(aux_units)} if aux_units is not None else {}
        self.ctc_head = c["ctc_head"](cfg.ctc_head, da, len(vocab), **aux)
        self.audio_tokenizer = c["audio_tokenizer"](cfg.audio_tokenizer)
        self.fusion = c["fusion"](cfg.fusion, dt, da, text.intermediate_size, text.num_heads)
        self.text_head = c["text_head"](cfg.text_head, 2 * dt, len(labels))
        self.audio_head = c["audio_head"](cfg.audio_head, da, len(labels))
        self.loss = c["loss"](cfg.loss)
        self.processor = SpokenNERProcessor(vocab, labels, text.tokenizer, AudioFeatures(c["frontend"](cfg.frontend),
                                                                                     self.audio_encoder), aux_units)

    def to_compile(self) -> list[nn.Module]:
        return [self.text_encoder, self.audio_encoder]

    @classmethod
    def check_recipe(cls, cfg: DictConfig, classes: Mapping[str, type] | None = None) -> list[str]:
        """Also: what the fusion and the tokenizer consume is offered; a warning for each component nothing
        uses (the tokenizer when no fusion consumes tokens and the audio CRF loss is off, ...): it is never run."""
        classes = classes if classes is not None else cls.component_classes(cfg)
        warnings = super().check_recipe(cfg, classes) + Wiring.of(cfg, classes).warnings(cfg)
        check_aux(cfg)
        cls.check_sizes(cfg, classes)
        return warnings

    @classmethod
    def check_sizes(cls, cfg: DictConfig, classes: Mapping[str, type]) -> None:
        """Build the audio side and the fusion on the meta device (no memory, no weights) with the text encoder's
        sizes read from its config: what their constructors refuse (a head count that does not divide the text
        size) is a recipe error before any data. A text encoder that cannot tell its sizes skips this; an audio
        encoder with ``dim_of(cfg)`` (the pretrained ones, which load weights when built) gives its width so."""
        sizes = getattr(classes["text_encoder"], "sizes", None)
        if sizes is None:
            return
        text = sizes(cfg.text_encoder)
        dim_of = getattr(classes["audio_encoder"], "dim_of", None)  # (a pretrained encoder: not loaded for a check)
        with torch.device("meta"):
            if dim_of is not None:
                audio_dim = dim_of(cfg.audio_encoder)
            else:
                frontend = dry_build("frontend", lambda: classes["frontend"](cfg.frontend))
                audio_dim = dry_build("audio_encoder",
                                      lambda: classes["audio_encoder"](cfg.audio_encoder, frontend.dim)).dim
            dry_build("fusion", lambda: classes["fusion"](cfg.fusion, text["dim"], audio_dim,
                                                          text["intermediate_size"], text["num_heads"]))

    def forward(self, batch: dict[str, Any], with_losses: bool) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Text-CRF features (B, P, 2 Dt), their mask, and the loss terms (when asked; ``ctc_aux``: the auxiliary
        CTC's, which :meth:`training_step` mixes into ``ctc``)."""
        text, text_mask = self.encode_text(batch)  # (B, P, Dt)
        feats = self.frontend(batch["feats"], batch["feat_lengths"])
        with_aux = with_losses and self.aux_units is not None and "ctc" in self.wiring.terms
        if with_aux:
            frames, frame_lengths, inner = self.audio_encoder.encode_with_block(feats, batch["feat_lengths"],
                                                                                self.cfg.ctc_head.aux.block)
        else:
            frames, frame_lengths = self.audio_encoder(feats, batch["feat_lengths"])  # (B, T', Da)
        audio = AudioViews(self, batch, frames, frame_lengths)  # the rest on first use
        terms: dict[str, Tensor] = {}
        on = self.wiring.terms if with_losses else frozenset()
        if "ctc" in on:
            terms["ctc"] = self.ctc_head.loss(audio.ctc_logits, frame_lengths, batch["char_ids"], batch["char_lengths"])
        if with_aux:
            terms["ctc_aux"] = aux_loss(self, inner, frame_lengths, batch)
        if "audio_crf" in on:
            tags = batch["char_tags"]  # (the mask covers the tensor's width: a batch may be padded further)
            terms["audio_crf"] = self.audio_head.loss(audio.char_tokens, tags,
                                                      lengths_mask(batch["char_lengths"], tags.shape[1]))
        wants = self.wiring.fusion
        tokens = audio.tokens if "tokens" in wants else None  # (B, P, Da)
        fused = self.fusion(text, text_mask, frames, audio.frame_mask, tokens, **audio.others(wants, FUSION_ARGS))
        features = torch.cat([text, fused], dim=-1)
        if with_losses:
            terms["text_crf"] = self.text_head.loss(features, batch["piece_tags"], text_mask)
        return features, text_mask, terms

    def training_step(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        _, _, terms = self(batch, with_losses=True)
        mixed = dict(terms)
        if "ctc_aux" in mixed:  # the loss's ctc term: (1 - weight) * ctc + weight * ctc_aux
            mixed["ctc"] = self.ctc_head.mix(mixed["ctc"], mixed.pop("ctc_aux"))
        return self.loss(mixed), {k: v.item() for k, v in terms.items()}

    def predict(self, batch: dict[str, Any]) -> list[Any]:
        features, mask, _ = self(batch, with_losses=False)
        return self.decode(batch, features, mask)
