"""Seed statistics for sweep reports: mean, sample standard deviation (``statistics``) and a paired t-test
(``scipy.stats.ttest_rel``).

Why a paired t-test over seeds: two variants run with the same seed see the same batch order, so the
per-seed difference ``d_s = a_s - b_s`` cancels the noise the two runs share (and costs nothing when they
share none: the pairs are still independent). Under H0 (no difference) and normally distributed
differences, ``t = mean(d) / (sd(d) / sqrt(n))`` follows Student's t with ``n - 1`` degrees of freedom.

Why not an exact sign-flip (permutation) test, which needs no normality: with n seeds its smallest
two-sided p-value is ``2 / 2**n`` (0.25 for 3 seeds, 0.0625 for 5), so with the usual 3-5 seeds it can
never mark a difference. The t-test can, at the price of its normality assumption: read its p-values as a
guide to "larger than the seed spread", not as a guarantee.

Fewer than two values have no spread: their standard deviation and p-value are NaN (not an error), so a report
of a sweep with one seed still prints.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import NamedTuple

from scipy import stats as scipy_stats


def mean(xs: Sequence[float]) -> float:
    """The mean; NaN for no values."""
    return statistics.fmean(xs) if xs else math.nan


def std(xs: Sequence[float]) -> float:
    """Sample standard deviation (n - 1 in the denominator); NaN for fewer than two values."""
    return statistics.stdev(xs) if len(xs) >= 2 else math.nan


class TTest(NamedTuple):
    n: int  # pairs
    mean_diff: float  # mean of a - b
    t: float
    p: float  # two-sided


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> TTest:
    """Two-sided paired t-test of ``a`` against ``b`` (same order, same length >= 2).

    Identical differences (zero spread, where scipy gives NaN) give ``t = ±inf, p = 0`` when their mean is not 0,
    else ``p = 1``.
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    n = len(a)
    d = [x - y for x, y in zip(a, b)]
    m = mean(d)
    if n < 2:
        return TTest(n, m, math.nan, math.nan)
    if std(d) == 0.0:
        return TTest(n, m, 0.0, 1.0) if m == 0.0 else TTest(n, m, math.copysign(math.inf, m), 0.0)
    r = scipy_stats.ttest_rel(a, b)
    return TTest(n, m, float(r.statistic), float(r.pvalue))
