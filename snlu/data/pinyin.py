"""Mandarin syllables as CTC output units (``task.units: pinyin``, ``ctc_head.aux.units: pinyin``).

A sentence becomes its pinyin syllables by ``pypinyin.lazy_pinyin`` on the whole sentence, so its phrase
dictionary resolves polyphones from context (银行行长 -> yin2 hang2 hang2 zhang3): tonal ``TONE3`` syllables with
the neutral tone as 5 (``ma5``), or toneless ones (``pinyin_tones: false``: ``ma``). A character without a reading
(a Latin letter, a digit, punctuation, a private-use entity marker) is a unit of its own; whitespace is dropped.
Ids: ``<blank>`` 0, ``<pad>`` 1, ``<unk>`` 2, then the syllables of the training transcripts by frequency. Decoded
text is the syllables joined by spaces; saved beside the weights as ``pinyin.json``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from snlu.data.vocab import SPECIALS, UNK, Units


def syllables(text: str, tones: bool = True) -> list[str]:
    """The pinyin units of ``text``: one per Han character (phrase context resolving polyphones), one per other
    non-space character."""
    from pypinyin import Style, lazy_pinyin  # its dictionaries load on first use (in each loader worker)

    style = Style.TONE3 if tones else Style.NORMAL
    return lazy_pinyin(text, style=style, neutral_tone_with_five=True, errors=_others)


def _others(run: str) -> list[str]:
    """A run of characters without a reading: each a unit, whitespace dropped."""
    return [c for c in run if not c.isspace()]


class PinyinUnits(Units):
    """Mandarin pinyin syllables (pypinyin, tonal or toneless) as CTC units; other characters one unit each."""

    kind: ClassVar[str] = "pinyin"
    file: ClassVar[str] = "pinyin.json"
    pad_id: ClassVar[int] = 1
    spells_text: ClassVar[bool] = False  # decoding gives syllables, not the transcript's characters

    def __init__(self, stoi: dict[str, int], tones: bool = True):
        if [stoi.get(s) for s in SPECIALS] != [0, 1, 2]:
            raise ValueError(f"pinyin units must map {SPECIALS} to 0, 1, 2")
        self.stoi, self.tones = dict(stoi), bool(tones)
        self.itos = {i: s for s, i in self.stoi.items()}

    @classmethod
    def build(cls, sentences: Iterable[str], tones: bool = True, symbols: Sequence[str] = ()) -> PinyinUnits:
        """The syllables of ``sentences`` (and ``symbols``), most frequent first."""
        counts = Counter(s for text in sentences for s in syllables(text, tones))
        counts.update({s: 0 for s in symbols if s not in counts})
        units = sorted(counts, key=lambda s: (-counts[s], s))
        return cls({**{s: i for i, s in enumerate(SPECIALS)}, **{u: i + len(SPECIALS) for i, u in enumerate(units)}},
                   tones)

    @classmethod
    def from_texts(cls, options: Any, sentences: Iterable[str], symbols: Sequence[str] = ()) -> PinyinUnits:
        """The syllables of ``sentences``, tonal unless ``options.pinyin_tones`` is false."""
        return cls.build(sentences, bool(options.get("pinyin_tones", True)), symbols)

    def spell(self, text: str) -> list[str]:
        """The units ``text`` is made of (what the error rate counts)."""
        return syllables(text, self.tones)

    def split(self, decoded: str) -> list[str]:
        """The units of a decoded text (``decode`` joins them by spaces)."""
        return decoded.split()

    def encode(self, text: str) -> list[int]:
        unk = self.stoi[UNK]
        return [self.stoi.get(s, unk) for s in self.spell(text)]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.itos[i] for i in ids if len(SPECIALS) <= i < len(self.stoi))

    def __len__(self) -> int:
        return len(self.stoi)

    def single(self, symbol: str) -> bool:
        """``symbol`` is one unit of its own (a character without a reading that the units hold)."""
        return symbol in self.stoi and syllables(symbol, self.tones) == [symbol]

    def save(self, path: Path) -> None:
        data = {"tones": self.tones, "stoi": self.stoi}
        Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=0), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> PinyinUnits:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not {"stoi", "tones"} <= set(data):
            raise ValueError("expected {\"tones\": ..., \"stoi\": {...}}")
        return cls(data["stoi"], data["tones"])
