"""Entity markers of speech-only NER end to end (the ``e2e_ner`` task, snlu/tasks/e2e_ner.py): each entity of a
transcript wrapped in a pair of private-use characters of its type, and the spans read back from a decoded
transcript. Plain text, no torch: the exported models' runtime decodes with it too."""

from __future__ import annotations

from typing import Any

Span = tuple[int, int, str]
Markers = dict[str, tuple[str, str]]  # TYPE -> (open, close)
FIRST_MARKER = 0xE000  # Unicode private use area


def make_markers(types: list[str]) -> Markers:
    """One (open, close) pair of private-use characters per entity type, in sorted type order."""
    return {t: (chr(FIRST_MARKER + 2 * i), chr(FIRST_MARKER + 2 * i + 1)) for i, t in enumerate(sorted(types))}


def insert_markers(sentence: str, spans: list[Span], markers: Markers) -> str:
    """The sentence with each (flat, non-overlapping) span wrapped in its type's markers."""
    pieces, pos = [], 0
    for start, end, etype in sorted(spans):
        opening, closing = markers[etype]
        pieces += [sentence[pos:start], opening, sentence[start:end], closing]
        pos = end
    return "".join([*pieces, sentence[pos:]])


def strip_markers(tagged: str, markers: Markers) -> tuple[str, list[Span]]:
    """The transcript without markers, and the entities of its well-formed marker pairs (offsets into it)."""
    opens = {o: t for t, (o, _) in markers.items()}
    closes = {c: t for t, (_, c) in markers.items()}
    text: list[str] = []
    spans: list[Span] = []
    current: tuple[str, int] | None = None  # (type, start) of the open marker not closed yet
    for ch in tagged:
        if ch in opens:
            current = (opens[ch], len(text))  # a second open marker replaces an unclosed one
        elif ch in closes:
            if current is not None and current[0] == closes[ch] and len(text) > current[1]:
                spans.append((current[1], len(text), current[0]))
            current = None
        else:
            text.append(ch)
    return "".join(text), spans


def format_prediction(utt: Any, pred: tuple[str, list[Span]]) -> dict[str, Any]:
    """The input line (``utt.record``) with ``prediction`` (the transcript) and ``entity`` (offsets into it)."""
    text, spans = pred
    return {**utt.record, "prediction": text, "entity": [[s, e, text[s:e], t] for s, e, t in spans]}
