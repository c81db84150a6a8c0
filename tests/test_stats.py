"""benchmark.results.stats on inputs whose answers can be checked by hand, plus one published worked example
of the Diebold-Mariano test and a cross-check of Holm's correction against statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from benchmark.results.stats import (
    BOOTSTRAP_RESAMPLES,
    ci_half_width,
    diebold_mariano,
    geometric_mean_ratio,
    holm,
    mean_ci,
    paired_test,
    skill_score,
    win_rates,
)

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


# Diebold-Mariano: a hand example with integer errors whose loss differential has integer deviations.
# errors_a = [2, 2, 1, 0, -1, 3, 3, 1, 0, 2], errors_b = [1, 1, 1, 1, 1, 1, 2, 1, 1, 1], squared loss:
#   d = a**2 - b**2 = [3, 3, 0, -1, 0, 8, 5, 0, -1, 3], n = 10, mean(d) = 20 / 10 = 2
#   d - 2 = [1, 1, -2, -3, -2, 6, 3, -2, -3, 1]
#   gamma_0 = (1 + 1 + 4 + 9 + 4 + 36 + 9 + 4 + 9 + 1) / 10 = 78 / 10 = 7.8
#   gamma_1 = (1*1 + 1*-2 + -2*-3 + -3*-2 + -2*6 + 6*3 + 3*-2 + -2*-3 + -3*1) / 10 = 14 / 10 = 1.4
HAND_A = [2.0, 2.0, 1.0, 0.0, -1.0, 3.0, 3.0, 1.0, 0.0, 2.0]
HAND_B = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]


def test_diebold_mariano_by_hand_one_step():
    result = diebold_mariano(HAND_A, HAND_B, horizon=1)
    # h = 1: variance = gamma_0 / n = 0.78; HLN factor sqrt((10 + 1 - 2 + 0) / 10) = sqrt(0.9)
    statistic = 2 / math.sqrt(0.78) * math.sqrt(0.9)  # = 2.14834...
    assert result.statistic == pytest.approx(statistic, abs=1e-10)
    assert result.statistic == pytest.approx(2.148345, abs=1e-6)
    assert result.p_value == pytest.approx(2 * scipy_stats.t.sf(statistic, df=9), abs=1e-10)
    assert result.mean_difference == pytest.approx(2.0, abs=1e-12)
    assert (result.n, result.horizon, result.variance, result.note) == (10, 1, "truncated", "")
    # a is worse (d > 0): "greater" (H1: a worse) is the half of the two-sided p, "less" its complement
    assert diebold_mariano(HAND_A, HAND_B, alternative="greater").p_value == pytest.approx(
        result.p_value / 2, abs=1e-12)
    assert diebold_mariano(HAND_A, HAND_B, alternative="less").p_value == pytest.approx(
        1 - result.p_value / 2, abs=1e-12)


def test_diebold_mariano_by_hand_two_steps():
    result = diebold_mariano(HAND_A, HAND_B, horizon=2)
    # h = 2: variance = (gamma_0 + 2 gamma_1) / n = (7.8 + 2.8) / 10 = 1.06
    # HLN factor sqrt((10 + 1 - 4 + 2*1/10) / 10) = sqrt(0.72)
    statistic = 2 / math.sqrt(1.06) * math.sqrt(0.72)  # = 1.64833...
    assert result.statistic == pytest.approx(statistic, abs=1e-10)
    assert result.statistic == pytest.approx(1.648327, abs=1e-6)
    assert result.p_value == pytest.approx(2 * scipy_stats.t.sf(statistic, df=9), abs=1e-10)
    assert (result.horizon, result.variance) == (2, "truncated")


def test_diebold_mariano_falls_back_to_bartlett_when_the_truncated_variance_is_negative():
    # precomputed losses against zero: d = [1, -1, 1, -1, 1, -1, 1, -1, 1, 1], mean 0.2
    # d - 0.2 = [0.8, -1.2, 0.8, -1.2, 0.8, -1.2, 0.8, -1.2, 0.8, 0.8]
    # gamma_0 = (6 * 0.64 + 4 * 1.44) / 10 = 0.96; gamma_1 = (8 * -0.96 + 0.64) / 10 = -0.704
    # truncated: (0.96 - 1.408) / 10 < 0; Bartlett weight 1 - 1/2: (0.96 - 0.704) / 10 = 0.0256
    losses = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 1.0]
    result = diebold_mariano(losses, np.zeros(10), horizon=2, loss="precomputed")
    statistic = 0.2 / math.sqrt(0.0256) * math.sqrt(0.72)
    assert result.statistic == pytest.approx(statistic, abs=1e-10)
    assert result.variance == "bartlett" and "Bartlett" in result.note
    assert diebold_mariano(losses, np.zeros(10), horizon=1, loss="precomputed").variance == "truncated"


# Errors named e_ets and e_arima in the published test; they match the out-of-sample example on
# the help page of R's forecast::dm.test (ets and auto.arima fitted to WWWusage[1:80], one-step
# errors on WWWusage[81:100]).
PUBLISHED_ETS = [0.002241270, -0.000661906, -1.200002613, -4.000218178, 3.799373533,
                 3.401005111, -1.199692125, -0.800490048, -1.200048999, 3.399847229,
                 7.000708948, 2.200989241, -4.800165569, -1.201043375, 3.400167556,
                 3.000709085, 0.400267950, -6.800169207, -2.401259050, 1.200112198]
PUBLISHED_ARIMA = [0.1209998, 8.0622269, -0.9189429, -1.7952436, 5.3431277, 2.0459823,
                   -0.6073261, 0.5516816, -0.7633238, 4.1229472, 5.8785333, 1.2828331,
                   -3.4854233, 1.1971370, 3.1709314, 2.3408457, 0.4962286, -5.9841362,
                   0.1537114, 0.4207951]


@pytest.mark.parametrize(("horizon", "loss", "two_sided", "greater", "less"), [
    (1, "squared", 0.8871, 0.5565, 0.4435),
    (10, "squared", 0.9362, 0.5319, 0.4681),
    (1, "absolute", 0.7818, 0.3909, 0.6091),
])
def test_diebold_mariano_reproduces_the_published_example(horizon, loss, two_sided, greater, less):
    """Published worked example: JuliaStats/HypothesisTests.jl, test/diebold_mariano.jl (testset
    "Diebold-Mariano tests", commit 1ff338b73290af481060e075f71e597b161d3db3), which tests its
    HLN-corrected DieboldMarianoTest(e_ets, e_arima) (default squared loss, h = 1; h = 10;
    loss = abs) against p-values published to 4 decimals for tails both, right and left. Their right
    tail is H1 E[d] > 0 (our "greater"), left is our "less". Reproduced to within half a unit of the
    last published digit."""
    def p_value(alternative):
        return diebold_mariano(PUBLISHED_ETS, PUBLISHED_ARIMA, horizon=horizon, loss=loss,
                               alternative=alternative).p_value

    assert p_value("two-sided") == pytest.approx(two_sided, abs=5e-5)
    assert p_value("greater") == pytest.approx(greater, abs=5e-5)
    assert p_value("less") == pytest.approx(less, abs=5e-5)


def test_identical_forecasts_show_no_difference():
    errors = np.array([0.3, -1.2, 0.5, 2.0, -0.7, 0.1, 0.9, -0.4])
    for alternative in ("two-sided", "less", "greater"):
        result = diebold_mariano(errors, errors.copy(), horizon=2, alternative=alternative)
        assert result.statistic == 0.0 and result.p_value == 1.0
        assert result.mean_difference == 0.0 and "identical" in result.note


def test_a_uniformly_better_forecast_is_significant_with_the_right_sign():
    rng = np.random.default_rng(7)
    noise = rng.standard_normal(200)
    better, worse = 0.5 * noise, noise + 0.5 * rng.standard_normal(200)
    result = diebold_mariano(better, worse)
    assert result.n == 200 and result.mean_difference < 0
    assert result.statistic < -3 and result.p_value < 0.01
    assert diebold_mariano(better, worse, alternative="less").p_value < 0.005
    assert diebold_mariano(better, worse, alternative="greater").p_value > 0.99
    assert diebold_mariano(better, worse, loss="absolute", horizon=3).p_value < 0.01


def test_swapping_the_forecasts_flips_the_sign_and_keeps_the_two_sided_p():
    forward = diebold_mariano(HAND_A, HAND_B, horizon=2)
    backward = diebold_mariano(HAND_B, HAND_A, horizon=2)
    assert backward.statistic == pytest.approx(-forward.statistic, abs=1e-12)
    assert backward.mean_difference == pytest.approx(-forward.mean_difference, abs=1e-12)
    assert backward.p_value == pytest.approx(forward.p_value, abs=1e-12)
    assert diebold_mariano(HAND_B, HAND_A, alternative="less").p_value == pytest.approx(
        diebold_mariano(HAND_A, HAND_B, alternative="greater").p_value, abs=1e-12)


def test_multi_step_errors_are_reduced_to_each_origin_mean_loss():
    rng = np.random.default_rng(3)
    errors_a, errors_b = rng.standard_normal((30, 4)), 1.3 * rng.standard_normal((30, 4))
    # [30, 4] errors -> [30] mean squared error per origin, tested with h = 4 (the width)
    per_origin = diebold_mariano((errors_a ** 2).mean(axis=1), (errors_b ** 2).mean(axis=1),
                                 horizon=4, loss="precomputed")
    result = diebold_mariano(errors_a, errors_b)
    assert result.horizon == 4 and result.n == 30
    assert result.statistic == pytest.approx(per_origin.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(per_origin.p_value, abs=1e-12)
    # an origin with one missing step on either side is dropped whole
    errors_a[5, 2], errors_b[11, 0] = math.nan, math.nan
    keep = np.ones(30, dtype=bool)
    keep[[5, 11]] = False
    dropped = diebold_mariano(errors_a, errors_b)
    assert dropped.n == 28
    assert dropped.statistic == pytest.approx(
        diebold_mariano(errors_a[keep], errors_b[keep], horizon=4).statistic, abs=1e-12)


def test_diebold_mariano_drops_nan_pairs_and_needs_enough_origins():
    a = [1.0, math.nan, 0.5, 2.0, 1.5, 0.2, 1.1, 0.3]
    b = [0.5, 1.0, math.nan, 1.0, 1.0, 0.4, 0.9, 0.1]
    result = diebold_mariano(a, b)
    clean = diebold_mariano([1.0, 2.0, 1.5, 0.2, 1.1, 0.3], [0.5, 1.0, 1.0, 0.4, 0.9, 0.1])
    assert result.n == 6 and result.statistic == pytest.approx(clean.statistic, abs=1e-12)

    too_few = diebold_mariano([1.0, 2.0], [0.5, 0.5])
    assert too_few.n == 2 and math.isnan(too_few.statistic) and math.isnan(too_few.p_value)
    assert "too few origins" in too_few.note
    assert math.isnan(diebold_mariano([1.0, 2.0, 3.0], [0.0, 0.5, 1.0], horizon=3).p_value)
    assert not math.isnan(diebold_mariano([1.0, 2.0, 3.0, 4.0], [0.0, 0.5, 1.0, 0.5],
                                          horizon=3).p_value)


def test_a_constant_loss_differential_is_certain():
    result = diebold_mariano([1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0], loss="precomputed")
    assert result.statistic == -math.inf and result.p_value == 0.0
    assert diebold_mariano([1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0], loss="precomputed",
                           alternative="greater").p_value == 1.0


def test_diebold_mariano_rejects_bad_arguments_with_the_known_values():
    with pytest.raises(ValueError, match="Unknown loss 'mse'. Known: absolute, precomputed, squared"):
        diebold_mariano([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], loss="mse")
    with pytest.raises(ValueError, match="Known: greater, less, two-sided"):
        diebold_mariano([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], alternative="two.sided")
    with pytest.raises(ValueError, match=r"shapes \(3,\) and \(2,\)"):
        diebold_mariano([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="horizon"):
        diebold_mariano([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], horizon=0)


def test_holm_by_hand():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> max(0.06, 0.04)
    adjusted, reject = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-12)
    assert reject.tolist() == [True, False, False, True]
    assert holm([0.01, 0.04, 0.03, 0.005], alpha=0.1).reject.tolist() == [True, True, True, True]
    assert holm([0.3, 0.6]).adjusted == pytest.approx([0.6, 0.6], abs=1e-12)
    assert holm([0.6, 0.9, 0.8]).adjusted == pytest.approx([1.0, 1.0, 1.0])  # capped at 1


def test_holm_passes_nan_through_and_keeps_the_shape():
    adjusted, reject = holm([[0.01, math.nan], [0.04, 0.03]])
    assert adjusted.shape == (2, 2) and math.isnan(adjusted[0, 1]) and not reject[0, 1]
    # m = 3 non-NaN values: 0.01 * 3, 0.03 * 2, max(0.04 * 1, 0.06)
    assert adjusted[0, 0] == pytest.approx(0.03) and adjusted[1, 1] == pytest.approx(0.06)
    assert adjusted[1, 0] == pytest.approx(0.06)
    assert np.isnan(holm([math.nan, math.nan]).adjusted).all()
    with pytest.raises(ValueError, match=r"\[0, 1\].*1.5"):
        holm([0.2, 1.5])


def test_holm_matches_statsmodels_and_is_monotone():
    rng = np.random.default_rng(11)
    for size in (1, 2, 5, 17, 60):
        p = rng.uniform(0, 1, size) ** 3
        p[: size // 3] = p[0]  # ties
        adjusted, reject = holm(p, alpha=0.05)
        expected_reject, expected, _, _ = multipletests(p, alpha=0.05, method="holm")
        assert adjusted == pytest.approx(expected, abs=1e-12)
        assert reject.tolist() == expected_reject.tolist()
        order = np.argsort(p)
        assert np.all(np.diff(adjusted[order]) >= 0)
        assert np.all(adjusted >= p) and np.all(adjusted <= 1)


def test_skill_score_by_hand_and_safe():
    assert skill_score(0.8, 1.0) == pytest.approx(0.2)
    assert skill_score(0.280, 0.207) == pytest.approx(1 - 0.280 / 0.207)  # worse than the reference
    scores = skill_score([0.5, 1.0, math.nan, 2.0, 1.0], [1.0, 0.0, 1.0, math.inf, 2.0])
    assert scores[0] == pytest.approx(0.5) and scores[4] == pytest.approx(0.5)
    assert np.isnan(scores[1:4]).all()
    assert skill_score([0.5, 1.5], 1.0) == pytest.approx([0.5, -0.5])  # broadcast


def test_geometric_mean_ratio_by_hand():
    balanced = geometric_mean_ratio([0.5, 2.0])  # sqrt(0.5 * 2) = 1
    assert balanced.estimate == pytest.approx(1.0, abs=1e-12) and balanced.n == 2
    constant = geometric_mean_ratio([0.8, 0.8, 0.8])
    assert (constant.estimate, constant.low, constant.high) == (0.8, 0.8, 0.8)
    assert geometric_mean_ratio([0.5, 2.0, 4.0]).estimate == pytest.approx(4.0 ** (1 / 3))


def test_geometric_mean_ratio_drops_unusable_ratios_and_counts_them():
    result = geometric_mean_ratio([0.5, -1.0, 0.0, math.nan, math.inf, 2.0])
    assert result.n == 2 and result.dropped == 4
    assert result.estimate == pytest.approx(1.0, abs=1e-12)
    one = geometric_mean_ratio([0.7, math.nan])
    assert one.estimate == 0.7 and math.isnan(one.low) and math.isnan(one.high)
    nothing = geometric_mean_ratio([])
    assert nothing.n == 0 and math.isnan(nothing.estimate)


def test_geometric_mean_ratio_interval_contains_the_estimate_and_is_reproducible():
    ratios = [0.62, 0.91, 1.05, 0.74, 0.88, 1.31, 0.69, 0.97]
    result = geometric_mean_ratio(ratios)
    assert result.estimate == pytest.approx(math.exp(np.mean(np.log(ratios))), abs=1e-12)
    assert min(ratios) < result.low < result.estimate < result.high < max(ratios)
    assert geometric_mean_ratio(ratios) == result  # fixed seed
    assert geometric_mean_ratio(ratios, seed=1) != result
    narrower = geometric_mean_ratio(ratios, confidence=0.5)
    assert result.low < narrower.low < narrower.high < result.high


def test_win_rates_by_hand_with_a_tie_and_a_missing_value():
    errors = np.array([
        [1.0, 2.0, 3.0],       # method 0 beats 1 and 2; 1 beats 2
        [2.0, 2.0, 1.0],       # 0 ties 1; 2 beats 0 and 1
        [math.nan, 1.0, 2.0],  # method 0 missing: only 1 against 2 counts (1 wins)
    ])
    rates = win_rates(errors)
    assert np.isnan(np.diag(rates)).all()
    assert rates[0, 1] == pytest.approx(1.5 / 2) and rates[1, 0] == pytest.approx(0.5 / 2)
    assert rates[0, 2] == pytest.approx(1 / 2) and rates[2, 0] == pytest.approx(1 / 2)
    assert rates[1, 2] == pytest.approx(2 / 3) and rates[2, 1] == pytest.approx(1 / 3)
    assert np.isnan(win_rates([[math.nan, 1.0], [math.nan, 2.0]])[0, 1])
    with pytest.raises(ValueError, match="n_units, n_methods"):
        win_rates([1.0, 2.0])
