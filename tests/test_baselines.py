"""Baselines on tiny hand-checked series; Naive2's pieces against statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.tsa.seasonal import seasonal_decompose
from statsmodels.tsa.stattools import acf as statsmodels_acf

from benchmark.data.sources import load_source
from benchmark.forecasters.baselines import BASELINES
from benchmark.forecasters.contract import Forecaster
from benchmark.forecasters.naive import acf, seasonal_indices, seasonality_test
from benchmark.spec.errors import DataError
from benchmark.spec.sections import DataSpec

PATTERN = np.array([0.8, 1.2, 1.0, 1.0])  # multiplicative, mean 1, m = 4


def seasonal_series(n: int, level: float = 10.0) -> np.ndarray:
    return level * PATTERN[np.arange(n) % 4]


def test_registry_names():
    assert BASELINES.names() == ["arima", "ets", "mean", "mstl", "mstl_every_origin", "naive", "naive2",
                                 "seasonal_naive", "theta"]


def test_multi_step_forecasts_by_hand():
    history = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(BASELINES.get("naive").forecast(history, 3, 2), [5, 5, 5])
    np.testing.assert_array_equal(BASELINES.get("seasonal_naive").forecast(history, 5, 2),
                                  [4, 5, 4, 5, 4])
    np.testing.assert_array_equal(BASELINES.get("mean").forecast(history, 2, 2), [3, 3])
    # too short for any seasonality test: Naive2 is Naive
    np.testing.assert_array_equal(BASELINES.get("naive2").forecast(history, 3, 2), [5, 5, 5])


def test_one_step_uses_only_the_past_and_the_history():
    values = np.array([100.0, 1, 2, 3, 4, 5, 6, 7])  # value 100 lies before the history
    args = dict(values=values, history_start=1, test_start=5, end=8, season_length=2)
    np.testing.assert_array_equal(BASELINES.get("naive").one_step(**args), [4, 5, 6])
    np.testing.assert_array_equal(BASELINES.get("seasonal_naive").one_step(**args), [3, 4, 5])
    np.testing.assert_array_equal(BASELINES.get("mean").one_step(**args), [2.5, 2.5, 2.5])
    np.testing.assert_array_equal(BASELINES.get("naive2").one_step(**args), [4, 5, 6])


@pytest.mark.parametrize("name", ["naive", "seasonal_naive", "naive2", "mean"])
def test_one_step_prediction_at_t_ignores_values_from_t_on(name):
    rng = np.random.default_rng(1)
    values = 10 + seasonal_series(80) + rng.random(80)
    baseline = BASELINES.get(name)
    reference = baseline.one_step(values, 8, 60, 80, 4)
    for t in (60, 70, 79):
        changed = values.copy()
        changed[t:] = 1e6
        changed[:8] = -1e6  # before the history: never used either
        again = baseline.one_step(changed, 8, 60, 80, 4)
        np.testing.assert_array_equal(again[:t - 60 + 1], reference[:t - 60 + 1])


@pytest.mark.parametrize("name", ["naive", "seasonal_naive", "naive2", "mean"])
@pytest.mark.parametrize("horizon", [1, 3])
def test_every_naive_baseline_meets_the_forecaster_contract(name, horizon):
    """fit on the history, forecast from origins: one-step forecasts are the one_step rule (what is
    estimated comes from the history alone), longer ones the forecast from the end of series[:t];
    values from the origin on, and before the history, are never used."""
    rng = np.random.default_rng(2)
    values = 10 + seasonal_series(80) + rng.random(80)
    baseline, origins = BASELINES.get(name), np.array([60, 66, 77])
    forecaster = baseline.forecaster(4)
    assert isinstance(forecaster, Forecaster) and not forecaster.facts.needs_training
    out = forecaster.fit(values[8:60]).forecast(values[8:], origins - 8, horizon)  # [n_origins, horizon]
    if horizon == 1:
        expected = baseline.one_step(values, 8, 60, 78, 4)[origins - 60][:, None]
    else:
        expected = np.stack([baseline.forecast(values[8:t], horizon, 4) for t in origins])
    np.testing.assert_array_equal(out, expected)
    for i, t in enumerate(origins):
        changed = values.copy()
        changed[t:] = 1e6
        again = forecaster.fit(changed[8:60]).forecast(changed[8:], origins[:i + 1] - 8, horizon)
        np.testing.assert_array_equal(again[i], out[i])


def test_the_contract_refuses_origins_inside_the_history_and_forecasts_before_fit():
    forecaster = BASELINES.get("naive").forecaster(4)
    with pytest.raises(DataError, match="call fit"):
        forecaster.forecast(np.arange(10.0), np.array([8]), 1)
    with pytest.raises(DataError, match=r"origins must lie in \[8, 10\]"):
        forecaster.fit(np.arange(8.0)).forecast(np.arange(10.0), np.array([5]), 1)


def test_naive2_reproduces_a_multiplicative_season():
    history = seasonal_series(22)  # ends at phase 1; next phases 2, 3, 0, 1, ...
    assert seasonality_test(history, 4)
    np.testing.assert_allclose(seasonal_indices(history, 4), PATTERN)
    forecast = BASELINES.get("naive2").forecast(history, 6, 4)
    np.testing.assert_allclose(forecast, 10 * PATTERN[np.arange(22, 28) % 4])
    one_step = BASELINES.get("naive2").one_step(seasonal_series(40), 2, 24, 40, 4)
    np.testing.assert_allclose(one_step, seasonal_series(40)[24:])


def test_seasonality_test_decisions():
    rng = np.random.default_rng(0)
    assert not seasonality_test(rng.standard_normal(200) + 10, 24)
    assert seasonality_test(10 + np.sin(2 * np.pi * np.arange(200) / 24), 24)
    assert not seasonality_test(seasonal_series(11), 4)  # n < 3 m
    assert not seasonality_test(np.ones(50), 4)  # constant: no autocorrelation at all


def test_acf_matches_statsmodels():
    values = np.random.default_rng(2).standard_normal(100).cumsum()
    np.testing.assert_allclose(acf(values, 24), statsmodels_acf(values, nlags=24, fft=False))


def test_seasonal_indices_match_classical_decomposition(data_dir):
    frame = load_source(DataSpec("m4", {"series": ["H1"]}), data_dir)
    history = frame["y"].to_numpy()
    decomposition = seasonal_decompose(history, model="multiplicative", period=24)
    np.testing.assert_allclose(seasonal_indices(history, 24), decomposition.seasonal[:24])


def test_non_positive_history_is_not_decomposed():
    history = seasonal_series(40) - 9.0  # has values <= 0
    np.testing.assert_array_equal(seasonal_indices(history, 4), np.ones(4))
    assert BASELINES.get("naive2").forecast(history, 3, 4).tolist() == [history[-1]] * 3


def test_seasonal_naive_needs_a_full_season():
    with pytest.raises(DataError, match="seasonal_naive needs a history of at least 24 point"):
        BASELINES.get("seasonal_naive").forecast(np.arange(10.0), 5, 24)
