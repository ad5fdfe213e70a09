"""Syllable error rates against syllables written by hand and a brute-force edit distance (not pypinyin's own
output, nor torchaudio's edit_distance)."""

from __future__ import annotations

import pytest

from snlu.metrics.syllables import syllable_error_rates, syllable_error_rates_of_units, without_tones


def levenshtein(a: list[str], b: list[str]) -> int:
    """Edit distance by the full dynamic-programming table."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


# reference, hypothesis, and their syllables written from a dictionary
CASES = [
    ("北京大学", "被经打学", ["bei3", "jing1", "da4", "xue2"], ["bei4", "jing1", "da3", "xue2"]),  # homophones
    ("你好", "你", ["ni3", "hao3"], ["ni3"]),  # a deletion
    ("银行行长", "银行长", ["yin2", "hang2", "hang2", "zhang3"], ["yin2", "hang2", "zhang3"]),  # 行长 in context
]


def test_rates_equal_the_hand_computation():
    refs, hyps = [c[0] for c in CASES], [c[1] for c in CASES]
    tonal = sum(levenshtein(r, h) for *_, r, h in CASES)
    toneless = sum(levenshtein(without_tones(r), without_tones(h)) for *_, r, h in CASES)
    n = sum(len(r) for *_, r, _ in CASES)
    assert (tonal, toneless, n) == (4, 2, 10)  # 2 tone errors + 1 deletion + 1 deletion; toneless: the deletions
    assert syllable_error_rates(refs, hyps) == {"syllable_er_tonal": tonal / n, "syllable_er_toneless": toneless / n,
                                                "syllables": n}


def test_rates_of_pinyin_units():
    refs, hyps = [c[2] for c in CASES], [c[3] for c in CASES]
    assert syllable_error_rates_of_units(refs, hyps, tones=True) == {"syllable_er_tonal": 0.4,
                                                                     "syllable_er_toneless": 0.2, "syllables": 10}
    plain = [without_tones(r) for r in refs], [without_tones(h) for h in hyps]
    assert syllable_error_rates_of_units(*plain, tones=False) == {"syllable_er_toneless": 0.2, "syllables": 10}
    assert without_tones(["hang2", "ma5", "3", "O", "a"]) == ["hang", "ma", "3", "O", "a"]


def test_identical_transcripts_and_mismatched_lists():
    assert syllable_error_rates(["北京"], ["北京"])["syllable_er_tonal"] == 0.0
    with pytest.raises(ValueError, match="1 references but 2 hypotheses"):
        syllable_error_rates(["北京"], ["北京", "上海"])
