"""The M4 evaluation protocol over a whole source: forecast each series' test part (``horizon``
steps) from its training part, score sMAPE and MASE per series, average over series, and relate
both to Naive2 as the OWA. Used to check the baselines against the published M4 figures and to
score a pretrained model on its own source (``tlbench evaluate-source``), so the leaderboard shows
how good the pretrained model is before anyone transfers it.

For ``m4`` the test part is the official test file; for any other source it is the last
``horizon`` points of every series.

A method forecasts either one series at a time (a :data:`Forecaster` callable, as the baselines
do) or all series at once (a :class:`BatchForecaster`, as a Keras model does: one ``predict``
call per step over every series; :class:`benchmark.forecasters.trained.ModelForecaster`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from benchmark.data.loaders import load_m4_test
from benchmark.data.sources import load_source, parse_options, source_label
from benchmark.forecasters.baselines import BASELINES
from benchmark.forecasters.metrics import mase, smape
from benchmark.forecasters.statistical import METHODS as STATISTICAL_METHODS
from benchmark.forecasters.statistical import StatisticalForecaster
from benchmark.spec.errors import DataError, TlbenchError
from benchmark.spec.sections import DataSpec

#: ``forecaster(history_1d, horizon) -> (horizon,)``: one series at a time (the baselines).
Forecaster = Callable[[np.ndarray, int], np.ndarray]

#: Metric names written on a pretrained model's run, from :func:`evaluate_source`'s keys.
SOURCE_METRICS = {"smape": "m4_smape", "mase": "m4_mase", "owa": "m4_owa"}


@runtime_checkable
class BatchForecaster(Protocol):
    """Forecasts every series at once: ``forecast_batch(histories, horizon) -> [n, horizon]``,
    ``histories`` a list of n 1-D arrays of possibly different lengths (original scale)."""

    def forecast_batch(self, histories: Sequence[np.ndarray], horizon: int) -> np.ndarray: ...


def train_test_series(source: DataSpec, data_dir: Path, horizon: int,
                      allow_download: bool = True) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(unique_id, training values, the next horizon values)`` for every series, in id order."""
    train = load_source(source, data_dir, allow_download=allow_download)
    label = source_label(source)
    train_groups = train.groupby("unique_id", sort=True).indices  # id -> row positions
    y_train = train["y"].to_numpy()
    if source.source == "m4":
        options, _ = parse_options(source)
        test = load_m4_test(options.group, data_dir, allow_download=allow_download)
        test_groups = test.groupby("unique_id", sort=True).indices
        y_test = test["y"].to_numpy()
        out = []
        for uid, rows in train_groups.items():
            future = y_test[test_groups[uid]] if uid in test_groups else np.empty(0)
            if len(future) < horizon:
                raise DataError(f"{label}: series {uid} has {len(future)} test points, fewer than "
                                f"horizon {horizon}: choose horizon <= {len(future)}.")
            out.append((uid, y_train[rows], future[:horizon]))
        return out
    out = []
    for uid, rows in train_groups.items():
        values = y_train[rows]
        if len(values) <= horizon:
            raise DataError(f"{label}: series {uid} has {len(values)} points, not more than "
                            f"horizon {horizon}: choose a smaller horizon.")
        out.append((uid, values[:-horizon], values[-horizon:]))
    return out

def evaluate_source(source: DataSpec, method: str, data_dir: Path,
                    forecaster: Forecaster | BatchForecaster | None = None, *,
                    protocol: tuple[int, int] = (48, 24), allow_download: bool = True,
                    max_series: int | None = None) -> dict:
    """M4-protocol scores of one method on every series of a source.

    ``protocol``: ``(horizon, season_length)``, M4 Hourly's ``(48, 24)`` by default.

    ``method`` names a baseline, or labels ``forecaster`` when one is given: a per-series
    ``forecaster(history_1d, horizon) -> (horizon,)`` or a :class:`BatchForecaster`, called once
    with every series. ``max_series`` keeps the first k series in id order (a quick check; the
    protocol's figures are over all of them). Returns ``method``, ``source``, ``smape`` and
    ``mase`` (means over series), ``owa = 0.5 * (smape / smape_naive2 + mase / mase_naive2)``, the
    Naive2 scores ``smape_naive2``/``mase_naive2`` on the same series, ``n_series`` and ``horizon``.
    A statistical baseline (``ets``, ``theta``, ``mstl``, ``arima``) is fitted per series in two
    processes, each fit under the time limit; a series whose fit failed or timed out is scored
    with Naive2's forecast and listed in ``failed_series`` (id -> why; empty when none failed).
    """
    horizon, season_length = protocol
    if forecaster is None and method in STATISTICAL_METHODS:  # statsforecast fits: 2 processes
        forecaster = StatisticalForecaster(method, season_length, workers=2)
    if forecaster is None:
        baseline = BASELINES.get(method)  # an unknown name lists the known baselines

        def forecaster(history: np.ndarray, steps: int) -> np.ndarray:
            return baseline.forecast(history, steps, season_length)

    if max_series is not None and max_series < 1:
        raise TlbenchError(f"max_series must be at least 1, got {max_series}; leave it unset for all series.")
    naive2 = BASELINES.get("naive2")
    scores = {"smape": [], "mase": [], "smape_naive2": [], "mase_naive2": []}
    series = train_test_series(source, data_dir, horizon, allow_download)[:max_series]
    predictions = _forecast_all(forecaster, series, horizon)  # [n_series, horizon]
    failed = {series[i][0]: error for i, error in getattr(forecaster, "failures", {}).items()}
    for i in getattr(forecaster, "failures", {}):  # a failed fit is scored as Naive2, and listed
        predictions[i] = naive2.forecast(series[i][1], horizon, season_length)
    for (uid, history, future), prediction in zip(series, predictions):
        reference = naive2.forecast(history, horizon, season_length)
        scores["smape"].append(smape(future, prediction))
        scores["mase"].append(mase(future, prediction, history, season_length))
        scores["smape_naive2"].append(smape(future, reference))
        scores["mase_naive2"].append(mase(future, reference, history, season_length))
    means = {key: float(np.mean(values)) for key, values in scores.items()}
    owa = 0.5 * (means["smape"] / means["smape_naive2"] + means["mase"] / means["mase_naive2"])
    return {"method": method, "source": source_label(source), "smape": means["smape"],
            "mase": means["mase"], "owa": float(owa), "smape_naive2": means["smape_naive2"],
            "mase_naive2": means["mase_naive2"], "n_series": len(series), "horizon": horizon,
            "failed_series": failed}

def _forecast_all(forecaster: Forecaster | BatchForecaster,
                  series: list[tuple[str, np.ndarray, np.ndarray]], horizon: int) -> np.ndarray:
    """Every series' forecast, ``[n_series, horizon]`` float64: one batch call, or one call per series."""
    if isinstance(forecaster, BatchForecaster):
        out = np.asarray(forecaster.forecast_batch([history for _, history, _ in series], horizon),
                         dtype=np.float64)
        if out.shape != (len(series), horizon):
            raise ValueError(f"batch forecaster returned shape {out.shape} for {len(series)} series, "
                             f"expected ({len(series)}, {horizon})")
        return out
    rows = []
    for uid, history, _ in series:
        prediction = np.asarray(forecaster(history, horizon), dtype=np.float64).reshape(-1)
        if prediction.shape != (horizon,):
            raise ValueError(f"forecaster returned {prediction.shape[0]} values for series {uid}, "
                             f"expected horizon {horizon}")
        rows.append(prediction)
    return np.stack(rows) if rows else np.zeros((0, horizon))


def source_metrics(result: dict) -> dict[str, float]:
    """``result``'s sMAPE, MASE and OWA under their run-metric names (:data:`SOURCE_METRICS`)."""
    return {name: float(result[key]) for key, name in SOURCE_METRICS.items()}
