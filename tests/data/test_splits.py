"""Split invariants: the test segment is fixed, the history sits right before it, and no test
value reaches a scaler fit or a training or validation target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.data.sources import load_source
from benchmark.data.splits import Scaler, make_cell_data, sample_positions, source_arrays, split_target, test_length
from benchmark.spec.errors import DataError
from benchmark.spec.sections import DataSpec, PretrainSpec, SplitSpec

SPLIT = SplitSpec(lookback=4, horizon=1, test_size=20, val_fraction=0.25)


def position_frame(n: int, uid: str = "s") -> pd.DataFrame:
    """A series whose value is its position: a target's value tells where it came from."""
    return pd.DataFrame({"unique_id": uid, "ds": pd.date_range("2021-01-01", periods=n, freq="h"),
                         "y": np.arange(n, dtype=np.float64)})


def test_test_length_from_size_or_fraction():
    assert test_length(1000, SplitSpec(test_size=100)) == 100
    assert test_length(1000, SplitSpec(test_fraction=0.1)) == 100
    assert test_length(1001, SplitSpec(test_fraction=0.1)) == 101  # ceil


@pytest.mark.parametrize("target_size", [12, 40, 80])
def test_history_right_before_a_fixed_test_segment(target_size):
    cut = split_target(100, target_size, SPLIT, "s")
    assert (cut.test_start, cut.end, cut.n_total) == (80, 100, 100)  # same for every size
    assert cut.test_start - cut.history_start == target_size
    assert cut.history_start < cut.val_start < cut.test_start
    assert cut.val_start - cut.history_start >= SPLIT.lookback + SPLIT.horizon


def test_validation_share_and_its_bounds():
    assert split_target(100, 40, SPLIT, "s").n_val == 10  # ceil(0.25 * 40)
    tiny = split_target(100, 6, SPLIT, "s")  # lookback 4 + horizon 1 train, 1 val
    assert (tiny.n_train, tiny.n_val) == (5, 1)
    at_least_horizon = split_target(100, 40, SplitSpec(lookback=4, horizon=3, test_size=20,
                                                       val_fraction=0.0), "s")
    assert at_least_horizon.n_val == 3


def test_too_short_series_and_too_small_target_size():
    with pytest.raises(DataError) as info:
        split_target(100, 90, SPLIT, "ett/ETTh1:OT")
    assert str(info.value) == ("target ett/ETTh1:OT has 100 points but target_size 90 + test 20 "
                               "needs 110: choose a smaller target_size or test_size.")
    with pytest.raises(DataError, match=r"target_size 5 is too small for lookback 4 and horizon 1, "
                                        r"which need at least 6 points"):
        split_target(100, 5, SPLIT, "s")
    with pytest.raises(DataError, match="fewer than horizon 24"):
        split_target(100, 40, SplitSpec(horizon=24, test_size=10), "s")


def test_cell_data_windows_never_touch_the_test_segment():
    frame = position_frame(100)
    cell = make_cell_data(frame, target_size=40, split=SPLIT, label="s")
    cut = cell.split
    assert (cut.history_start, cut.val_start, cut.test_start, cut.end) == (40, 70, 80, 100)
    # the scaler saw exactly the training part [40, 70)
    assert cell.scaler.mean == pytest.approx(np.arange(40, 70).mean())
    assert cell.scaler.std == pytest.approx(np.arange(40, 70).std())
    position = lambda scaled: np.rint(cell.scaler.inverse_transform(scaled)).astype(int)
    x_train, y_train = position(cell.x_train), position(cell.y_train)
    assert y_train[:, 0].tolist() == list(range(44, 70))  # first target after a full lookback
    assert x_train.min() == 40  # training inputs stay inside the history
    assert position(cell.y_val)[:, 0].tolist() == list(range(70, 80))
    assert position(cell.x_val).max() < 80 and position(cell.x_val).min() >= 66
    assert position(cell.y_test)[:, 0].tolist() == list(range(80, 100))
    np.testing.assert_array_equal(position(cell.x_test)[0, :, 0], [76, 77, 78, 79])
    assert (position(cell.x_test)[:, -1, 0] == position(cell.y_test)[:, 0] - 1).all()
    np.testing.assert_array_equal(cell.y_test_true[:, 0], np.arange(80, 100))
    assert cell.test_ds[0, 0] == frame["ds"].iloc[80]
    np.testing.assert_array_equal(cell.insample, np.arange(40, 70))  # the training part
    for array in (cell.x_train, cell.y_train, cell.x_val, cell.y_val, cell.x_test, cell.y_test):
        assert array.dtype == np.float32
    assert cell.x_train.shape == (26, 4, 1) and cell.y_train.shape == (26, 1)


def test_poisoned_test_values_change_nothing_before_the_test():
    frame = position_frame(100)
    poisoned = frame.copy()
    poisoned.loc[80:, "y"] = 1e9
    clean = make_cell_data(frame, 40, SPLIT, "s")
    dirty = make_cell_data(poisoned, 40, SPLIT, "s")
    assert clean.scaler.to_dict() == dirty.scaler.to_dict()
    for name in ("x_train", "y_train", "x_val", "y_val"):
        np.testing.assert_array_equal(getattr(clean, name), getattr(dirty, name))
    np.testing.assert_array_equal(clean.insample, dirty.insample)


def test_same_test_arrays_for_every_target_size():
    frame = position_frame(100)
    small, large = (make_cell_data(frame, size, SPLIT, "s") for size in (12, 60))
    np.testing.assert_array_equal(small.y_test_true, large.y_test_true)
    np.testing.assert_array_equal(small.test_ds, large.test_ds)


def test_horizon_windows_in_the_test_segment():
    split = SplitSpec(lookback=3, horizon=4, test_size=10, val_fraction=0.2)
    cell = make_cell_data(position_frame(60), 30, split, "s")
    assert cell.y_test_true.shape == (7, 4)  # 10 test points, 4-step windows
    np.testing.assert_array_equal(cell.y_test_true[0], [50, 51, 52, 53])
    np.testing.assert_array_equal(cell.y_test_true[-1], [56, 57, 58, 59])
    assert position_max(cell) < 50


def position_max(cell) -> float:
    """Largest original-scale value among all training and validation targets."""
    targets = np.concatenate([cell.y_train.ravel(), cell.y_val.ravel()])
    return float(cell.scaler.inverse_transform(targets).max())


def test_a_target_must_be_one_series():
    frame = pd.concat([position_frame(50, "a"), position_frame(50, "b")])
    with pytest.raises(DataError, match="has 2 series"):
        make_cell_data(frame, 20, SPLIT, "panel")


def test_cell_data_on_real_target(data_dir):
    frame = load_source(DataSpec("ett", {"file": "ETTh1", "column": "OT"}), data_dir)
    split = SplitSpec(lookback=24, test_size=100)
    cells = [make_cell_data(frame, size, split, "ett/ETTh1:OT") for size in (240, 960)]
    np.testing.assert_array_equal(cells[0].y_test_true, cells[1].y_test_true)
    assert cells[0].y_test_true.shape == (100, 1)
    assert cells[0].insample.shape == (240 - 48,) and cells[1].insample.shape == (960 - 192,)


def test_scaler():
    values = np.array([[1.0, 5.0], [3.0, 5.0]])  # second feature constant
    scaler = Scaler().fit(values)
    np.testing.assert_allclose(scaler.mean, [2.0, 5.0])
    np.testing.assert_allclose(scaler.std, [1.0, 1.0])  # std 0 -> 1
    np.testing.assert_allclose(scaler.transform(values), [[-1.0, 0.0], [1.0, 0.0]])
    restored = Scaler.from_dict(scaler.to_dict())
    np.testing.assert_allclose(restored.inverse_transform(restored.transform(values)), values)
    one_d = Scaler().fit(np.array([2.0, 4.0, 6.0]))
    assert one_d.to_dict() == {"kind": "zscore", "mean": 4.0, "std": pytest.approx(np.sqrt(8 / 3))}
    with pytest.raises(RuntimeError, match="not fitted"):
        Scaler().transform(values)


def test_source_arrays_per_series_split_and_scaling():
    frame = pd.concat([position_frame(30, "b"), position_frame(20, "a"), position_frame(25, "c")])
    arrays = source_arrays(frame, PretrainSpec(val_fraction=0.25), lookback=4, horizon=1)
    assert arrays.n_series == 3 and sorted(arrays.scalers) == ["a", "b", "c"]
    # series a: 20 points, targets 4..19, val = last ceil(0.25 * 16) = 4 -> [16, 20)
    scaler_a = arrays.scalers["a"]
    assert scaler_a.mean == pytest.approx(np.arange(16).mean())
    targets_a = np.rint(scaler_a.inverse_transform(arrays.y_train[:12, 0])).astype(int)
    assert targets_a.tolist() == list(range(4, 16))
    val_a = np.rint(scaler_a.inverse_transform(arrays.y_val[:4, 0])).astype(int)
    assert val_a.tolist() == [16, 17, 18, 19]
    # b: 26 targets, 7 val; c: 21 targets, 6 val
    assert len(arrays.y_train) == 12 + 19 + 15 and len(arrays.y_val) == 4 + 7 + 6


def test_source_arrays_limits_with_the_last_windows():
    frame = pd.concat([position_frame(30, "b"), position_frame(20, "a"), position_frame(25, "c")])
    pretrain = PretrainSpec(val_fraction=0.25, windows_per_series=3, max_series=2, sampling="last")
    arrays = source_arrays(frame, pretrain, lookback=4, horizon=1)
    assert sorted(arrays.scalers) == ["a", "b"]  # first two in sorted id order
    assert len(arrays.y_train) == 6
    last_a = np.rint(arrays.scalers["a"].inverse_transform(arrays.y_train[:3, 0])).astype(int)
    assert last_a.tolist() == [13, 14, 15]  # the last three training windows of a


def test_pretraining_windows_are_spread_over_the_whole_history():
    # series a: 20 points, lookback 4, val the last 4 targets: training targets 4..15 (12 windows)
    frame = pd.concat([position_frame(20, "a"), position_frame(60, "b")])
    pretrain = PretrainSpec(val_fraction=0.25, windows_per_series=4, sampling="spread")
    arrays = source_arrays(frame, pretrain, lookback=4, horizon=1)
    targets_a = np.rint(arrays.scalers["a"].inverse_transform(arrays.y_train[:4, 0])).astype(int)
    assert targets_a.tolist() == [4, 8, 11, 15]  # round(linspace(0, 11, 4)) = 0, 4, 7, 11 (+4)
    # b: 60 points, 56 targets, val 14 -> training targets 4..45: first and last both kept
    targets_b = np.rint(arrays.scalers["b"].inverse_transform(arrays.y_train[4:, 0])).astype(int)
    assert targets_b[0] == 4 and targets_b[-1] == 45 and len(targets_b) == 4
    # inputs come from before each target, from the series' start on
    first_inputs = np.rint(arrays.scalers["b"].inverse_transform(arrays.x_train[4, :, 0])).astype(int)
    assert first_inputs.tolist() == [0, 1, 2, 3]


def test_sample_positions_rules():
    assert sample_positions(10, None, "spread").tolist() == list(range(10))
    assert sample_positions(10, 20, "spread").tolist() == list(range(10))
    assert sample_positions(10, 3, "spread").tolist() == [0, 4, 9]  # round(4.5) is 4 (banker's)
    assert sample_positions(10, 3, "last").tolist() == [7, 8, 9]
    with pytest.raises(DataError, match="Known: last, spread"):
        sample_positions(10, 3, "random")


def test_all_m4_hourly_training_windows(data_dir):
    frame = load_source(DataSpec("m4", {}), data_dir)
    arrays = source_arrays(frame, PretrainSpec(val_fraction=0.0), lookback=24, horizon=1)
    assert arrays.x_train.shape == (343_564, 24, 1) and arrays.n_series == 414
