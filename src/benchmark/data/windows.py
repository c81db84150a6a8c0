"""Sliding windows over a series (inputs of ``lookback`` points, the next ``horizon`` points as
targets) and the recursive look-ahead loop that turns a one-step model into a multi-step one.

Windows are views built with ``numpy.lib.stride_tricks.sliding_window_view``: no Python loop over
rows. Which part of a series may hold targets is given by ``[start, end)``; inputs may reach back
before ``start`` but never past the window's own targets.

:data:`FORECASTS` names how an ``H``-step forecast is made: ``direct`` (a model with ``H``
outputs) or ``recursive`` (a one-step model whose predictions are fed back ``H`` times).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from benchmark.spec.registry import Registry


def target_range(n_points: int, lookback: int, horizon: int, start: int | None = None,
                 end: int | None = None) -> tuple[int, int]:
    """``[first, last)`` of the first-target positions ``t`` whose window fits: inputs
    ``[t - lookback, t)`` inside the series, targets ``[t, t + horizon)`` inside
    ``[start, end)``."""
    start = lookback if start is None else max(start, lookback)
    end = n_points if end is None else min(end, n_points)
    return start, max(start, end - horizon + 1)


def make_windows(values: np.ndarray, lookback: int, horizon: int = 1, start: int | None = None,
                 end: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Supervised windows of a series.

    ``values``: (T,) or (T, F). Returns ``X`` (n, lookback, F) float32 and ``y`` (n, horizon)
    float32 (targets from feature column 0), one window per first-target position ``t`` with
    inputs ``values[t - lookback:t]`` and targets ``values[t:t + horizon, 0]``, keeping only the
    windows whose targets all lie in ``[start, end)`` (defaults: ``lookback`` and ``T``).
    """
    if lookback < 1 or horizon < 1:
        raise ValueError(f"lookback and horizon must be >= 1, got {lookback} and {horizon}")
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]  # [T] -> [T, 1]
    if values.ndim != 2:
        raise ValueError(f"values must have shape (T,) or (T, F), got {values.shape}")
    n_points, n_features = values.shape
    first, last = target_range(n_points, lookback, horizon, start, end)
    if last <= first:
        return (np.empty((0, lookback, n_features), np.float32),
                np.empty((0, horizon), np.float32))
    span = lookback + horizon
    # [T, F] -> [T - span + 1, F, span]: window j covers rows j .. j + span - 1, first target j + L
    view = sliding_window_view(values, span, axis=0)[first - lookback:last - lookback]
    x = view[:, :, :lookback].transpose(0, 2, 1).astype(np.float32)  # [n, F, L] -> [n, L, F]
    y = view[:, 0, lookback:].astype(np.float32)  # [n, H]
    return x, y


def target_windows(values: np.ndarray, lookback: int, horizon: int, start: int | None = None,
                   end: int | None = None) -> np.ndarray:
    """The targets of :func:`make_windows` for a 1-D array of any dtype (original-scale values
    as float64, or timestamps): shape (n, horizon), same windows in the same order."""
    values = np.asarray(values)
    first, last = target_range(len(values), lookback, horizon, start, end)
    if last <= first:
        return values[:0].reshape(0, horizon)
    return sliding_window_view(values, horizon)[first:last].copy()  # [n, H]


def recursive_forecast(predict_fn: Callable[[np.ndarray], np.ndarray], context: np.ndarray,
                       steps: int) -> np.ndarray:
    """Multi-step forecasts from a one-step model by feeding each prediction back.

    ``context``: (batch, lookback, 1), scaled like the model's inputs. ``predict_fn`` maps
    (batch, lookback, 1) to (batch, >= 1); its first column is the next value. Returns
    (batch, steps): step ``k`` is predicted from the last ``lookback`` values, the observed
    context followed by the ``k`` previous predictions.
    """
    window = np.array(context, dtype=np.float32, copy=True)
    if window.ndim != 3 or window.shape[2] != 1:
        raise ValueError(f"context must have shape (batch, lookback, 1), got {window.shape}")
    batch = window.shape[0]
    out = np.empty((batch, steps), dtype=np.float32)
    for step in range(steps):
        prediction = np.asarray(predict_fn(window)).reshape(batch, -1)[:, 0]  # [B, >=1] -> [B]
        out[:, step] = prediction
        window = np.concatenate([window[:, 1:, :], prediction[:, None, None]], axis=1)  # [B, L, 1]
    return out


@dataclass(frozen=True)
class ForecastStrategy:
    """How an ``H``-step forecast is made from a model: with ``one_step`` the model has one output
    and :func:`recursive_forecast` chains it ``H`` times; otherwise it has ``H`` outputs."""

    name: str
    one_step: bool
    description: str

    def model_horizon(self, horizon: int) -> int:
        """Outputs of the model this strategy trains for an ``horizon``-step forecast."""
        return 1 if self.one_step else int(horizon)

    def forecast(self, predict_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                 horizon: int) -> np.ndarray:
        """``x`` [n, lookback, 1 or F] scaled inputs -> [n, horizon] scaled forecasts."""
        if self.one_step:
            return recursive_forecast(predict_fn, x, horizon)
        return np.asarray(predict_fn(x))[:, :horizon]


FORECASTS: Registry[ForecastStrategy] = Registry("forecast")
FORECASTS.add("direct", ForecastStrategy("direct", False, "one model output per step of the horizon"))
FORECASTS.add("recursive", ForecastStrategy("recursive", True,
                                            "a one-step model, its predictions fed back horizon times"))
