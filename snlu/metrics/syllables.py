"""Syllable error rates of Mandarin transcripts: tonal and toneless pinyin (``snlu.data.pinyin``: pypinyin on whole
sentences, polyphones resolved by its phrase dictionary), each the edit distance over the reference's syllables.

Beside the CER they tell the acoustics from the characters: espeak-ng (and a listener) says every character by its
syllable, so a right-syllable, wrong-character error (a homophone) counts in the CER and not here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from snlu.data.pinyin import syllables
from snlu.metrics.cer import cer

TONE = re.compile(r"([a-z]+)[1-5]")


def syllable_error_rates(refs: Sequence[str], hyps: Sequence[str]) -> dict[str, float | int]:
    """``{"syllable_er_tonal", "syllable_er_toneless", "syllables"}`` of transcripts ``hyps`` against ``refs``
    (paired by position; ``syllables``: the reference's count)."""
    tonal = cer([syllables(r) for r in refs], [syllables(h) for h in hyps])
    toneless = cer([syllables(r, tones=False) for r in refs], [syllables(h, tones=False) for h in hyps])
    return {"syllable_er_tonal": tonal["cer"], "syllable_er_toneless": toneless["cer"], "syllables": tonal["chars"]}


def without_tones(units: Sequence[str]) -> list[str]:
    """Tonal pinyin units without their tone digit (``hang2`` -> ``hang``); other units as they are."""
    return [m[1] if (m := TONE.fullmatch(u)) else u for u in units]


def syllable_error_rates_of_units(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]],
                                  tones: bool) -> dict[str, float | int]:
    """The same rates for transcripts already in pinyin units (an ``asr`` model with ``task.units: pinyin``): both
    from tonal units, the toneless one alone from toneless units."""
    if not tones:
        rate = cer(refs, hyps)
        return {"syllable_er_toneless": rate["cer"], "syllables": rate["chars"]}
    tonal = cer(refs, hyps)
    toneless = cer([without_tones(r) for r in refs], [without_tones(h) for h in hyps])
    return {"syllable_er_tonal": tonal["cer"], "syllable_er_toneless": toneless["cer"], "syllables": tonal["chars"]}
