"""Tests for snlu.metrics.cer against a hand-written Levenshtein DP."""

import json
import random

import pytest

from snlu.metrics.cer import cer


def _lev(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_against_dp_on_random_strings():
    rng = random.Random(0)
    alphabet = "北京上海ab1，"
    for _ in range(50):
        refs = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(rng.randint(1, 8))
        ]
        hyps = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in refs]
        out = cer(refs, hyps)
        errors = sum(_lev(r, h) for r, h in zip(refs, hyps))
        chars = sum(map(len, refs))
        assert out["errors"] == errors and out["chars"] == chars
        assert out["cer"] == pytest.approx(errors / chars if chars else float(errors))


def test_simple_cases_and_types():
    assert cer(["北京欢迎你"], ["北京欢迎你"]) == {"cer": 0.0, "errors": 0, "chars": 5}
    out = cer(["北京欢迎你", "上海"], ["背景欢迎", "上海市"])
    assert (out["errors"], out["chars"]) == (4, 7)
    assert out["cer"] == pytest.approx(4 / 7)
    json.dumps(out)
    assert type(out["errors"]) is int and type(out["cer"]) is float


def test_empty_and_mismatch():
    assert cer([], []) == {"cer": 0.0, "errors": 0, "chars": 0}
    assert cer([""], ["ab"]) == {"cer": 2.0, "errors": 2, "chars": 0}
    with pytest.raises(ValueError):
        cer(["a"], [])


def test_edit_distance_equals_torchaudios():
    from torchaudio.functional import edit_distance as reference

    from snlu.metrics.cer import edit_distance

    rng = random.Random(1)
    for _ in range(200):
        a = "".join(rng.choice("北京ab") for _ in range(rng.randint(0, 9)))
        b = "".join(rng.choice("北京ab") for _ in range(rng.randint(0, 9)))
        assert edit_distance(a, b) == reference(list(a), list(b))
