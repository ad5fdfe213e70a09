"""Seed statistics for sweep reports: mean, sample standard deviation, and a paired t-test in pure ``math``.

Why a paired t-test over seeds: two variants run with the same seed see the same batch order, so the
per-seed difference ``d_s = a_s - b_s`` cancels the noise the two runs share (and costs nothing when they
share none: the pairs are still independent). Under H0 (no difference) and normally distributed
differences, ``t = mean(d) / (sd(d) / sqrt(n))`` follows Student's t with ``n - 1`` degrees of freedom.

Why not an exact sign-flip (permutation) test, which needs no normality: with n seeds its smallest
two-sided p-value is ``2 / 2**n`` (0.25 for 3 seeds, 0.0625 for 5), so with the usual 3-5 seeds it can
never mark a difference. The t-test can, at the price of its normality assumption: read its p-values as a
guide to "larger than the seed spread", not as a guarantee.

The two-sided tail of Student's t is a regularized incomplete beta function,
``P(|T| >= t) = I_x(df/2, 1/2)`` with ``x = df / (df + t**2)``, evaluated with the continued fraction of
Numerical Recipes (2nd ed., section 6.4, modified Lentz method). scipy is not a dependency of snlu.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple


def mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs) if xs else math.nan


def std(xs: Sequence[float]) -> float:
    """Sample standard deviation (n - 1 in the denominator); NaN for fewer than two values."""
    if len(xs) < 2:
        return math.nan
    m = mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _beta_cf(a: float, b: float, x: float, eps: float = 1e-15, max_iter: int = 500) -> float:
    """Continued fraction of the incomplete beta function (converges fast for x < (a + 1) / (a + b + 2))."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        for aa in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),  # even step
                   -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):  # odd step
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function ``I_x(a, b)`` for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_cf(a, b, x) / a
    return 1.0 - front * _beta_cf(b, a, 1.0 - x) / b  # the symmetric relation, where this side converges


def t_two_sided_p(t: float, df: float) -> float:
    """``P(|T| >= |t|)`` for Student's t with ``df`` degrees of freedom."""
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


class TTest(NamedTuple):
    n: int  # pairs
    mean_diff: float  # mean of a - b
    t: float
    p: float  # two-sided


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> TTest:
    """Two-sided paired t-test of ``a`` against ``b`` (same order, same length >= 2).

    Identical differences (zero spread) give ``t = ±inf, p = 0`` when their mean is not 0, else ``p = 1``.
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    n = len(a)
    if n < 2:
        return TTest(n, mean([x - y for x, y in zip(a, b)]), math.nan, math.nan)
    d = [x - y for x, y in zip(a, b)]
    m, s = mean(d), std(d)
    if s == 0.0:
        return TTest(n, m, 0.0, 1.0) if m == 0.0 else TTest(n, m, math.copysign(math.inf, m), 0.0)
    t = m / (s / math.sqrt(n))
    return TTest(n, m, t, t_two_sided_p(t, n - 1))
