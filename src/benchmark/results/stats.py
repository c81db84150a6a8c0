"""Statistics for the leaderboard: seed intervals and paired tests, forecast-comparison tests on
per-origin errors, multiple-comparison correction, skill scores, their aggregation across a grid,
and pairwise win rates.

Pure functions over numbers (numpy and scipy only): no files, no frames, no logging.
:func:`mean_ci` ignores NaN values and :func:`paired_test` drops a pair when either side is NaN
(its ``n`` says how many pairs it used).

Which seed test, and why (:func:`paired_test`):

- ``n >= 6`` paired seeds with at least one non-zero difference: the Wilcoxon signed-rank test
  (two-sided, ``scipy.stats.wilcoxon``). Below 6 pairs its smallest possible two-sided p-value is
  2/2**5 = 0.0625, so it can never be significant there.
- ``2 <= n < 6``: the paired t-test (``scipy.stats.ttest_rel``) for the p-value, with a paired
  bootstrap percentile interval of the mean difference (10,000 resamples, fixed seed). A bootstrap
  p-value is badly anti-conservative with 3 seeds (three same-signed differences give p = 0.0002,
  where the exact sign test gives 0.25), so it is not used for significance.
- every difference exactly zero (``n >= 2``): method ``"identical"``, p-value 1.
- ``n < 2``: method ``"none"``, p-value NaN.

Comparing two forecasts of the same test segment (:func:`diebold_mariano`): the Diebold-Mariano
test on the per-origin loss differential, with the Harvey, Leybourne and Newbold (1997) small-sample
correction and Student's t with ``n - 1`` degrees of freedom, as R's ``forecast::dm.test``.
Across a grid: :func:`holm` corrects a family of p-values, :func:`skill_score` and
:func:`geometric_mean_ratio` summarise error ratios against a reference forecast, and
:func:`win_rates` counts pairwise wins between methods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence

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


# loss of a forecast error, by name (``"precomputed"``: the inputs already are losses)
DM_LOSSES = {"absolute": np.abs, "precomputed": np.asarray, "squared": np.square}
# p-value of a t statistic with ``dof`` degrees of freedom, by alternative hypothesis
DM_ALTERNATIVES = {
    "greater": lambda statistic, dof: scipy_stats.t.sf(statistic, dof),
    "less": lambda statistic, dof: scipy_stats.t.cdf(statistic, dof),
    "two-sided": lambda statistic, dof: min(1.0, 2 * scipy_stats.t.sf(abs(statistic), dof)),
}


@dataclass(frozen=True)
class DieboldMarianoResult:
    """Outcome of :func:`diebold_mariano`; ``variance`` names the long-run variance estimator used
    (``"truncated"``, ``"bartlett"``, or ``""`` when the test was not computed) and ``note`` says why
    in plain words whenever the result is not an ordinary test (else ``""``)."""

    statistic: float
    p_value: float
    mean_difference: float
    n: int
    horizon: int
    alternative: str
    variance: str
    note: str


def diebold_mariano(errors_a, errors_b, horizon: int | None = None, loss: str = "squared",
                    alternative: str = "two-sided") -> DieboldMarianoResult:
    """Diebold-Mariano test with the Harvey-Leybourne-Newbold correction of forecast ``a`` against ``b``.

    Inputs, paired by forecast origin (in time order, origins one step apart):

    - 1-D ``[n_origins]``: one forecast error ``e = y - yhat`` per origin;
    - 2-D ``[n_origins, horizon]``: the errors of each step of each origin's multi-step forecast. Each
      origin is reduced to its mean loss over the steps, then tested; ``horizon`` defaults to the
      number of columns (consecutive origins' forecast windows overlap by ``horizon - 1`` steps,
      which is what the autocovariance lags account for).

    ``loss``: ``"squared"`` or ``"absolute"`` error, or ``"precomputed"`` when the inputs already are
    losses (e.g. per-origin scaled errors). The loss differential is ``d_t = L(a_t) - L(b_t)``, so
    ``mean_difference < 0`` and ``statistic < 0`` mean ``a`` is more accurate. ``alternative``:
    ``"two-sided"``; ``"less"`` (H1: ``E[d] < 0``, ``a`` better); ``"greater"`` (H1: ``a`` worse).

    Long-run variance of ``mean(d)``: ``(gamma_0 + 2 * sum_{k=1}^{h-1} gamma_k) / n`` with
    autocovariances ``gamma_k`` (divisor ``n``, as DM 1995 and R's ``forecast::dm.test``); when that
    truncated estimate is not positive (possible for ``h > 1``) the Bartlett (Newey-West) weights
    ``1 - k/h`` are used instead, which are never negative, and ``variance`` says so. The statistic
    ``mean(d) / sqrt(variance)`` is multiplied by ``sqrt((n + 1 - 2h + h(h-1)/n) / n)`` and referred to
    Student's t with ``n - 1`` degrees of freedom (HLN 1997).

    An origin whose loss is not finite on either side is dropped (2-D: any step). Fewer than 3
    usable origins, or ``n <= horizon``: NaN statistic and p-value. Every ``d_t`` zero: statistic 0,
    p-value 1. Every ``d_t`` the same non-zero number: statistic +-inf (the difference is certain).
    """
    if loss not in DM_LOSSES:
        raise ValueError(f"Unknown loss {loss!r}. Known: {', '.join(DM_LOSSES)}.")
    if alternative not in DM_ALTERNATIVES:
        raise ValueError(f"Unknown alternative {alternative!r}. Known: {', '.join(DM_ALTERNATIVES)}.")
    a = np.asarray(errors_a, dtype=float)
    b = np.asarray(errors_b, dtype=float)
    if a.shape != b.shape or a.ndim not in (1, 2) or (a.ndim == 2 and a.shape[1] == 0):
        raise ValueError(f"diebold_mariano needs two arrays of the same shape, [n_origins] or "
                         f"[n_origins, horizon], got shapes {a.shape} and {b.shape}")
    if horizon is None:
        horizon = a.shape[1] if a.ndim == 2 else 1
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a whole number >= 1, got {horizon!r}")
    h = int(horizon)
    loss_a, loss_b = DM_LOSSES[loss](a), DM_LOSSES[loss](b)
    with np.errstate(invalid="ignore"):
        if a.ndim == 2:  # [n_origins, horizon] -> [n_origins]: mean loss of each origin's forecast
            keep = np.isfinite(loss_a).all(axis=1) & np.isfinite(loss_b).all(axis=1)
            d = loss_a[keep].mean(axis=1) - loss_b[keep].mean(axis=1)
        else:
            keep = np.isfinite(loss_a) & np.isfinite(loss_b)
            d = loss_a[keep] - loss_b[keep]
    n = int(d.size)
    mean = float(d.mean()) if n else math.nan
    result = dict(mean_difference=mean, n=n, horizon=h, alternative=alternative)
    if n < 3 or n <= h:
        return DieboldMarianoResult(math.nan, math.nan, **result, variance="",
                                    note=f"too few origins: {n} usable, the test needs at least 3 and "
                                         f"more than the horizon ({h})")
    if np.all(d == 0):
        return DieboldMarianoResult(0.0, 1.0, **result, variance="",
                                    note="identical losses: every loss differential is zero")
    if np.all(d == d[0]):
        statistic = math.copysign(math.inf, mean)
        p_value = float(DM_ALTERNATIVES[alternative](statistic, n - 1))
        return DieboldMarianoResult(statistic, p_value, **result, variance="",
                                    note="constant non-zero loss differential: no variance")
    centered = d - mean
    # gamma_k = sum_t (d_t - mean)(d_{t-k} - mean) / n, k = 0 .. h-1
    gammas = np.array([centered[k:] @ centered[:n - k] / n for k in range(h)])
    variance, estimator, note = (gammas[0] + 2 * gammas[1:].sum()) / n, "truncated", ""
    if not variance > 0:
        weights = 1 - np.arange(1, h) / h
        variance, estimator = (gammas[0] + 2 * (weights * gammas[1:]).sum()) / n, "bartlett"
        note = (f"the truncated long-run variance ({h - 1} lags) was not positive; "
                f"used Bartlett (Newey-West) weights")
    correction = math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    statistic = mean / math.sqrt(variance) * correction
    p_value = float(DM_ALTERNATIVES[alternative](statistic, n - 1))
    return DieboldMarianoResult(statistic, p_value, **result, variance=estimator, note=note)


class HolmResult(NamedTuple):
    """Holm-adjusted p-values and ``adjusted <= alpha``, both shaped like the input."""

    adjusted: np.ndarray
    reject: np.ndarray


def holm(p_values, alpha: float = 0.05) -> HolmResult:
    """Holm-Bonferroni step-down adjustment of one family of p-values (any shape).

    With the ``m`` non-NaN p-values sorted ascending, ``adjusted_(i) = max_{j <= i} min(1,
    (m - j + 1) * p_(j))``: monotone in the raw p-values, capped at 1, controlling the family-wise
    error rate at ``alpha`` under any dependence. NaN entries stay NaN, are not counted in ``m`` and
    are never rejected. Example: ``[0.01, 0.04, 0.03, 0.005] -> [0.03, 0.06, 0.06, 0.02]``.
    """
    p = np.asarray(p_values, dtype=float)
    flat = p.ravel()
    present = np.flatnonzero(~np.isnan(flat))
    outside = flat[present][(flat[present] < 0) | (flat[present] > 1)]
    if outside.size:
        raise ValueError(f"p-values must lie in [0, 1] (or be NaN), got {outside.tolist()}")
    order = present[np.argsort(flat[present], kind="stable")]
    m = order.size
    adjusted = flat.copy()
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * flat[order]))
    adjusted = adjusted.reshape(p.shape)
    return HolmResult(adjusted, adjusted <= alpha)


def skill_score(error_model, error_reference):
    """Skill against a reference forecast: ``1 - error_model / error_reference`` (vectorised, broadcast).

    1 is a perfect forecast, 0 no better than the reference, negative worse. NaN where either error
    is not finite or the reference error is not positive (a ratio to a zero error means nothing).
    Scalars in, a numpy scalar out.
    """
    model = np.asarray(error_model, dtype=float)
    reference = np.asarray(error_reference, dtype=float)
    valid = np.isfinite(model) & np.isfinite(reference) & (reference > 0)
    score = np.where(valid, 1 - model / np.where(valid, reference, 1.0), np.nan)
    return score[()] if score.ndim == 0 else score


@dataclass(frozen=True)
class GeometricMeanRatio:
    """Outcome of :func:`geometric_mean_ratio`: the estimate, its bootstrap interval ``[low, high]``,
    the number of ratios used ``n`` and of ratios ``dropped`` (not positive or not finite)."""

    estimate: float
    low: float
    high: float
    n: int
    dropped: int
    confidence: float


def geometric_mean_ratio(ratios, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                         confidence: float = 0.95) -> GeometricMeanRatio:
    """Geometric mean of error ratios (model error / reference error), one per unit, with a
    percentile bootstrap interval over units.

    ``ratios``: any shape, one value per unit (e.g. per (target, size), seeds already averaged); the
    units are resampled with replacement ``resamples`` times (fixed ``seed``: the same input gives
    the same interval) and the interval is the central ``confidence`` range of the resampled
    geometric means. Below 1: the model's errors are smaller than the reference's on (geometric)
    average. Ratios that are not positive or not finite are dropped and counted in ``dropped``.
    No usable ratio: all NaN; one: the interval is NaN (one unit says nothing of the spread).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    r = np.asarray(ratios, dtype=float).ravel()
    with np.errstate(invalid="ignore"):
        usable = r[np.isfinite(r) & (r > 0)]
    n, dropped = int(usable.size), int(r.size - usable.size)
    if n == 0:
        return GeometricMeanRatio(math.nan, math.nan, math.nan, 0, dropped, confidence)
    if np.all(usable == usable[0]):  # exact, without a log/exp round trip
        value = float(usable[0])
        low = high = value if n > 1 else math.nan
        return GeometricMeanRatio(value, low, high, n, dropped, confidence)
    logs = np.log(usable)
    estimate = float(np.exp(logs.mean()))
    if n < 2:
        return GeometricMeanRatio(estimate, math.nan, math.nan, n, dropped, confidence)
    rng = np.random.default_rng(seed)
    # [resamples, n] resampled unit indices -> [resamples] mean log ratios
    means = logs[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.exp(np.quantile(means, [tail, 1 - tail]))
    return GeometricMeanRatio(estimate, float(low), float(high), n, dropped, confidence)


def win_rates(errors) -> np.ndarray:
    """Pairwise win rates between methods: ``[n_units, n_methods]`` errors -> ``[n_methods, n_methods]``.

    ``W[i, j]`` is the share of units where method ``i`` has a strictly lower error than method
    ``j``, a tie counting half, over the units where both errors are not NaN (NaN where there is
    none); so ``W[i, j] + W[j, i] == 1``. The diagonal is NaN. Columns keep the caller's order.
    """
    e = np.asarray(errors, dtype=float)
    if e.ndim != 2:
        raise ValueError(f"win_rates needs a 2-d array [n_units, n_methods], got shape {e.shape}")
    # [units, methods, 1] against [units, 1, methods] -> [units, methods, methods]
    row, column = e[:, :, None], e[:, None, :]
    both = ~np.isnan(row) & ~np.isnan(column)
    wins = np.count_nonzero((row < column) & both, axis=0) + 0.5 * np.count_nonzero(
        (row == column) & both, axis=0)
    counts = np.count_nonzero(both, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(counts > 0, wins / counts, np.nan)
    np.fill_diagonal(rates, np.nan)
    return rates


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

