"""Character vocabulary for CTC: built from the training transcripts, saved as JSON with the model."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

BLANK, PAD, UNK = "<blank>", "<pad>", "<unk>"
SPECIALS = (BLANK, PAD, UNK)  # blank is id 0, as CTC expects


class Units:
    """Base of the CTC tasks' vocabularies (``UNITS``: :class:`CharVocab`, ``SentencePieceUnits``, ``PinyinUnits``
    of snlu.data.units): what a task asks of its output units."""

    kind: ClassVar[str]  # its UNITS name
    file: ClassVar[str]  # its file in a saved model folder
    spells_text: ClassVar[bool]  # decode gives the transcript's characters (char, sentencepiece; not pinyin)
    stoi: dict[str, int]  # unit -> id (the checkpoint fingerprint hashes it)
    pad_id: int

    def spell(self, text: str) -> list[str]:
        """The units a text is made of (what an error rate counts)."""
        raise NotImplementedError

    def split(self, decoded: str) -> list[str]:
        """The units of a decoded text."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def single(self, symbol: str) -> bool:
        """Whether ``symbol`` is one unit of its own."""
        raise NotImplementedError

    def save(self, path: Path) -> None:
        raise NotImplementedError


class CharVocab(Units):
    """Characters: one unit per character of the training transcripts (the reference's CTC units).

    ``{char: id}`` with ``<blank>`` = 0, ``<pad>`` = 1, ``<unk>`` = 2, then characters by frequency."""

    kind: ClassVar[str] = "char"  # the units interface of snlu.data.units
    file: ClassVar[str] = "vocab.json"
    pad_id: ClassVar[int] = 1
    spells_text: ClassVar[bool] = True  # decoding gives the transcript's characters

    def __init__(self, stoi: dict[str, int]):
        if [stoi.get(s) for s in SPECIALS] != [0, 1, 2]:
            raise ValueError(f"vocabulary must map {SPECIALS} to 0, 1, 2")
        self.stoi = dict(stoi)
        self.itos = {i: c for c, i in self.stoi.items()}

    @classmethod
    def build(cls, sentences: Iterable[str]) -> CharVocab:
        counts = Counter(c for s in sentences for c in s if not c.isspace())
        chars = sorted(counts, key=lambda c: (-counts[c], c))
        return cls({**{s: i for i, s in enumerate(SPECIALS)}, **{c: i + len(SPECIALS) for i, c in enumerate(chars)}})

    @classmethod
    def from_texts(cls, options: Any, sentences: Iterable[str], symbols: Sequence[str] = ()) -> CharVocab:
        """The characters of ``sentences`` (the ``symbols`` of ``e2e_ner``, its markers, are characters of them)."""
        return cls.build(sentences)

    @staticmethod
    def spell(text: str) -> list[str]:
        """The units ``text`` is made of (what the error rate counts): its characters."""
        return list(text)

    @staticmethod
    def split(decoded: str) -> list[str]:
        """The units of a decoded text: its characters."""
        return list(decoded)

    def encode(self, text: str) -> list[int]:
        unk = self.stoi[UNK]
        return [self.stoi.get(c, unk) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos.get(i, "") for i in ids if i >= len(SPECIALS))

    def __len__(self) -> int:
        return len(self.stoi)

    def single(self, symbol: str) -> bool:
        """``symbol`` is one unit (a character of the vocabulary)."""
        return len(symbol) == 1 and symbol in self.stoi

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.stoi, ensure_ascii=False, indent=0), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> CharVocab:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))
