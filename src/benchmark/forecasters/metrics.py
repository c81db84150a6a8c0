"""Point-forecast accuracy metrics, all on the original scale of the series: a registry of
functions ``(y_true, y_pred, insample, season_length) -> float`` and :func:`compute_metrics`.

Conventions (those of the M4 competition where it defines one):

* ``smape``: ``mean(200 * |y - f| / (|y| + |f|))``, 0-200; a point with ``y == f == 0`` counts 0.
* ``mase``: ``MAE / mean(|insample[t] - insample[t - m]|)`` with ``m = season_length``; the scale
  comes from the in-sample history only. ``nan`` when the history has no ``m``-lagged pair.
* ``mape``: ``100 * mean(|y - f| / |y|)`` in percent over the points with ``y != 0`` (points
  where the truth is 0 are left out, as utilsforecast does); ``nan`` when every ``y`` is 0.

``y_true`` and ``y_pred`` may have any matching shape, e.g. (n_windows, horizon); every point
counts once.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from benchmark.spec.registry import Registry

Metric = Callable[[np.ndarray, np.ndarray, np.ndarray, int], float]

METRICS: Registry[Metric] = Registry("metric")

#: The metric names every result records, in the leaderboard's column order: the one list that
#: the leaderboard schema, the ranking, the outcomes and the flows' parameter forms share.
METRIC_NAMES = ("mse", "rmse", "mae", "mape", "smape", "mase")
#: Metrics on a protocol's z-scored scale (``benchmark.data.splits.scale_metrics``): the long-horizon
#: papers' MSE and MAE under ``ett_standard``; NaN in rows of a protocol that does not score them.
Z_METRIC_NAMES = ("mse_z", "mae_z")


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred {y_pred.shape}; "
                         "they must match point for point")
    return y_true.ravel(), y_pred.ravel()


@METRICS.register("mse")
def mse(y_true, y_pred, insample=None, season_length: int = 24) -> float:
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean((y_true - y_pred) ** 2))


@METRICS.register("rmse")
def rmse(y_true, y_pred, insample=None, season_length: int = 24) -> float:
    return float(np.sqrt(mse(y_true, y_pred)))


@METRICS.register("mae")
def mae(y_true, y_pred, insample=None, season_length: int = 24) -> float:
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


@METRICS.register("mape")
def mape(y_true, y_pred, insample=None, season_length: int = 24) -> float:
    """Percent; points with ``y_true == 0`` are excluded, ``nan`` if all are."""
    y_true, y_pred = _pair(y_true, y_pred)
    keep = y_true != 0
    if not keep.any():
        return float("nan")
    return float(100.0 * np.mean(np.abs(y_true[keep] - y_pred[keep]) / np.abs(y_true[keep])))


@METRICS.register("smape")
def smape(y_true, y_pred, insample=None, season_length: int = 24) -> float:
    """M4's sMAPE, 0-200; ``0/0`` (both zero) counts as 0."""
    y_true, y_pred = _pair(y_true, y_pred)
    denominator = np.abs(y_true) + np.abs(y_pred)
    numerator = 200.0 * np.abs(y_true - y_pred)
    ratio = np.divide(numerator, denominator, out=np.zeros_like(numerator),
                      where=denominator != 0)
    return float(np.mean(ratio))


def mase_scale(insample: np.ndarray, season_length: int) -> float:
    """``mean(|insample[t] - insample[t - m]|)``: the in-sample MAE of seasonal naive."""
    insample = np.asarray(insample, dtype=np.float64).ravel()
    if len(insample) <= season_length:
        return float("nan")
    return float(np.mean(np.abs(insample[season_length:] - insample[:-season_length])))


@METRICS.register("mase")
def mase(y_true, y_pred, insample=None, season_length: int = 24) -> float:
    """M4's MASE; ``nan`` without enough in-sample history, ``inf`` for a constant history
    (zero scale) with a nonzero error."""
    if insample is None:
        raise ValueError("mase needs the in-sample history (insample) for its scale")
    scale = mase_scale(insample, season_length)
    error = mae(y_true, y_pred)
    if np.isnan(scale):
        return float("nan")
    if scale == 0:
        return 0.0 if error == 0 else float("inf")
    return error / scale


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, insample: np.ndarray,
                    season_length: int = 24) -> dict[str, float]:
    """Every registered metric, by name, on the original scale."""
    return {name: METRICS.get(name)(y_true, y_pred, insample, season_length) for name in METRIC_NAMES}
