"""``e2e_ner``: named entities from speech alone, end to end: CTC over characters (or SentencePiece pieces,
``task.units``) plus entity markers.

Each entity of the transcript is wrapped in a pair of marker symbols of its type, and the speech encoder
learns to emit them with the characters (Ghannay et al. 2018; Yadav et al. 2020)::

    在北京表示  ->  在 <LOC 北 京 LOC> 表 示

The markers are private-use characters (never in a transcript) added to the character vocabulary: type i
of the sorted training types opens with U+E000 + 2i and closes with U+E001 + 2i (saved as markers.json).
With SentencePiece units they are user-defined symbols of the trained model: always pieces of their own.
Decoding removes them: what remains is the transcript, and each open marker followed by its type's close
marker with text between is an entity; a marker without its partner is dropped. Entities are flat (the
outermost spans). Scored by entity text + type per utterance (``snlu.metrics.text_ner``), plus the CER of
the transcript.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from snlu.core.checks import positive
from snlu.core.errors import ConfigError
from snlu.data.markers import Markers, Span, format_prediction, insert_markers, make_markers, strip_markers
from snlu.data.processor import AudioFeatures
from snlu.data.units import Units, UnitsConfig, build_units, units_class, units_kind
from snlu.data.utterance import Utterance
from snlu.heads.ctc import CTCHead
from snlu.metrics.text_ner import score_predictions
from snlu.registry import TASKS
from snlu.tasks.asr import ASRProcessor, ASRTask
from snlu.tasks.aux_ctc import aux_assets


class E2ENERProcessor(ASRProcessor):
    """ASR inputs whose target is the transcript with each entity wrapped in its type's markers."""

    def __init__(self, vocab: Units, audio: AudioFeatures, markers: Markers, aux_units: Units | None = None):
        super().__init__(vocab, audio, aux_units)
        self.markers = markers

    def target(self, utt: Utterance) -> str:
        return insert_markers(utt.sentence, utt.entities, self.markers)


@dataclasses.dataclass
class E2ENERConfig(UnitsConfig):
    """``beam_size``: 1 decodes the best path; more runs CTC prefix beam search with that beam. The output
    units: ``units`` (char | sentencepiece), ``sp_type``, ``sp_vocab_size``, ``sp_model`` (snlu.data.units).
    ``marker_bonus``: added to the entity markers' logits before decoding, as an ASR decoder adds a word
    insertion bonus: > 0 lets a model that ranks markers second (behind blank or a character) emit them; tune it
    on dev (``snlu-eval --marker-bonus B``). 0 (the default) decodes the model's own posteriors. Both are the
    run's dev/test decoding and a loaded model's default; ``snlu.load(dir, marker_bonus=B)`` chooses another."""

    beam_size: int = 1
    marker_bonus: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "beam_size")


@TASKS.register("e2e_ner", config=E2ENERConfig)
class E2ENERTask(ASRTask):
    """Speech-only NER: CTC over characters or pieces plus entity markers; scored by entity text + type."""

    main_metric = "f1"
    higher_is_better = True
    tie_metric = ("pred", True)  # while F1 is still 0: the epoch that emits the most entities is furthest along
    decode_options = {**ASRTask.decode_options, "marker_bonus": 0.0}

    def __init__(self, cfg: DictConfig, vocab: Units, markers: Markers, load_weights: bool = True,
                 aux_units: Units | None = None):
        super().__init__(cfg, vocab, load_weights, aux_units)
        self.markers = dict(markers)
        self.processor = E2ENERProcessor(vocab, self.processor.audio, self.markers, aux_units)
        missing = [m for pair in self.markers.values() for m in pair if not vocab.single(m)]
        if missing:
            raise ValueError(f"the vocabulary lacks entity markers {missing!r} as units of their own")
        self.marker_ids = [vocab.stoi[m] for pair in self.markers.values() for m in pair]

    @classmethod
    def from_data(cls, cfg: DictConfig, train: list[Utterance]) -> E2ENERTask:
        markers = make_markers(sorted({t for u in train for _, _, t in u.entities}))
        vocab = build_units(cfg.task, (insert_markers(u.sentence, u.entities, markers) for u in train),
                            symbols=[m for pair in markers.values() for m in pair])
        task = cls(cfg, vocab, markers, **aux_assets(cfg, train))
        task.prepare(train)
        return task

    @classmethod
    def check_recipe(cls, cfg: DictConfig, classes: Mapping[str, type] | None = None) -> list[str]:
        """Also: the output units spell text (the entities are read from the decoded characters)."""
        warnings = super().check_recipe(cfg, classes)
        kind = units_kind(cfg.task)
        if not units_class(kind).spells_text:
            raise ConfigError(f"task.units: {kind}: e2e_ner reads its entities from the decoded text, which {kind} "
                              f"units do not spell (use char or sentencepiece; pinyin fits ctc_head.aux)")
        return warnings

    @classmethod
    def load_assets(cls, folder: Path, cfg: DictConfig) -> dict[str, Any]:
        data = json.loads((folder / "markers.json").read_text(encoding="utf-8"))
        return {"markers": {t: (o, c) for t, (o, c) in data.items()}}

    def save_assets(self, out: Path) -> None:
        super().save_assets(out)
        (out / "markers.json").write_text(json.dumps(self.markers, ensure_ascii=False), encoding="utf-8")

    def predict(self, batch: dict[str, Any], beam_size: int = 1,
                marker_bonus: float = 0.0) -> list[tuple[str, list[Span]]]:
        """(transcript, entities) per utterance; ``marker_bonus`` is added to the markers' logits first."""
        logits, lengths = self(batch)
        if marker_bonus:
            logits = logits.clone()
            logits[..., self.marker_ids] += marker_bonus
        ids = CTCHead.decode(logits, lengths, beam_size)
        return [strip_markers(self.vocab.decode(i), self.markers) for i in ids]

    def evaluate(self, utts: list[Utterance], preds: list[tuple[str, list[Span]]]) -> dict[str, Any]:
        return score_predictions(utts, preds)

    def format_prediction(self, utt: Utterance, pred: tuple[str, list[Span]]) -> dict[str, Any]:
        return format_prediction(utt, pred)
