"""The naive family of baselines: naive, seasonal naive, Naive2 and mean, and Naive2's seasonality.

``naive``, ``seasonal_naive``, ``naive2`` (the M4 competition's reference method) and ``mean``, as
:class:`~benchmark.forecasters.contract.Baseline` entries
(:data:`NAIVE_FAMILY`) whose forecasters (:class:`NaiveForecaster`) meet the contract of
:mod:`benchmark.forecasters.contract`; the seasonality test and seasonal indices of Naive2.

Each forecasts in two ways, and its forecaster from origins uses them:

* ``forecast(history, horizon, season_length)``: ``horizon`` steps from the end of ``history``
  (the M4 protocol; shape (horizon,)).
* ``one_step(values, history_start, test_start, end, season_length)``: a one-step-ahead
  prediction for every test point ``t`` in ``[test_start, end)`` from ``values[history_start:t]``
  only, the information a model with a lookback window has (shape (end - test_start,)). Anything
  estimated (the mean, Naive2's seasonal indices) comes from the history
  ``values[history_start:test_start]`` alone.

Naive2 follows the M4 statistical benchmarks (``Benchmarks and Evaluation.R`` in
Mcompetitions/M4-methods, the code behind the published figures):

* Seasonality test (``SeasonalityTest``): seasonal iff ``n >= 3 m`` and
  ``|acf_m| > 1.645 * sqrt((1 + 2 * sum_{k=1}^{m-1} acf_k^2) / n)`` (90 %), with the biased sample
  autocorrelation of R's ``acf``. (The Python ``ML_benchmarks.py`` forgets to square ``acf_1``;
  the R version, used for the published results, squares it.)
* Classical multiplicative decomposition (R's ``decompose``): a centred moving average of order
  ``m`` (``2 x m`` for even ``m``), ratios ``x / trend``, indices = mean ratio per position in the
  cycle (counted from the first point), normalised to mean 1.
* Naive on the deseasonalised series, reseasonalised with the indices continuing the cycle.

Two deliberate differences, neither of which touches M4 (all M4 series are positive and at least
3 m long): R's ``acf`` computes only ``floor(10 log10 n)`` lags by default, so R never finds
series shorter than ``10^(m/10)`` points (251 for m = 24) seasonal; here the lag-m autocorrelation
is always computed. And a history with a value <= 0 is treated as non-seasonal, because a
multiplicative decomposition of such a series is meaningless (Naive2 becomes Naive).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from benchmark.forecasters.contract import Baseline, checked_origins, checked_series
from benchmark.spec.catalog import ForecasterFacts
from benchmark.spec.errors import DataError


def _check_history(n_history: int, needed: int, name: str, season_length: int) -> None:
    if n_history < needed:
        raise DataError(f"baseline {name} needs a history of at least {needed} point(s) "
                        f"(season_length {season_length}) but got {n_history}: choose a larger "
                        "target_size or a smaller season_length.")


def _check_positions(values: np.ndarray, history_start: int, test_start: int, end: int) -> None:
    if not 0 <= history_start < test_start <= end <= len(values):
        raise ValueError(f"need 0 <= history_start < test_start <= end <= len(values), got "
                         f"{history_start}, {test_start}, {end} for {len(values)} values")


# --------------------------------------------------------------------------- naive


def _naive_forecast(history, horizon, season_length):
    history = checked_series(history)
    _check_history(len(history), 1, "naive", season_length)
    return np.full(horizon, history[-1])


def _naive_one_step(values, history_start, test_start, end, season_length):
    values = checked_series(values)
    _check_positions(values, history_start, test_start, end)
    return values[test_start - 1:end - 1].copy()




# --------------------------------------------------------------------------- seasonal naive


def _seasonal_naive_forecast(history, horizon, season_length):
    history = checked_series(history)
    _check_history(len(history), season_length, "seasonal_naive", season_length)
    last_season = history[len(history) - season_length:]
    return np.resize(last_season, horizon)  # repeats the last season: [m] -> [horizon]


def _seasonal_naive_one_step(values, history_start, test_start, end, season_length):
    values = checked_series(values)
    _check_positions(values, history_start, test_start, end)
    _check_history(test_start - history_start, season_length, "seasonal_naive", season_length)
    return values[test_start - season_length:end - season_length].copy()




# --------------------------------------------------------------------------- mean


def _mean_forecast(history, horizon, season_length):
    history = checked_series(history)
    _check_history(len(history), 1, "mean", season_length)
    return np.full(horizon, history.mean())


def _mean_one_step(values, history_start, test_start, end, season_length):
    values = checked_series(values)
    _check_positions(values, history_start, test_start, end)
    return np.full(end - test_start, values[history_start:test_start].mean())




# --------------------------------------------------------------------------- naive2


def acf(values: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelations at lags 0..max_lag as R's ``acf``: biased (divided by the total
    sum of squares around the mean). Shape (max_lag + 1,)."""
    values = checked_series(values)
    centred = values - values.mean()
    denominator = float(centred @ centred)
    lags = range(max_lag + 1)
    if denominator == 0:
        return np.full(max_lag + 1, np.nan)
    return np.array([float(centred[k:] @ centred[:len(centred) - k]) for k in lags]) / denominator


def seasonality_test(values: np.ndarray, season_length: int) -> bool:
    """The M4 90 % seasonality test (R ``SeasonalityTest``): ``|acf_m|`` above
    ``1.645 * sqrt((1 + 2 * sum_{k<m} acf_k^2) / n)``; never seasonal when ``m <= 1`` or
    ``n < 3 m``."""
    values = checked_series(values)
    n, m = len(values), season_length
    if m <= 1 or n < 3 * m:
        return False
    r = acf(values, m)
    if np.isnan(r).any():
        return False  # a constant series: R's test yields NA, i.e. not seasonal
    limit = 1.645 * math.sqrt((1 + 2 * float(np.sum(r[1:m] ** 2))) / n)
    return bool(abs(r[m]) > limit)


def seasonal_indices(values: np.ndarray, season_length: int) -> np.ndarray:
    """Multiplicative seasonal indices, shape (m,), index ``j`` for positions ``p % m == j``
    counted from the first value; all ones when the series is not seasonal (see module
    docstring)."""
    values = checked_series(values)
    m = season_length
    if m <= 1 or (values <= 0).any() or not seasonality_test(values, m):
        return np.ones(max(m, 1))
    if m % 2 == 0:
        weights = np.concatenate([[0.5], np.ones(m - 1), [0.5]]) / m  # 2 x m centred MA
    else:
        weights = np.ones(m) / m
    half = len(weights) // 2
    trend = np.full(len(values), np.nan)
    trend[half:len(values) - half] = np.convolve(values, weights, mode="valid")  # centred
    ratios = values / trend  # NaN at both ends, where the moving average is undefined
    padded = np.full(math.ceil(len(values) / m) * m, np.nan)
    padded[:len(values)] = ratios
    figure = np.nanmean(padded.reshape(-1, m), axis=0)  # [cycles, m] -> [m]
    figure = figure / figure.mean()
    if not np.isfinite(figure).all() or (figure <= 0).any():
        return np.ones(m)
    return figure


def _naive2_forecast(history, horizon, season_length):
    history = checked_series(history)
    _check_history(len(history), 1, "naive2", season_length)
    m = max(season_length, 1)
    indices = seasonal_indices(history, season_length)
    n = len(history)
    level = history[-1] / indices[(n - 1) % m]  # last deseasonalised value
    return level * indices[(n + np.arange(horizon)) % m]


def _naive2_one_step(values, history_start, test_start, end, season_length):
    values = checked_series(values)
    _check_positions(values, history_start, test_start, end)
    m = max(season_length, 1)
    indices = seasonal_indices(values[history_start:test_start], season_length)
    phase = np.arange(test_start, end) - history_start  # positions in the history's cycle
    return values[test_start - 1:end - 1] / indices[(phase - 1) % m] * indices[phase % m]


# --------------------------------------------------------------------------- the contract


@dataclass
class NaiveForecaster:
    """A naive-family rule as a :class:`~benchmark.forecasters.contract.Forecaster`: nothing is
    estimated at ``fit`` but the history's length; from each origin ``t``, ``horizon == 1`` uses the
    rule's one-step forecast (anything estimated, e.g. Naive2's indices, from the history alone),
    longer horizons its forecast from the end of ``series[:t]``."""

    end_forecast: Callable[[np.ndarray, int, int], np.ndarray]
    one_step: Callable[[np.ndarray, int, int, int, int], np.ndarray]
    season_length: int
    facts: ForecasterFacts = field(default_factory=ForecasterFacts)
    n_history: int | None = None

    def fit(self, history: np.ndarray) -> "NaiveForecaster":
        self.n_history = len(checked_series(history))
        return self

    def forecast(self, series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        series = checked_series(series)
        origins = checked_origins(origins, self.n_history, len(series), horizon, self.facts)
        m, n_history = self.season_length, self.n_history
        if not len(origins):
            return np.zeros((0, horizon))
        if horizon == 1:
            forecast = self.one_step(series, 0, n_history, int(origins.max()) + 1, m)
            forecast = np.asarray(forecast, float)[origins - n_history]
        else:  # multi-step from every origin, with only the values before it
            forecast = np.stack([self.end_forecast(series[:t], horizon, m) for t in origins])
        return np.asarray(forecast, float).reshape(len(origins), horizon)  # [n_origins, horizon]


def _entry(name: str, end_forecast: Callable, one_step: Callable, description: str) -> Baseline:
    def build(season_length: int, fit_seconds: float | None) -> NaiveForecaster:
        return NaiveForecaster(end_forecast, one_step, season_length)  # nothing to time: no fit

    return Baseline(name, build, end_forecast, one_step, description)


#: The naive family's registry entries (:data:`benchmark.forecasters.baselines.BASELINES` holds them).
NAIVE_FAMILY: tuple[Baseline, ...] = (
    _entry("naive", _naive_forecast, _naive_one_step, "the last observed value"),
    _entry("seasonal_naive", _seasonal_naive_forecast, _seasonal_naive_one_step, "the value one season earlier"),
    _entry("mean", _mean_forecast, _mean_one_step, "the mean of the history"),
    _entry("naive2", _naive2_forecast, _naive2_one_step, "naive on the seasonally adjusted series (M4 Naive2)"),
)
