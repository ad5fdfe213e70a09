"""Character error rate over whole utterance lists (or the error rate of any units: lists of strings)."""

from __future__ import annotations

from collections.abc import Sequence


def edit_distance(ref: Sequence[object], hyp: Sequence[object]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions, each 1), the dynamic programme of
    ``torchaudio.functional.edit_distance`` (tests/metrics/test_cer.py compares the two): torch-free, for the
    exported models' runtime."""
    row = list(range(len(hyp) + 1))  # distances from ref[:0]
    for i, r in enumerate(ref, start=1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1]


def cer(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> dict:
    """Corpus CER: total character edit distance over total reference characters (strings; lists of units, such
    as pinyin syllables, give that unit's error rate).

    Returns ``{"cer", "errors", "chars"}``. Utterances are paired by position (lengths must
    match, else ValueError). With no reference characters, ``cer`` is ``float(errors)``
    (0.0 when both sides are empty) so the result stays JSON-serialisable.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    errors = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
    chars = sum(len(r) for r in refs)
    return {"cer": errors / chars if chars else float(errors), "errors": errors, "chars": chars}
