"""The M4 evaluation protocol on a whole source: forecast each series' test part (``horizon``
steps) from its training part, score sMAPE and MASE per series, average over series, and relate
both to Naive2 as the OWA. Used to check the baselines against the published M4 figures and,
later, to score a pretrained model on its own source.

For ``m4`` the test part is the official test file; for any other source it is the last
``horizon`` points of every series.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from benchmark.baselines import BASELINES
from benchmark.config import DataSpec
from benchmark.data.sources import load_m4_test, load_source, parse_options, source_label
from benchmark.errors import DataError
from benchmark.metrics import mase, smape

Forecaster = Callable[[np.ndarray, int], np.ndarray]


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


def evaluate_source(source: DataSpec, method: str, data_dir: Path, horizon: int = 48,
                    season_length: int = 24, forecaster: Forecaster | None = None, *,
                    allow_download: bool = True) -> dict:
    """M4-protocol scores of one method on every series of a source.

    ``method`` names a baseline, or labels ``forecaster(history_1d, horizon) -> (horizon,)``
    when one is given. Returns ``method``, ``source``, ``smape`` and ``mase`` (means over
    series), ``owa = 0.5 * (smape / smape_naive2 + mase / mase_naive2)``, the Naive2 scores
    ``smape_naive2``/``mase_naive2``, ``n_series`` and ``horizon``.
    """
    if forecaster is None:
        baseline = BASELINES.get(method)  # an unknown name lists the known baselines

        def forecaster(history: np.ndarray, steps: int) -> np.ndarray:
            return baseline.forecast(history, steps, season_length)

    naive2 = BASELINES.get("naive2")
    scores = {"smape": [], "mase": [], "smape_naive2": [], "mase_naive2": []}
    series = train_test_series(source, data_dir, horizon, allow_download)
    for uid, history, future in series:
        prediction = np.asarray(forecaster(history, horizon), dtype=np.float64).reshape(-1)
        if prediction.shape != (horizon,):
            raise ValueError(f"forecaster returned {prediction.shape[0]} values for series {uid}, "
                             f"expected horizon {horizon}")
        reference = naive2.forecast(history, horizon, season_length)
        scores["smape"].append(smape(future, prediction))
        scores["mase"].append(mase(future, prediction, history, season_length))
        scores["smape_naive2"].append(smape(future, reference))
        scores["mase_naive2"].append(mase(future, reference, history, season_length))
    means = {key: float(np.mean(values)) for key, values in scores.items()}
    owa = 0.5 * (means["smape"] / means["smape_naive2"] + means["mase"] / means["mase_naive2"])
    return {"method": method, "source": source_label(source), "smape": means["smape"],
            "mase": means["mase"], "owa": float(owa), "smape_naive2": means["smape_naive2"],
            "mase_naive2": means["mase_naive2"], "n_series": len(series), "horizon": horizon}

