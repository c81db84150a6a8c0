"""Input features: visible values, no look-ahead (perturbing the future changes nothing before
it), scalers fitted on the training part only, covariates from the real ETTh1 file, and clear
refusals for names, arguments and calendar features without timestamps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.data.features import FEATURES, build_inputs, feature_columns, feature_problems, load_covariates
from benchmark.data.sources import load_source
from benchmark.data.splits import make_cell_data
from benchmark.spec.errors import DataError
from benchmark.spec.sections import DataSpec, SplitSpec

ALL = ["rolling_mean:3", "hour_of_day", "day_of_week", "covariate:x2"]


def frame_of(y, start="2024-01-01 00:00") -> pd.DataFrame:
    y = np.asarray(y, dtype=float)
    return pd.DataFrame({"unique_id": "s", "ds": pd.date_range(start, periods=len(y), freq="h"), "y": y})


def test_every_registered_feature_is_exercised_here():
    assert sorted({name.split(":")[0] for name in ALL}) == FEATURES.names()


def test_visible_values():
    frame = frame_of(np.arange(6))  # 2024-01-01 was a Monday
    matrix = build_inputs(frame, ["rolling_mean:3", "hour_of_day", "day_of_week"], "s")
    assert feature_columns(["rolling_mean:3", "hour_of_day", "day_of_week"]) == [
        "y", "rolling_mean:3", "hour_of_day_sin", "hour_of_day_cos", "day_of_week_sin", "day_of_week_cos"]
    np.testing.assert_array_equal(matrix[:, 0], np.arange(6))
    np.testing.assert_allclose(matrix[:, 1], [0, 0.5, 1, 2, 3, 4])  # trailing mean, up to t included
    np.testing.assert_allclose(matrix[:, 2], np.sin(2 * np.pi * np.arange(6) / 24))
    np.testing.assert_allclose(matrix[:, 3], np.cos(2 * np.pi * np.arange(6) / 24))
    np.testing.assert_allclose(matrix[:, 4], np.sin(2 * np.pi * (np.arange(6) / 24) / 7))  # Monday = 0


@pytest.mark.parametrize("t", [0, 17, 40, 62])
def test_no_feature_at_t_uses_any_value_after_t(t):
    rng = np.random.default_rng(0)
    y, x2 = rng.normal(size=64), rng.normal(size=64)
    frame = frame_of(y)
    before = build_inputs(frame, ALL, "s", {"x2": x2})
    future_y, future_x2 = y.copy(), x2.copy()
    future_y[t + 1:] += 1000.0  # wildly different future
    future_x2[t + 1:] -= 1000.0
    after = build_inputs(frame_of(future_y), ALL, "s", {"x2": future_x2})
    np.testing.assert_array_equal(before[:t + 1], after[:t + 1])
    assert not np.allclose(before[t + 1:, [0, 1, 6]], after[t + 1:, [0, 1, 6]])  # the test can fail


def test_windows_never_see_their_own_targets_and_scalers_ignore_the_test_segment():
    split = SplitSpec(lookback=6, horizon=2, test_size=20)
    y = np.sin(np.arange(120) / 3.0) + np.arange(120) / 50
    x2 = np.cos(np.arange(120) / 5.0)
    data = make_cell_data(frame_of(y), 80, split, "s", ALL, {"x2": x2})
    changed_y, changed_x2 = y.copy(), x2.copy()
    p = 110  # inside the test segment [100, 120)
    changed_y[p:] += 50.0
    changed_x2[p:] += 50.0
    other = make_cell_data(frame_of(changed_y), 80, split, "s", ALL, {"x2": changed_x2})
    np.testing.assert_array_equal(data.input_scaler.mean, other.input_scaler.mean)  # fitted on training only
    assert data.x_test.shape == (19, 6, len(feature_columns(ALL)))
    origins = np.arange(100, 119)
    unaffected = origins <= p  # inputs of origin t are rows t-6 .. t-1 < p
    np.testing.assert_array_equal(data.x_test[unaffected], other.x_test[unaffected])
    assert not np.array_equal(data.x_test[~unaffected], other.x_test[~unaffected])
    np.testing.assert_allclose(data.inputs[:, 0], data.scaler.transform(y), rtol=1e-6)  # column 0 = target
    np.testing.assert_allclose(data.y_test, data.scaler.transform(data.y_test_true), rtol=1e-5, atol=1e-6)


def test_covariates_come_from_the_real_ett_file(data_dir):
    target = DataSpec("ett", {"file": "ETTh1", "column": "OT"})
    frame = load_source(target, data_dir, allow_download=False)
    covariates = load_covariates(target, frame, ["covariate:HUFL", "hour_of_day"],
                                 lambda spec: load_source(spec, data_dir, allow_download=False))
    raw = pd.read_csv(data_dir / "ett" / "ETTh1.csv")
    np.testing.assert_array_equal(covariates["HUFL"], raw["HUFL"].to_numpy(dtype=float))
    with pytest.raises(DataError, match=r"unknown column 'NOPE'.*Available: HUFL"):
        load_covariates(target, frame, ["covariate:NOPE"],
                        lambda spec: load_source(spec, data_dir, allow_download=False))


def test_calendar_features_need_timestamps():
    frame = pd.DataFrame({"unique_id": "s", "ds": np.arange(1, 11), "y": np.arange(10.0)})
    with pytest.raises(DataError, match="'hour_of_day' needs timestamps"):
        build_inputs(frame, ["hour_of_day"], "m4/H1")


def test_feature_problems_say_what_and_how():
    sine = DataSpec("sine", {})
    problems = feature_problems(["rolling_mean", "bogus", "hour_of_day:2", "covariate:HUFL",
                                 "rolling_mean:0", "rolling_mean:0"], sine, "grid.feature_sets[1]")
    text = "\n".join(problems)
    assert "grid.feature_sets[1]: duplicate features" in text
    assert "grid.feature_sets[1][0]: feature 'rolling_mean' needs an argument" in text
    assert "Unknown feature 'bogus'. Known: covariate, day_of_week, hour_of_day, rolling_mean." in text
    assert "[2]: feature 'hour_of_day' takes no argument" in text
    assert "[3]: covariate 'HUFL' needs a target with other columns" in text
    assert "[4]: rolling_mean: expected a positive integer, got '0'" in text
    assert feature_problems(["rolling_mean:24", "covariate:HUFL"],
                            DataSpec("ett", {"file": "ETTh1", "column": "OT"}), "f") == []
