"""Windows built from ``np.arange`` so that the expected answer is visible."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.data.windows import make_windows, recursive_forecast, target_windows


def test_windows_of_arange():
    x, y = make_windows(np.arange(7), lookback=3, horizon=2)
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert x.shape == (3, 3, 1) and y.shape == (3, 2)
    np.testing.assert_array_equal(x[:, :, 0], [[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    np.testing.assert_array_equal(y, [[3, 4], [4, 5], [5, 6]])


def test_targets_restricted_to_start_end_inputs_may_reach_back():
    x, y = make_windows(np.arange(10), lookback=3, horizon=1, start=6, end=9)
    np.testing.assert_array_equal(y[:, 0], [6, 7, 8])  # targets in [6, 9)
    np.testing.assert_array_equal(x[0, :, 0], [3, 4, 5])  # inputs before start
    x, y = make_windows(np.arange(10), lookback=3, horizon=2, start=6, end=9)
    np.testing.assert_array_equal(y, [[6, 7], [7, 8]])  # no window has a target at 9
    x, y = make_windows(np.arange(10), lookback=3, start=0)  # start before lookback: clamped
    assert y[0, 0] == 3 and len(y) == 7


def test_multivariate_targets_come_from_column_zero():
    values = np.stack([np.arange(6), 100 + np.arange(6)], axis=1)  # [T=6, F=2]
    x, y = make_windows(values, lookback=2, horizon=1)
    assert x.shape == (4, 2, 2)
    np.testing.assert_array_equal(x[0], [[0, 100], [1, 101]])
    np.testing.assert_array_equal(y[:, 0], [2, 3, 4, 5])


def test_too_short_gives_empty_arrays_with_the_right_shape():
    x, y = make_windows(np.arange(3), lookback=3, horizon=1)
    assert x.shape == (0, 3, 1) and y.shape == (0, 1)
    x, y = make_windows(np.arange(10), lookback=3, horizon=2, start=8, end=9)
    assert x.shape == (0, 3, 1) and y.shape == (0, 2)


def test_target_windows_match_make_windows_for_any_dtype():
    stamps = pd.date_range("2021-01-01", periods=10, freq="h").to_numpy()
    ds = target_windows(stamps, lookback=3, horizon=2, start=5, end=10)
    _, y = make_windows(np.arange(10), lookback=3, horizon=2, start=5, end=10)
    assert ds.shape == y.shape == (4, 2)
    np.testing.assert_array_equal(ds, stamps[y.astype(int)])
    values = np.arange(10) + 0.123456789
    np.testing.assert_array_equal(target_windows(values, 3, 2, 5, 10), values[y.astype(int)])


def test_recursive_forecast_feeds_predictions_back():
    context = np.arange(2 * 4, dtype=np.float32).reshape(2, 4, 1)  # rows 0..3 and 4..7

    def next_value(window):  # (batch, lookback, 1) -> (batch, 2): last + 1, and junk
        last = window[:, -1, 0]
        return np.stack([last + 1, np.full_like(last, -99)], axis=1)

    out = recursive_forecast(next_value, context, steps=5)
    np.testing.assert_array_equal(out, [[4, 5, 6, 7, 8], [8, 9, 10, 11, 12]])

    def mean_of_window(window):  # the fed-back values must really enter the window
        return window.mean(axis=1)

    out = recursive_forecast(mean_of_window, np.array([[[0.0], [4.0]]]), steps=3)
    np.testing.assert_allclose(out, [[2.0, 3.0, 2.5]])
