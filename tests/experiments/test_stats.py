"""The paired t-test against closed forms of Student's t and table values."""

from __future__ import annotations

import math

import pytest

from snlu.experiments.stats import mean, paired_t_test, std


def test_mean_and_sample_std():
    assert mean([0.80, 0.82, 0.81]) == pytest.approx(0.81, abs=1e-15)
    assert std([0.80, 0.82, 0.81]) == pytest.approx(0.01, rel=1e-12)
    assert std([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) == pytest.approx(math.sqrt(32 / 7), rel=1e-14)
    assert math.isnan(std([1.0])) and math.isnan(mean([]))


def with_t(t: float, n: int) -> tuple[list[float], list[float]]:
    """n pairs whose differences have sample sd 1 and mean t / sqrt(n): their paired t statistic is ``t``."""
    spread = [1.0, -1.0] + [0.0] * (n - 2)  # mean 0, sd sqrt(2 / (n - 1))
    d = [t / math.sqrt(n) + e * math.sqrt((n - 1) / 2) for e in spread]
    return [0.5 + x for x in d], [0.5] * n


@pytest.mark.parametrize("t", [0.3, 1.0, 2.5, 12.706, 40.0])
def test_p_closed_forms_for_one_and_two_degrees_of_freedom(t):
    one, two = paired_t_test(*with_t(t, 2)), paired_t_test(*with_t(t, 3))
    assert one.t == pytest.approx(t, rel=1e-9) and two.t == pytest.approx(t, rel=1e-9)
    assert one.p == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-8)  # Cauchy
    assert two.p == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-8)
    assert paired_t_test(*reversed(with_t(t, 3))).p == pytest.approx(two.p, rel=1e-12)  # two-sided


@pytest.mark.parametrize("t,df", [(12.7062047, 1), (4.30265273, 2), (2.77644511, 4), (2.22813885, 10),
                                  (2.04227246, 30)])
def test_t_table_critical_values_give_p_005(t, df):
    assert paired_t_test(*with_t(t, df + 1)).p == pytest.approx(0.05, rel=1e-6)


def test_paired_t_test_known_case():
    # differences -0.10, -0.09, -0.10: mean -0.09667, sd 0.005774, t = -29 with 2 df
    r = paired_t_test([0.70, 0.73, 0.71], [0.80, 0.82, 0.81])
    assert r.n == 3 and r.mean_diff == pytest.approx(-0.29 / 3, rel=1e-12)
    assert r.t == pytest.approx(-29.0, rel=1e-9)
    assert r.p == pytest.approx(1 - 29 / math.sqrt(2 + 29**2), rel=1e-6)


def test_paired_t_test_edge_cases():
    assert paired_t_test([1.0, 2.0], [0.5, 1.5]).p == 0.0  # identical differences: no spread at all
    assert paired_t_test([1.0, 2.0], [1.0, 2.0]).p == 1.0
    assert math.isnan(paired_t_test([1.0], [0.0]).p)
    with pytest.raises(ValueError):
        paired_t_test([1.0, 2.0], [1.0])
