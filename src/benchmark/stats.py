"""Seed statistics for the leaderboard: confidence intervals of a mean and the paired test of a
transfer mode against training from scratch.

Pure functions over numbers (numpy and scipy only): no files, no frames, no logging.
:func:`mean_ci` ignores NaN values and :func:`paired_test` drops a pair when either side is NaN
(its ``n`` says how many pairs it used).

Which test, and why:

- ``n >= 6`` paired seeds with at least one non-zero difference: the Wilcoxon signed-rank test
  (two-sided, ``scipy.stats.wilcoxon``). Below 6 pairs its smallest possible two-sided p-value is
  2/2**5 = 0.0625, so it can never be significant there.
- ``2 <= n < 6``: the paired t-test (``scipy.stats.ttest_rel``) for the p-value, with a paired
  bootstrap percentile interval of the mean difference (10,000 resamples, fixed seed). A bootstrap
  p-value is badly anti-conservative with 3 seeds (three same-signed differences give p = 0.0002,
  where the exact sign test gives 0.25), so it is not used for significance.
- every difference exactly zero (``n >= 2``): method ``"identical"``, p-value 1.
- ``n < 2``: method ``"none"``, p-value NaN.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20240601
WILCOXON_MIN_PAIRS = 6


def ci_half_width(std, n, confidence: float = 0.95):
    """Half-width of the t-distribution confidence interval of a mean: ``t(n-1) * std / sqrt(n)``.

    Vectorised: ``std`` and ``n`` may be scalars or arrays of the same shape (sample standard
    deviation with ddof=1, and the number of values). ``n < 2`` gives NaN.
    """
    std = np.asarray(std, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        dof = np.where(n >= 2, n - 1, np.nan)
        t = scipy_stats.t.ppf(0.5 + confidence / 2, dof)
        half = np.where(n >= 2, t * std / np.sqrt(n), np.nan)
    return half[()] if half.ndim == 0 else half


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """``(mean, half_width)`` of the ``confidence`` t-interval of the mean of ``values``.

    NaN values are ignored. One value: half-width NaN; no values: ``(nan, nan)``.
    Example: ``mean_ci([1, 2, 3]) == (2.0, 2.4841...)`` (t(2)=4.3027, std 1, sqrt(3)).
    """
    x = _finite(values)
    if x.size == 0:
        return math.nan, math.nan
    if x.size < 2:
        return float(x.mean()), math.nan
    return float(x.mean()), float(ci_half_width(x.std(ddof=1), x.size, confidence))


def paired_test(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """Two-sided paired test of ``a`` against ``b`` (same length, element i of both from seed i).

    Returns ``dict(method, statistic, p_value, n, mean_diff, ci_low, ci_high)`` where
    ``mean_diff = mean(a - b)`` (negative: ``a`` is lower, i.e. better for an error metric) and
    ``[ci_low, ci_high]`` is a ``confidence`` interval of that mean difference:

    - ``method="wilcoxon"`` (n >= 6): signed-rank statistic and p-value from scipy; the interval is
      the t-interval of the differences.
    - ``method="t-test"`` (2 <= n < 6): ``statistic`` and ``p_value`` of the paired t-test (when
      every difference is the same non-zero number the p-value is 0); the interval is the
      percentile interval of 10,000 paired bootstrap resamples of the mean difference (fixed
      seed). With so few seeds, read the interval more than the p-value.
    - ``method="identical"``: every difference is zero; p-value 1.
    - ``method="none"``: fewer than 2 usable pairs; p-value NaN.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_test needs two 1-d sequences of the same length, got shapes "
                         f"{a.shape} and {b.shape}: pair the values by seed first")
    keep = np.isfinite(a) & np.isfinite(b)
    diff = a[keep] - b[keep]
    n = int(diff.size)
    result = dict(method="none", statistic=math.nan, p_value=math.nan, n=n,
                  mean_diff=float(diff.mean()) if n else math.nan, ci_low=math.nan, ci_high=math.nan)
    if n < 2:
        return result
    if np.all(diff == 0):
        return {**result, "method": "identical", "statistic": 0.0, "p_value": 1.0,
                "ci_low": 0.0, "ci_high": 0.0}
    if n >= WILCOXON_MIN_PAIRS:
        test = scipy_stats.wilcoxon(diff, alternative="two-sided")
        mean, half = mean_ci(diff, confidence)
        return {**result, "method": "wilcoxon", "statistic": float(test.statistic),
                "p_value": float(test.pvalue), "ci_low": mean - half, "ci_high": mean + half}
    interval = _bootstrap(diff, confidence)
    if np.all(diff == diff[0]):  # zero variance: the t statistic is infinite
        statistic, p_value = math.copysign(math.inf, float(diff[0])), 0.0
    else:
        test = scipy_stats.ttest_rel(a[keep], b[keep])
        statistic, p_value = float(test.statistic), float(test.pvalue)
    return {**result, **interval, "method": "t-test", "statistic": statistic, "p_value": p_value}


def _bootstrap(diff: np.ndarray, confidence: float) -> dict:
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    # [B, n] resampled indices -> [B] resampled mean differences
    means = diff[rng.integers(0, diff.size, size=(BOOTSTRAP_RESAMPLES, diff.size))].mean(axis=1)
    observed = float(diff.mean())
    far_side = np.count_nonzero(means <= 0) if observed > 0 else np.count_nonzero(means >= 0)
    p_value = min(1.0, 2 * (far_side + 1) / (BOOTSTRAP_RESAMPLES + 1))
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return dict(method="bootstrap", statistic=observed, p_value=float(p_value),
                ci_low=float(low), ci_high=float(high))


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[~np.isnan(x)]
