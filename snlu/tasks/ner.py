"""The text side every NER task shares: BERT word pieces, BIO labels aligned to them (the processor), CRF
decoding (the model)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from snlu.core.errors import DataError
from snlu.core.tensors import lengths_mask, pad
from snlu.data.labels import (
    LabelSet,
    align_labels_to_pieces,
    char_to_piece_matrix,
    pieces_to_char_spans,
    spans_to_bio,
)
from snlu.data.processor import Processor
from snlu.data.utterance import Utterance
from snlu.data.vocab import CharVocab
from snlu.metrics.ner import score_entities
from snlu.registry import TEXT_ENCODERS
from snlu.tasks.base import Task

log = logging.getLogger("snlu")
MAX_PIECES = 512  # BERT's positions, [CLS] and [SEP] included


class NERProcessor(Processor):
    """Word pieces of the sentence (BERT's tokenizer), BIO tags on pieces and on characters, character ids."""

    def __init__(self, vocab: CharVocab, labels: LabelSet, tokenizer: Any, uses_audio: bool = False):
        super().__init__(vocab, uses_audio)
        self.labels = labels
        self.tokenizer = tokenizer

    def prepare_text(self, utt: Utterance) -> dict[str, Any]:
        enc = self.tokenizer(utt.sentence, return_offsets_mapping=True, truncation=True, max_length=MAX_PIECES)
        offsets = [tuple(o) for o in enc["offset_mapping"][1:-1]]  # word pieces between [CLS] and [SEP]
        if not offsets:
            raise DataError(utt.where, "the tokenizer produced no word pieces", field="sentence")
        if len(offsets) == MAX_PIECES - 2 and offsets[-1][1] < len(utt.sentence.rstrip()):
            # Longer than BERT can read: tag what fits (training skips such lines: data.max_chars).
            log.warning("%s: field 'sentence': %d characters exceed BERT's %d word pieces: only characters "
                        "[0, %d) are tagged, entities after them count as missed", utt.where, len(utt.sentence),
                        MAX_PIECES, offsets[-1][1])
        char_tags = spans_to_bio(len(utt.sentence), utt.entities)
        return {
            "input_ids": torch.tensor(enc["input_ids"]),
            "offsets": offsets,
            "piece_tags": torch.tensor(self.labels.encode(align_labels_to_pieces(offsets, char_tags))),
            "char_tags": torch.tensor(self.labels.encode(char_tags)),
            "char_ids": torch.tensor(self.vocab.encode(utt.sentence)),
            "utt": utt,
        }

    def prepare(self, utt: Utterance) -> dict[str, Any]:
        return self.prepare_text(utt)

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        ids = [it["input_ids"] for it in items]
        n_pieces = torch.tensor([len(it["offsets"]) for it in items])
        n_chars = torch.tensor([len(it["char_ids"]) for it in items])
        pool = torch.zeros(len(items), int(n_pieces.max()), int(n_chars.max()))
        for b, it in enumerate(items):  # (B, P, C): average the characters of each word piece
            for p, chars in enumerate(char_to_piece_matrix(it["offsets"], len(it["char_ids"]))):
                if chars:
                    pool[b, p, chars] = 1.0 / len(chars)
        return {
            "input_ids": pad(ids, self.tokenizer.pad_token_id),
            "attention_mask": pad([torch.ones_like(i) for i in ids]),
            "piece_tags": pad([it["piece_tags"] for it in items]),
            "piece_lengths": n_pieces,
            "char_ids": pad([it["char_ids"] for it in items], self.vocab.stoi["<pad>"]),
            "char_tags": pad([it["char_tags"] for it in items]),
            "char_lengths": n_chars,
            "pool": pool,
            "offsets": [it["offsets"] for it in items],
            "utts": [it["utt"] for it in items],
        }


class NERTask(Task):
    """Base of the NER tasks: text encoder + CRF head over word pieces (positions 1..P after [CLS])."""

    def __init__(self, cfg: DictConfig, vocab: CharVocab, labels: LabelSet, load_weights: bool = True):
        super().__init__(cfg, vocab)
        self.labels = labels
        self.text_encoder = TEXT_ENCODERS.build(cfg.text_encoder, load_weights=load_weights)
        self.processor = NERProcessor(vocab, labels, self.text_encoder.tokenizer, self.uses_audio)

    @classmethod
    def assets_from_data(cls, train: list[Utterance]) -> dict[str, Any]:
        return {"labels": LabelSet.from_types({t for u in train for _, _, t in u.entities})}

    @classmethod
    def load_assets(cls, folder: Path, cfg: DictConfig) -> dict[str, Any]:
        return {"labels": LabelSet.from_dict(json.loads((folder / "labels.json").read_text()))}

    def save_assets(self, out: Path) -> None:
        super().save_assets(out)
        (out / "labels.json").write_text(json.dumps(self.labels.to_dict(), ensure_ascii=False))

    def to_compile(self) -> list[nn.Module]:
        return [self.text_encoder]

    # ------------------------------------------------------------------ model

    def encode_text(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """(B, P, Dt) word-piece states (specials dropped) and their mask."""
        states = self.text_encoder(batch["input_ids"], batch["attention_mask"])
        p = batch["pool"].shape[1]
        return states[:, 1 : p + 1], lengths_mask(batch["piece_lengths"], p)

    def decode(self, batch: dict[str, Any], features: Tensor, mask: Tensor) -> list[list[tuple[int, int, str]]]:
        tags = self.text_head.decode(features, mask)
        return [pieces_to_char_spans(off, self.labels.decode(t)) for off, t in zip(batch["offsets"], tags)]

    def evaluate(self, utts: list[Utterance], preds: list[list[tuple[int, int, str]]]) -> dict[str, Any]:
        return score_entities([u.entities for u in utts], preds)

    def format_prediction(self, utt: Utterance, pred: list[tuple[int, int, str]]) -> dict[str, Any]:
        return {**utt.record, "entity": [[s, e, utt.sentence[s:e], t] for s, e, t in pred]}
