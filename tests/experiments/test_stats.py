"""The pure-math paired t-test against closed forms, table values and (when installed) scipy."""

from __future__ import annotations

import math
import random

import pytest

from snlu.experiments.stats import betainc, mean, paired_t_test, std, t_two_sided_p


def test_mean_and_sample_std():
    assert mean([0.80, 0.82, 0.81]) == pytest.approx(0.81, abs=1e-15)
    assert std([0.80, 0.82, 0.81]) == pytest.approx(0.01, rel=1e-12)
    assert std([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) == pytest.approx(math.sqrt(32 / 7), rel=1e-14)
    assert math.isnan(std([1.0])) and math.isnan(mean([]))


@pytest.mark.parametrize("x", [0.01, 0.2, 0.5, 0.77, 0.999])
def test_betainc_closed_forms(x):
    assert betainc(1, 1, x) == pytest.approx(x, rel=1e-12)  # uniform
    assert betainc(3, 1, x) == pytest.approx(x**3, rel=1e-12)
    assert betainc(1, 4, x) == pytest.approx(1 - (1 - x) ** 4, rel=1e-12)
    assert betainc(2.5, 0.5, x) == pytest.approx(1 - betainc(0.5, 2.5, 1 - x), rel=1e-12)  # symmetry


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.5, 12.706, 40.0])
def test_t_tail_closed_forms_for_one_and_two_degrees_of_freedom(t):
    assert t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-10, abs=1e-14)  # Cauchy
    assert t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10, abs=1e-14)
    assert t_two_sided_p(-t, 2) == t_two_sided_p(t, 2)


@pytest.mark.parametrize("t,df", [(12.7062047, 1), (4.30265273, 2), (2.77644511, 4), (2.22813885, 10),
                                  (2.04227246, 30)])
def test_t_table_critical_values_give_p_005(t, df):
    assert t_two_sided_p(t, df) == pytest.approx(0.05, rel=1e-6)


def test_large_df_tends_to_the_normal():
    assert t_two_sided_p(1.959963985, 1e7) == pytest.approx(0.05, rel=1e-5)


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


def test_against_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for n in (2, 3, 5, 8, 30):
        a = [rng.gauss(0.8, 0.01) for _ in range(n)]
        b = [x + rng.gauss(0.003, 0.01) for x in a]
        ref = scipy_stats.ttest_rel(a, b)
        ours = paired_t_test(a, b)
        assert ours.t == pytest.approx(ref.statistic, rel=1e-9)
        assert ours.p == pytest.approx(ref.pvalue, rel=1e-8)
