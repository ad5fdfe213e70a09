"""Character error rate over whole utterance lists (or the error rate of any units: lists of strings)."""

from __future__ import annotations

from collections.abc import Sequence

from torchaudio.functional import edit_distance


def cer(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> dict:
    """Corpus CER: total character edit distance over total reference characters (strings; lists of units, such
    as pinyin syllables, give that unit's error rate).

    Returns ``{"cer", "errors", "chars"}``. Utterances are paired by position (lengths must
    match, else ValueError). With no reference characters, ``cer`` is ``float(errors)``
    (0.0 when both sides are empty) so the result stays JSON-serialisable.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    errors = sum(int(edit_distance(list(r), list(h))) for r, h in zip(refs, hyps))
    chars = sum(len(r) for r in refs)
    return {"cer": errors / chars if chars else float(errors), "errors": errors, "chars": chars}
