"""The M4 protocol reproduces the published M4 Hourly figures of the statistical benchmarks."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.config import DataSpec
from benchmark.errors import UnknownNameError
from benchmark.evaluation import evaluate_source

M4_HOURLY = DataSpec("m4", {"group": "Hourly"})


def test_seasonal_naive_reproduces_published_m4_hourly(data_dir):
    result = evaluate_source(M4_HOURLY, "seasonal_naive", data_dir, allow_download=False)
    assert result["n_series"] == 414 and result["horizon"] == 48
    assert round(result["smape"], 3) == 13.912
    assert round(result["mase"], 3) == 1.193
    # Naive2, computed alongside: the published 18.383 and 2.395
    assert round(result["smape_naive2"], 3) == 18.383
    assert round(result["mase_naive2"], 3) == 2.395
    # OWA from those: 0.5 * (13.912 / 18.383 + 1.193 / 2.395)
    assert result["owa"] == pytest.approx(0.6275, abs=5e-4)


def test_naive_and_naive2_published_m4_hourly(data_dir):
    naive = evaluate_source(M4_HOURLY, "naive", data_dir, allow_download=False)
    assert (round(naive["smape"], 3), round(naive["mase"], 3)) == (43.003, 11.608)
    naive2 = evaluate_source(M4_HOURLY, "naive2", data_dir, allow_download=False)
    assert (round(naive2["smape"], 3), round(naive2["mase"], 3)) == (18.383, 2.395)
    assert naive2["owa"] == pytest.approx(1.0)


def test_forecaster_callable_and_non_m4_source(tmp_path):
    sine = DataSpec("sine", {"length": 500, "period": 24, "noise": 0.0})
    by_name = evaluate_source(sine, "seasonal_naive", tmp_path)
    assert by_name["smape"] == pytest.approx(0.0, abs=1e-9)  # a clean sine repeats exactly

    def last_season(history, horizon):
        return np.resize(history[-24:], horizon)

    by_callable = evaluate_source(sine, "my_model", tmp_path, forecaster=last_season)
    assert by_callable["method"] == "my_model" and by_callable["source"] == "sine(n=500,p=24)"
    assert by_callable["smape"] == pytest.approx(by_name["smape"], abs=1e-12)
    with pytest.raises(ValueError, match="returned 3 values for series sine, expected horizon 48"):
        evaluate_source(sine, "bad", tmp_path, forecaster=lambda history, horizon: history[:3])


def test_unknown_method_lists_baselines(tmp_path):
    with pytest.raises(UnknownNameError, match="Unknown baseline 'arima'. Known: mean, naive"):
        evaluate_source(DataSpec("sine", {}), "arima", tmp_path)
