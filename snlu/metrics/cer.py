"""Character error rate over whole utterance lists."""

from __future__ import annotations

from collections.abc import Sequence

from torchaudio.functional import edit_distance


def cer(refs: Sequence[str], hyps: Sequence[str]) -> dict:
    """Corpus CER: total character edit distance over total reference characters.

    Returns ``{"cer", "errors", "chars"}``. Utterances are paired by position (lengths must
    match, else ValueError). With no reference characters, ``cer`` is ``float(errors)``
    (0.0 when both sides are empty) so the result stays JSON-serialisable.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    errors = sum(int(edit_distance(list(r), list(h))) for r, h in zip(refs, hyps))
    chars = sum(len(r) for r in refs)
    return {"cer": errors / chars if chars else float(errors), "errors": errors, "chars": chars}
