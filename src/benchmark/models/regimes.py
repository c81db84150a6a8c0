"""Regimes and forecasting with a trained model: samples, validation, test forecasts, ``predict``.

How a cell's data becomes training samples, validation and test forecasts in each regime, and how
a trained model forecasts (``predict`` over windows, the stateful stream).

Regimes (:data:`REGIMES`; their facts are declared in :data:`benchmark.spec.catalog.REGIMES`):
``stateless`` trains on shuffled sliding windows, each from a zero state; ``stateful`` reads the
target's history in order, in consecutive non-overlapping chunks of ``lookback`` points (batch 1,
no shuffling), the recurrent state carried from chunk to chunk and reset at the start of every
epoch; validation and forecasts reset the state, warm it on everything before the first origin,
then forecast one origin after the other with the observed values (docs/models.md). A model is
stateful when its recurrent layers are (``build_model(..., stateful=True)``);
:func:`~benchmark.models.training.train_for_mode` then takes a :class:`StreamValidation` as ``val``.

A regime and a trained model meet the forecaster contract of :mod:`benchmark.forecasters.contract`
(structurally: this layer may not import that one) through :meth:`Regime.forecaster`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import keras
import numpy as np

from benchmark.data.windows import FORECASTS
from benchmark.spec.catalog import REGIMES as DECLARED_REGIMES
from benchmark.spec.catalog import ForecasterFacts, RegimeFacts, declared
from benchmark.spec.errors import TlbenchError
from benchmark.spec.registry import Registry

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class StreamValidation:
    """Validation of a stateful model: reset, warm on ``values[start:first]``, forecast the
    origins ``first .. end - horizon`` one by one; ``values`` [T, F] scaled, target in column 0."""

    values: np.ndarray
    start: int
    first: int
    end: int
    horizon: int

    def targets(self) -> np.ndarray:
        """``[n_origins, horizon]``: the target values the forecasts are scored against."""
        origins = np.arange(self.first, self.end - self.horizon + 1)
        return np.asarray(self.values, np.float32)[origins[:, None] + np.arange(self.horizon), 0]


def is_stateful(model: keras.Model) -> bool:
    """Whether any layer of ``model`` keeps its recurrent state between calls."""
    return any(getattr(layer, "stateful", False) for layer in model.layers)


def reset_states(model: keras.Model) -> None:
    """Zero the recurrent state of every stateful layer (Keras 3: ``layer.reset_state()``)."""
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()



def predict(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Forecasts ``[n, lookback, n_features] -> [n, horizon]`` in chunks, quietly (no progress bar)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise TlbenchError(f"predict: expected x of shape (n, lookback, n_features), got {x.shape}.")
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float32)
    chunks = [np.asarray(model.predict_on_batch(x[start:start + batch_size]))
              for start in range(0, len(x), batch_size)]
    return np.concatenate(chunks, axis=0)  # [n, H]


def stateful_forecast(model: keras.Model, values: np.ndarray, start: int, first: int, end: int,
                      horizon: int) -> np.ndarray:
    """Forecasts of a stateful model for the origins ``t = first .. end - horizon``: ``[n, horizon]``.

    ``values`` [T, F] scaled inputs (target in column 0). The state is reset, warmed on
    ``values[start:first]`` (whose output is the forecast for ``first``), then every later origin
    ``t`` feeds the one observed step ``values[t - 1]``: the state always summarises everything
    from ``start`` up to the origin, as in training. Ends with the state left warm.
    """
    values = np.asarray(values, dtype=np.float32)
    n = max(0, end - horizon + 1 - first)
    out = np.zeros((n, horizon), dtype=np.float32)
    reset_states(model)
    if n == 0:
        return out
    if first <= start:
        raise TlbenchError(f"stateful_forecast: nothing to warm the state on before origin {first} "
                           f"(start {start}).")
    out[0] = np.asarray(model.predict_on_batch(values[None, start:first]))[0]  # [1, n_warm, F] -> [H]
    for i in range(1, n):
        t = first + i
        out[i] = np.asarray(model.predict_on_batch(values[None, t - 1:t]))[0]  # [1, 1, F] -> [H]
    return out


def stream_chunks(values: np.ndarray, start: int, end: int, lookback: int, horizon: int) -> Arrays:
    """The stateful regime's training samples: consecutive, non-overlapping chunks.

    Chunk ``k`` has inputs ``values[start + k L : start + (k + 1) L]`` (``[L, F]``) and targets
    the next ``horizon`` values of column 0; chunks continue while those targets lie before
    ``end``. Returns ``x [K, L, F]`` and ``y [K, H]`` float32, in series order (never shuffle them).
    """
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 1:
        values = values[:, None]  # [T] -> [T, 1]
    count = max(0, (end - start - horizon) // lookback)
    x = np.stack([values[start + k * lookback:start + (k + 1) * lookback] for k in range(count)]) \
        if count else np.zeros((0, lookback, values.shape[1]), np.float32)  # [K, L, F]
    y = np.stack([values[start + (k + 1) * lookback:start + (k + 1) * lookback + horizon, 0]
                  for k in range(count)]) if count else np.zeros((0, horizon), np.float32)  # [K, H]
    return x, y


# --------------------------------------------------------------------------- a trained model as a forecaster


@dataclass
class RegimeForecaster:
    """A trained model under a regime, meeting the forecaster contract of
    :mod:`benchmark.forecasters.contract` (shapes there).

    ``series`` is the cell's scaled inputs ``[T, F]`` (target in column 0; a 1-D series is one
    column) from the start of the history; forecasts are on that scale. ``fit(history)`` binds
    the history and trains nothing: the model is trained beforehand by
    :func:`~benchmark.models.training.train_for_mode` (``facts.needs_training``). ``forecast``:
    stateless, one window ``series[origin - lookback:origin]`` per origin through the forecast
    strategy (``direct`` or ``recursive``); stateful, the state reset, warmed on
    ``series[:origins[0]]``, then fed one observed step per later position.
    """

    model: keras.Model
    stateful: bool
    lookback: int
    strategy: str = "direct"
    facts: ForecasterFacts = field(init=False)
    n_history: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        direct = not FORECASTS.get(self.strategy).one_step  # a direct model forecasts its outputs only
        self.facts = ForecasterFacts(needs_training=True,
                                     max_horizon=int(self.model.output_shape[-1]) if direct else None)

    def fit(self, history: np.ndarray) -> "RegimeForecaster":
        """Bind ``history`` (``[n]`` or ``[n, F]``); the model was trained on it already."""
        self.n_history = len(history)
        return self

    def forecast(self, series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """``[n_origins, horizon]`` scaled forecasts, each from ``series[:origin]`` only."""
        if self.n_history is None:
            raise TlbenchError("RegimeForecaster.forecast before fit: call fit(history) first.")
        series = np.asarray(series, np.float32)
        series = series[:, None] if series.ndim == 1 else series  # [T] -> [T, 1]
        origins = np.asarray(origins, int)
        if len(origins) and (origins.min() < max(self.n_history, 1) or origins.max() > len(series)
                             or (np.diff(origins) <= 0).any()):
            raise TlbenchError(f"origins must increase within [{self.n_history}, {len(series)}] (after the "
                               f"history, inside the series), got {origins.min()} .. {origins.max()}.")
        if self.stateful:
            if not len(origins):
                return np.zeros((0, horizon), np.float32)
            first = int(origins[0])
            rows = stateful_forecast(self.model, series, 0, first, int(origins[-1]) + horizon, horizon)
            return rows[origins - first]  # [n_positions, H] -> [n_origins, H]
        if len(origins) and origins.min() < self.lookback:
            raise TlbenchError(f"origin {origins.min()} has fewer than lookback {self.lookback} points before it.")
        windows = np.stack([series[t - self.lookback:t] for t in origins]) if len(origins) else \
            np.zeros((0, self.lookback, series.shape[1]), np.float32)  # [n_origins, L, F]
        return self.forecast_windows(windows, horizon)

    def forecast_windows(self, windows: np.ndarray, horizon: int) -> np.ndarray:
        """A stateless model's ``[n, horizon]`` forecasts of windows already cut ``[n, L, F]``
        (a cell's test windows, in its protocol's lag order)."""
        strategy = FORECASTS.get(self.strategy)  # direct: [n, H] at once; recursive: one step H times
        return strategy.forecast(lambda x: predict(self.model, x), windows, horizon)


# --------------------------------------------------------------------------- regimes


@dataclass(frozen=True)
class Regime:
    """A training regime: how a cell's data becomes training samples, validation and test
    forecasts (``data`` is a ``benchmark.data.splits.CellData``); ``facts`` (whether its models
    are stateful) is the entry of the same name in :data:`benchmark.spec.catalog.REGIMES`."""

    name: str
    samples: Callable[[object, int, int], tuple[Arrays, Arrays | StreamValidation]]  # (data, L, H)
    forecast: Callable[[keras.Model, object, int, int], np.ndarray]  # (model, data, L, H) -> [n, H]
    description: str
    facts: RegimeFacts

    @property
    def stateful(self) -> bool:
        return self.facts.stateful

    def forecaster(self, model: keras.Model, lookback: int, strategy: str = "direct") -> RegimeForecaster:
        """``model`` (trained in this regime) as a forecaster of the contract."""
        return RegimeForecaster(model, self.stateful, lookback, strategy)


def _stateless_samples(data, lookback: int, horizon: int):
    return (data.x_train, data.y_train), (data.x_val, data.y_val)


def _stateless_forecast(model, data, lookback: int, horizon: int) -> np.ndarray:
    forecaster = RegimeForecaster(model, False, lookback, data.forecast)
    return forecaster.forecast_windows(data.x_test, horizon)  # the cell's test windows: [n_test, H]


def _stateful_samples(data, lookback: int, horizon: int):
    cut = data.split
    train = stream_chunks(data.inputs, cut.history_start, cut.val_start, lookback, horizon)
    return train, StreamValidation(data.inputs, cut.history_start, cut.val_start, cut.test_start, horizon)


def _stateful_forecast(model, data, lookback: int, horizon: int) -> np.ndarray:
    cut = data.split
    # the same origins, in the same order, as the stateless test windows (max(test_start, L) ..)
    origins = np.arange(max(cut.test_start, lookback), cut.end - horizon + 1, data.test_stride)
    forecaster = RegimeForecaster(model, True, lookback).fit(data.inputs[cut.history_start:cut.test_start])
    return forecaster.forecast(data.inputs[cut.history_start:], origins - cut.history_start, horizon)


REGIMES: Registry[Regime] = Registry(DECLARED_REGIMES.kind)


def _add(name: str, samples: Callable, forecast: Callable, description: str) -> None:
    REGIMES.add(name, Regime(name, samples, forecast, description, declared(DECLARED_REGIMES, name)))


_add("stateless", _stateless_samples, _stateless_forecast, "shuffled sliding windows, each from a zero state")
_add("stateful", _stateful_samples, _stateful_forecast,
     "the history in order in lookback-long chunks, batch 1, state carried across chunks and reset per "
     "epoch; forecasts warm the state first")
