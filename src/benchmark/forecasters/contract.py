"""The one forecaster contract: fit on a history, forecast from origins, capability facts on the forecaster.

Every way tlbench forecasts meets it: the naive family (:mod:`benchmark.forecasters.naive`),
statsforecast's methods (:mod:`benchmark.forecasters.statistical`), a trained model under its
regime (:class:`benchmark.models.regimes.RegimeForecaster`, structurally: the models layer sits
below this one) and a pretrained model on a whole source (:mod:`benchmark.forecasters.trained`).

Shapes and positions::

    forecaster.fit(history)                   history [n_history] (or [n_history, F] for a model)
    forecaster.forecast(series, origins, h)   series [T] (or [T, F]), origins [n_origins] -> [n_origins, h]

``series`` starts where ``history`` starts (``series[:n_history]`` is the history); each origin
``t`` (``n_history <= t <= T``) is forecast from ``series[:t]`` only, its ``h`` steps being the
positions ``t .. t + h - 1``. ``facts`` (:class:`~benchmark.spec.catalog.ForecasterFacts`) say
what a forecaster can do before it is asked: whether ``fit`` is a training run, the longest
horizon, the longest history, the transfer modes it refuses. Validation happens at the public
edge, once (:func:`checked_series`, :func:`checked_origins`); implementations trust their inputs.

:class:`Baseline` is what the registry of baselines (:mod:`benchmark.forecasters.baselines`)
holds: a name, its facts, the settings that change its numbers, and how to build an unfitted
forecaster for a season length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import numpy as np

from benchmark.spec.catalog import ForecasterFacts
from benchmark.spec.errors import DataError


@runtime_checkable
class Forecaster(Protocol):
    """Fit on a history, then forecast from origins (module docstring: shapes and positions)."""

    facts: ForecasterFacts

    def fit(self, history: np.ndarray) -> "Forecaster":
        """Estimate whatever the forecaster estimates from ``history`` alone; returns ``self``."""
        ...

    def forecast(self, series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """``[n_origins, horizon]``: from every origin ``t``, the next ``horizon`` values, from ``series[:t]`` only."""
        ...


def checked_series(values: np.ndarray) -> np.ndarray:
    """``values`` as a 1-D float64 array, or a ValueError naming its shape."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"expected a 1-D series, got shape {values.shape}")
    return values


def checked_origins(origins: np.ndarray, n_history: int | None, n_series: int, horizon: int,
                    facts: ForecasterFacts) -> np.ndarray:
    """``origins`` as int positions after a fitted history of ``n_history`` points and inside a
    series of ``n_series``, for a ``horizon`` the forecaster's facts allow; errors say which."""
    if n_history is None:
        raise DataError("forecast before fit: call fit(history) first.")
    if horizon < 1 or (facts.max_horizon is not None and horizon > facts.max_horizon):
        raise DataError(f"horizon {horizon} is outside what this forecaster supports "
                        f"(1 .. {facts.max_horizon or 'any'}).")
    origins = np.asarray(origins, int)
    if len(origins) and (origins.min() < n_history or origins.max() > n_series):
        raise DataError(f"origins must lie in [{n_history}, {n_series}] (after the fitted history, inside "
                        f"the series), got {origins.min()} .. {origins.max()}.")
    return origins


#: ``(season_length, fit_seconds) -> an unfitted forecaster``; ``fit_seconds`` is the per-series
#: time limit of a fit (``Settings.baseline_fit_seconds``), None for the forecaster's default.
Build = Callable[[int, "float | None"], Forecaster]


@dataclass(frozen=True)
class Baseline:
    """A registered baseline: ``forecaster(season_length, fit_seconds)`` builds it as a
    :class:`Forecaster`; ``forecast(history, horizon, season_length)`` is the M4 protocol's
    forecast from the end of one series (shape ``(horizon,)``), and ``one_step(values,
    history_start, test_start, end, season_length)`` a one-step-ahead forecast of every point in
    ``[test_start, end)`` from ``values[history_start:t]`` (shape ``(end - test_start,)``)."""

    name: str
    build: Build
    forecast: Callable[[np.ndarray, int, int], np.ndarray]
    one_step: Callable[[np.ndarray, int, int, int, int], np.ndarray]
    description: str = ""
    facts: ForecasterFacts = ForecasterFacts()
    # settings that change its numbers (mstl's refit interval and history); non-empty ones enter
    # the baseline row's key (benchmark.run.jobs.BaselineJob.key), so other settings make other rows
    settings: Mapping[str, Any] | None = None

    @property
    def max_history(self) -> int | None:
        """The most history points it accepts (grid validation refuses more)."""
        return self.facts.max_history

    def forecaster(self, season_length: int, fit_seconds: float | None = None) -> Forecaster:
        """An unfitted forecaster of this baseline (``fit_seconds``: a fit's time limit, if it fits)."""
        return self.build(season_length, fit_seconds)
