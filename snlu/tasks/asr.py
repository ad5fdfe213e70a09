"""``asr``: audio encoder + CTC over characters, SentencePiece pieces or pinyin syllables (``task.units``), scored
by the error rate of the decoded units (``cer``: characters for characters and pieces, syllables for pinyin), with
the tonal and toneless syllable error rates beside it (snlu/metrics/syllables.py); optionally an auxiliary CTC
on an intermediate block (``ctc_head.aux``, snlu/tasks/aux_ctc.py).

Trained on an ASR corpus (AISHELL-1 for CNERTA), its frontend and audio encoder initialise a
spoken-NER recipe through ``audio_encoder.init_from: RUN_DIR``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from snlu.core.checks import positive
from snlu.core.errors import SnluError
from snlu.core.tensors import pad
from snlu.data.processor import AudioFeatures, Processor
from snlu.data.units import Units, UnitsConfig, build_units
from snlu.data.utterance import Utterance
from snlu.heads.ctc import CTCHead
from snlu.metrics.cer import cer
from snlu.metrics.syllables import syllable_error_rates, syllable_error_rates_of_units
from snlu.registry import AUDIO_ENCODERS, AUDIO_FRONTENDS, HEADS, TASKS
from snlu.tasks.audio import AudioTask
from snlu.tasks.aux_ctc import aux_assets, aux_loss, check_aux


class ASRProcessor(Processor):
    """Audio features and the target units (``target``: the transcript; ``e2e_ner`` adds entity markers), and the
    auxiliary CTC's targets when there is one."""

    def __init__(self, vocab: Units, audio: AudioFeatures, aux_units: Units | None = None):
        super().__init__(vocab, uses_audio=True)
        self.audio = audio
        self.aux_units = aux_units

    def target(self, utt: Utterance) -> str:
        """What CTC learns to emit."""
        return utt.sentence

    def prepare(self, utt: Utterance) -> dict[str, Any]:
        chars = torch.tensor(self.vocab.encode(self.target(utt)), dtype=torch.long)  # long even when empty
        return {"feats": self.audio.prepare(utt), "char_ids": chars, "utt": utt, **self.aux_targets(utt)}

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            **self.audio.collate(items),
            "char_ids": pad([it["char_ids"] for it in items], self.vocab.pad_id),
            "char_lengths": torch.tensor([len(it["char_ids"]) for it in items]),
            "utts": [it["utt"] for it in items],
            **self.aux_collate(items),
        }


@dataclasses.dataclass
class ASRConfig(UnitsConfig):
    """``beam_size``: 1 decodes the best path; more runs CTC prefix beam search with that beam (the run's dev/test
    decoding and a loaded model's default: ``snlu.load(dir, beam_size=N)`` and ``--beam-size`` choose another).
    The output units: ``units`` (char | sentencepiece | pinyin), ``sp_type``, ``sp_vocab_size``, ``sp_model``,
    ``pinyin_tones`` (snlu.data.units)."""

    beam_size: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "beam_size")


@TASKS.register("asr", config=ASRConfig)
class ASRTask(AudioTask):
    """Speech recognition with CTC (best path or prefix beam search), metric: character error rate."""

    components = {"frontend": AUDIO_FRONTENDS, "audio_encoder": AUDIO_ENCODERS, "ctc_head": HEADS}
    main_metric = "cer"
    higher_is_better = False
    uses_text = False
    decode_options = {"beam_size": 1}

    def __init__(self, cfg: DictConfig, vocab: Units, load_weights: bool = True, aux_units: Units | None = None):
        super().__init__(cfg, vocab, aux_units=aux_units)
        self.frontend = AUDIO_FRONTENDS.build(cfg.frontend)
        self.audio_encoder = AUDIO_ENCODERS.build(cfg.audio_encoder, self.frontend.dim)
        aux = {"aux_size": len(aux_units)} if aux_units is not None else {}
        self.ctc_head = HEADS.build(cfg.ctc_head, self.audio_encoder.dim, len(vocab), **aux)
        self.processor = ASRProcessor(vocab, AudioFeatures(AUDIO_FRONTENDS.build(cfg.frontend), self.audio_encoder),
                                      aux_units)

    def to_compile(self) -> list[nn.Module]:
        return [self.audio_encoder]

    @classmethod
    def check_recipe(cls, cfg: DictConfig, classes: Mapping[str, type] | None = None) -> list[str]:
        """Also: the encoder can give the auxiliary CTC its block (``ctc_head.aux``)."""
        warnings = super().check_recipe(cfg, classes)
        check_aux(cfg)
        return warnings

    @classmethod
    def from_data(cls, cfg: DictConfig, train: list[Utterance]) -> ASRTask:
        """A fresh model: the units of the training transcripts (characters, a SentencePiece model trained on them,
        their pinyin syllables), and the auxiliary CTC's units."""
        task = cls(cfg, build_units(cfg.task, (u.sentence for u in train)), **aux_assets(cfg, train))
        task.prepare(train)
        return task

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        feats = self.frontend(batch["feats"], batch["feat_lengths"])
        frames, lengths = self.audio_encoder(feats, batch["feat_lengths"])
        return self.ctc_head(frames), lengths

    def training_step(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        if self.aux_units is not None:
            return self.training_step_with_aux(batch)
        logits, lengths = self(batch)
        loss = self.ctc_head.loss(logits, lengths, batch["char_ids"], batch["char_lengths"])
        return loss, {"ctc": loss.item()}

    def training_step_with_aux(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        """``(1 - weight) * main CTC + weight * auxiliary CTC`` on block ``ctc_head.aux.block``."""
        feats = self.frontend(batch["feats"], batch["feat_lengths"])
        frames, lengths, inner = self.audio_encoder.encode_with_block(feats, batch["feat_lengths"],
                                                                      self.cfg.ctc_head.aux.block)
        main = self.ctc_head.loss(self.ctc_head(frames), lengths, batch["char_ids"], batch["char_lengths"])
        side = aux_loss(self, inner, lengths, batch)
        return self.ctc_head.mix(main, side), {"ctc": main.item(), "ctc_aux": side.item()}

    def check_decode(self, options: dict[str, Any]) -> None:
        if options["beam_size"] < 1:
            raise SnluError(f"decoding option 'beam_size': must be >= 1, got {options['beam_size']}")

    def predict(self, batch: dict[str, Any], beam_size: int = 1) -> list[str]:
        """The transcripts: the best path (``beam_size`` 1) or CTC prefix beam search with that beam."""
        logits, lengths = self(batch)
        return [self.vocab.decode(ids) for ids in CTCHead.decode(logits, lengths, beam_size)]

    def evaluate(self, utts: list[Utterance], preds: list[str]) -> dict[str, Any]:
        """The error rate of the output units (``cer``: characters, or pinyin syllables with ``units: pinyin``)
        and the tonal and toneless syllable error rates."""
        refs = [u.sentence for u in utts]
        if self.vocab.spells_text:  # characters or pieces: the CER of the decoded text
            return {**cer(refs, preds), **syllable_error_rates(refs, preds)}
        units = [self.vocab.spell(r) for r in refs], [self.vocab.split(p) for p in preds]
        out = cer(*units)
        kind = self.vocab.kind
        if kind != "pinyin":  # (a plugin's units: their own error rate)
            return {**out, "cer_of": f"{kind} units (task.units: {kind})"}
        tones = self.vocab.tones
        return {**out, "cer_of": f"{'tonal' if tones else 'toneless'} pinyin syllables (task.units: pinyin)",
                **syllable_error_rates_of_units(*units, tones)}

    def format_prediction(self, utt: Utterance, pred: str) -> dict[str, Any]:
        return {**utt.record, "prediction": pred}
