"""benchmark.stats on inputs whose answers can be checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.stats import BOOTSTRAP_RESAMPLES, ci_half_width, mean_ci, paired_test

T_975_DF2 = 4.302652729749464  # scipy.stats.t.ppf(0.975, 2)


def test_mean_ci_of_one_two_three():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    # std 1, n 3: t(2) * 1 / sqrt(3)
    assert half == pytest.approx(T_975_DF2 / math.sqrt(3))
    assert half == pytest.approx(2.4841, abs=1e-4)


def test_mean_ci_ignores_nan_and_needs_two_values():
    assert mean_ci([1.0, math.nan, 2.0, 3.0]) == pytest.approx((2.0, 2.48414), abs=1e-5)
    mean, half = mean_ci([5.0])
    assert mean == 5.0 and math.isnan(half)
    assert all(math.isnan(v) for v in mean_ci([]))


def test_mean_ci_other_confidence_is_narrower():
    assert mean_ci([1, 2, 3], confidence=0.9)[1] < mean_ci([1, 2, 3])[1]


def test_ci_half_width_is_vectorised():
    half = ci_half_width(np.array([1.0, 1.0, 2.0]), np.array([3, 1, 3]))
    assert half[0] == pytest.approx(T_975_DF2 / math.sqrt(3))
    assert math.isnan(half[1])
    assert half[2] == pytest.approx(2 * half[0])


def test_constant_shift_with_eight_seeds_is_significant_by_wilcoxon():
    scratch = np.array([1.0, 1.2, 0.9, 1.1, 1.05, 0.95, 1.15, 1.0])
    result = paired_test(scratch - 0.1, scratch)
    assert result["method"] == "wilcoxon"
    assert result["n"] == 8
    assert result["p_value"] < 0.05
    assert result["mean_diff"] == pytest.approx(-0.1)
    assert result["ci_low"] == pytest.approx(-0.1) and result["ci_high"] == pytest.approx(-0.1)


def test_symmetric_noise_with_eight_seeds_is_not_significant():
    scratch = np.ones(8)
    noise = np.array([0.1, -0.1, 0.2, -0.2, 0.05, -0.05, 0.3, -0.3])
    result = paired_test(scratch + noise, scratch)
    assert result["method"] == "wilcoxon"
    assert result["p_value"] > 0.5
    assert result["ci_low"] < 0 < result["ci_high"]


def test_identical_values_are_never_significant():
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    result = paired_test(values, values)
    assert result["method"] == "identical"
    assert result["p_value"] == 1.0 and result["mean_diff"] == 0.0
    assert paired_test(values[:3], values[:3])["p_value"] == 1.0


def test_few_seeds_use_the_paired_t_test_with_a_bootstrap_interval():
    scratch = [1.0, 1.3, 0.8, 1.1]
    shifted = paired_test([v - 0.2 for v in scratch], scratch)
    assert shifted["method"] == "t-test" and shifted["n"] == 4
    # every difference is exactly -0.2: no variance, the shift is certain
    assert shifted["p_value"] == 0.0
    assert shifted["ci_low"] == pytest.approx(-0.2) and shifted["ci_high"] == pytest.approx(-0.2)

    # three same-signed but uneven differences: the t-test's p, by hand
    three = paired_test([0.9, 1.0, 1.2], [1.0, 1.3, 1.3])  # differences -0.1 -0.3 -0.1
    d = [-0.1, -0.3, -0.1]
    mean, sd = sum(d) / 3, math.sqrt(sum((x - sum(d) / 3) ** 2 for x in d) / 2)
    t = mean / (sd / math.sqrt(3))
    from scipy import stats as scipy_stats

    assert three["statistic"] == pytest.approx(t)
    assert three["p_value"] == pytest.approx(2 * scipy_stats.t.sf(abs(t), df=2))
    assert three["p_value"] > 0.05  # not "significant" on three seeds of this spread

    noisy = paired_test([1.1, 1.2, 0.7, 1.2], scratch)  # differences +0.1 -0.1 -0.1 +0.1
    assert noisy["p_value"] > 0.5
    assert noisy["ci_low"] < 0 < noisy["ci_high"]
    assert paired_test([1.1, 1.2, 0.7, 1.2], scratch) == noisy  # fixed seed: same answer


def test_fewer_than_two_pairs_has_no_test_and_nan_pairs_are_dropped():
    result = paired_test([1.0, math.nan, 3.0], [2.0, 2.0, math.nan])
    assert result["method"] == "none" and result["n"] == 1
    assert math.isnan(result["p_value"]) and result["mean_diff"] == -1.0
    assert paired_test([], [])["method"] == "none"


def test_unpaired_inputs_are_rejected():
    with pytest.raises(ValueError, match="same length"):
        paired_test([1.0, 2.0], [1.0])
