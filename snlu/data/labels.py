"""Entity spans, BIO tags and their alignment to word pieces.

A span is ``(start, end_exclusive, TYPE)`` over the characters of one sentence.
Tags follow strict IOB2: an entity starts only at ``B-X`` and continues over ``I-X``;
an ``I-X`` that does not follow ``B-X``/``I-X`` starts nothing and is ignored.

Word pieces: ``offsets`` is a fast tokenizer's ``offset_mapping`` for one sentence (list of
``(char_start, char_end)``); pieces with ``end <= start`` (e.g. ``(0, 0)`` for [CLS]/[SEP]) are
special tokens. An entity whose first or last character falls strictly inside a word piece
(or on characters no piece covers, such as spaces) cannot be represented at piece level; use
``count_unrepresentable``/``representable`` to find out how many are lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Span = tuple[int, int, str]
Offset = Sequence[int]  # (char_start, char_end); HF may hand out lists instead of tuples

OUTSIDE = "O"


def _check_span(span: Span) -> Span:
    start, end, typ = span
    if not (0 <= start < end):
        raise ValueError(f"invalid span {span!r}: need 0 <= start < end")
    if not typ:
        raise ValueError(f"invalid span {span!r}: empty type")
    return int(start), int(end), str(typ)


def flatten_outermost_counted(spans: Iterable[Span]) -> tuple[list[Span], int]:
    """Flatten nested/overlapping spans, keeping the outermost; return ``(kept, n_dropped)``.

    Spans are taken longest first, then earliest start (then type name, for determinism); a span
    overlapping an already kept one is dropped. Exact duplicates are merged first and are not
    counted as dropped. ``kept`` is sorted by start.
    """
    unique = {_check_span(s) for s in spans}
    order = sorted(unique, key=lambda s: (-(s[1] - s[0]), s[0], s[2]))
    kept: list[Span] = []
    for span in order:
        if all(span[1] <= k[0] or k[1] <= span[0] for k in kept):
            kept.append(span)
    kept.sort()
    return kept, len(unique) - len(kept)


def dropped_spans(spans: Iterable[Span], kept: Sequence[Span]) -> tuple[list[Span], list[tuple[Span, Span]]]:
    """What flattening ``spans`` to ``kept`` dropped: the spans inside a kept one (nested), and the spans that
    cross one (overlap it without lying inside it), each with the first kept span it crosses."""
    kept_set = set(kept)
    nested, crossing = [], []
    for span in sorted({_check_span(s) for s in spans} - kept_set):
        if any(k[0] <= span[0] and span[1] <= k[1] for k in kept):
            nested.append(span)
        else:
            crossing.append((span, next(k for k in kept if span[0] < k[1] and k[0] < span[1])))
    return nested, crossing


def flatten_outermost(spans: Iterable[Span]) -> list[Span]:
    """Like ``flatten_outermost_counted`` but return only the kept spans (sorted by start)."""
    return flatten_outermost_counted(spans)[0]


@dataclass(frozen=True)
class LabelSet:
    """BIO tag vocabulary: ``["O", "B-T1", "I-T1", "B-T2", ...]`` over sorted entity types."""

    types: tuple[str, ...]
    tags: tuple[str, ...] = field(init=False)
    tag2id: dict[str, int] = field(init=False, compare=False, repr=False)
    id2tag: dict[int, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        types = tuple(sorted(set(self.types)))
        if any(not t or t == OUTSIDE for t in types):
            raise ValueError(f"invalid entity types {types!r}")
        tags = (OUTSIDE,) + tuple(f"{p}-{t}" for t in types for p in ("B", "I"))
        object.__setattr__(self, "types", types)
        object.__setattr__(self, "tags", tags)
        object.__setattr__(self, "tag2id", {t: i for i, t in enumerate(tags)})
        object.__setattr__(self, "id2tag", dict(enumerate(tags)))

    @classmethod
    def from_types(cls, types: Iterable[str]) -> LabelSet:
        return cls(tuple(types))

    def __len__(self) -> int:
        return len(self.tags)

    def encode(self, tags: Iterable[str]) -> list[int]:
        return [self.tag2id[t] for t in tags]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.id2tag[int(i)] for i in ids]

    def to_dict(self) -> dict:
        return {"types": list(self.types), "tags": list(self.tags)}

    @classmethod
    def from_dict(cls, data: dict) -> LabelSet:
        """Rebuild from ``to_dict()``; the stored tag list, if present, must match."""
        ls = cls(tuple(data["types"]))
        if "tags" in data and list(data["tags"]) != list(ls.tags):
            raise ValueError(f"tag list {data['tags']!r} does not match types {list(ls.types)!r}")
        return ls


def split_tag(tag: str) -> tuple[str, str | None]:
    """``"B-LOC" -> ("B", "LOC")``, ``"O" -> ("O", None)``; anything else raises ValueError."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    if len(tag) > 2 and tag[0] in "BI" and tag[1] == "-":
        return tag[0], tag[2:]
    raise ValueError(f"invalid BIO tag {tag!r}")


def spans_to_bio(n_chars: int, spans: Iterable[Span]) -> list[str]:
    """Character BIO tags for flat spans; overlapping or out-of-range spans raise ValueError."""
    tags = [OUTSIDE] * n_chars
    for start, end, typ in sorted(_check_span(s) for s in spans):
        if end > n_chars:
            raise ValueError(f"span {(start, end, typ)!r} exceeds sentence length {n_chars}")
        if any(t != OUTSIDE for t in tags[start:end]):
            raise ValueError(f"span {(start, end, typ)!r} overlaps another span; flatten first")
        tags[start] = f"B-{typ}"
        tags[start + 1 : end] = [f"I-{typ}"] * (end - start - 1)
    return tags


def _bio_runs(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Strict IOB2 decoding to ``(first_index, last_index_inclusive, type)``."""
    runs: list[tuple[int, int, str]] = []
    cur: list | None = None  # [first, last, type]
    for i, tag in enumerate(tags):
        prefix, typ = split_tag(tag)
        if prefix == "I" and cur is not None and cur[2] == typ:
            cur[1] = i
            continue
        if cur is not None:
            runs.append((cur[0], cur[1], cur[2]))
            cur = None
        if prefix == "B":
            cur = [i, i, typ]
    if cur is not None:
        runs.append((cur[0], cur[1], cur[2]))
    return runs


def bio_to_spans(tags: Sequence[str]) -> list[Span]:
    """Decode character (or token) BIO tags to spans with the strict IOB2 rule."""
    return [(a, b + 1, t) for a, b, t in _bio_runs(tags)]


def _is_special(offset: Offset) -> bool:
    return offset[1] <= offset[0]


def align_labels_to_pieces(offsets: Sequence[Offset], char_tags: Sequence[str]) -> list[str]:
    """Piece tags from character tags: each piece takes the tag of its first character.

    A piece starting on ``B-X`` is ``B-X``; one starting inside an entity (``I-X``) stays ``I-X``.
    Special tokens get ``"O"`` (callers should mask them out of the loss).
    """
    out = []
    for off in offsets:
        if _is_special(off):
            out.append(OUTSIDE)
        elif off[0] >= len(char_tags):
            raise ValueError(f"piece offset {tuple(off)!r} beyond {len(char_tags)} characters")
        else:
            out.append(char_tags[off[0]])
    return out


def pieces_to_char_spans(offsets: Sequence[Offset], piece_tags: Sequence[str]) -> list[Span]:
    """Decode piece-level BIO (strict IOB2, special tokens skipped) to character spans.

    An entity over pieces ``i..k`` becomes ``(offsets[i][0], offsets[k][1], type)``.
    """
    if len(offsets) != len(piece_tags):
        raise ValueError(f"{len(offsets)} offsets but {len(piece_tags)} piece tags")
    keep = [i for i, off in enumerate(offsets) if not _is_special(off)]
    runs = _bio_runs([piece_tags[i] for i in keep])
    return [(int(offsets[keep[a]][0]), int(offsets[keep[b]][1]), t) for a, b, t in runs]


def char_to_piece_matrix(offsets: Sequence[Offset], n_chars: int) -> list[list[int]]:
    """For each piece, the character indices it covers (``[]`` for special tokens).

    Used to pool per-character vectors into pieces; offsets are clipped to ``n_chars``.
    """
    return [[] if _is_special(off) else list(range(off[0], min(off[1], n_chars))) for off in offsets]


def char_to_piece_index(offsets: Sequence[Offset], n_chars: int) -> list[int]:
    """For each character, the index of the piece covering it, or -1 (e.g. for spaces)."""
    index = [-1] * n_chars
    for p, chars in enumerate(char_to_piece_matrix(offsets, n_chars)):
        for c in chars:
            index[c] = p
    return index


def count_unrepresentable(offsets: Sequence[Offset], spans: Iterable[Span]) -> int:
    """How many of the flat ``spans`` do not survive char -> piece -> char conversion exactly."""
    spans = {_check_span(s) for s in spans}
    n_chars = max([e for _, e, _ in spans] + [off[1] for off in offsets] + [0])
    piece_tags = align_labels_to_pieces(offsets, spans_to_bio(n_chars, spans))
    return len(spans - set(pieces_to_char_spans(offsets, piece_tags)))


def representable(offsets: Sequence[Offset], spans: Iterable[Span]) -> bool:
    """True if every span's boundaries coincide with word-piece boundaries (exact round trip)."""
    return count_unrepresentable(offsets, spans) == 0
