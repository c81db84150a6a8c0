"""Each metric against hand-computed values and against utilsforecast's implementations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from utilsforecast import losses

from benchmark.forecasters.metrics import METRICS, compute_metrics

Y = np.array([2.0, 4.0, 8.0])
F = np.array([1.0, 5.0, 8.0])
INSAMPLE = np.array([1.0, 3.0, 2.0, 6.0])  # m = 2: |2-1|, |6-3| -> scale 2


def test_registry_names():
    assert METRICS.names() == ["mae", "mape", "mase", "mse", "rmse", "smape"]


def test_hand_computed_values():
    got = compute_metrics(Y, F, INSAMPLE, season_length=2)
    assert got["mse"] == pytest.approx((1 + 1 + 0) / 3)
    assert got["rmse"] == pytest.approx(math.sqrt(2 / 3))
    assert got["mae"] == pytest.approx(2 / 3)
    assert got["mape"] == pytest.approx(100 * (1 / 2 + 1 / 4 + 0) / 3)
    assert got["smape"] == pytest.approx((200 * 1 / 3 + 200 * 1 / 9 + 0) / 3)
    assert got["mase"] == pytest.approx((2 / 3) / 2)


def test_any_matching_shape_counts_every_point_once():
    got = compute_metrics(Y.reshape(3, 1), F.reshape(3, 1), INSAMPLE, season_length=2)
    assert got == compute_metrics(Y, F, INSAMPLE, season_length=2)
    with pytest.raises(ValueError, match="must match"):
        compute_metrics(Y, F[:2], INSAMPLE)


def test_edge_conventions():
    smape = METRICS.get("smape")
    assert smape(np.zeros(2), np.zeros(2), None, 1) == 0.0  # 0/0 counts as 0
    assert smape(np.array([0.0, 1.0]), np.array([0.0, 3.0]), None, 1) == pytest.approx(50.0)
    mape = METRICS.get("mape")
    assert mape(np.array([0.0, 2.0]), np.array([5.0, 1.0]), None, 1) == pytest.approx(50.0)
    assert math.isnan(mape(np.zeros(3), np.ones(3), None, 1))
    mase = METRICS.get("mase")
    assert math.isnan(mase(Y, F, np.array([1.0, 2.0]), 2))  # no m-lagged pair in the history
    assert mase(Y, F, np.ones(5), 1) == math.inf  # constant history, nonzero error
    assert mase(Y, Y, np.ones(5), 1) == 0.0


def test_agrees_with_utilsforecast():
    rng = np.random.default_rng(0)
    n, m = 30, 4
    y = 10 + rng.standard_normal(n)
    f = y + rng.standard_normal(n)
    y[3] = 0.0  # a zero truth: excluded by MAPE in both conventions
    train = 10 + rng.standard_normal(25)
    frame = pd.DataFrame({"unique_id": "s", "ds": np.arange(n), "y": y, "model": f})
    train_df = pd.DataFrame({"unique_id": "s", "ds": np.arange(-25, 0), "y": train})
    theirs = {
        "mae": losses.mae(frame, ["model"])["model"].iloc[0],
        "mse": losses.mse(frame, ["model"])["model"].iloc[0],
        "rmse": losses.rmse(frame, ["model"])["model"].iloc[0],
        # utilsforecast: MAPE as a fraction, sMAPE without the factor 2 (0-1 instead of 0-200)
        "mape": 100 * losses.mape(frame, ["model"])["model"].iloc[0],
        "smape": 200 * losses.smape(frame, ["model"])["model"].iloc[0],
        "mase": losses.mase(frame, ["model"], m, train_df)["model"].iloc[0],
    }
    ours = compute_metrics(y, f, train, season_length=m)
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, rel=1e-12), name
