"""Normalisations: each inverts exactly, none reads past its window or into the test segment, the
model's window stage is the NumPy reference, and a body trained one way is refused by a cell of
another (issue #15)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.data.normalisation import (
    NORMALISATIONS,
    SCALERS,
    WINDOW_STAGES,
    MinMaxScaler,
    Scaler,
    denormalise_outputs,
    normalise_windows,
)
from benchmark.data.splits import make_cell_data, test_origins
from benchmark.data.windows import FORECASTS, make_windows
from benchmark.spec.errors import TlbenchError
from benchmark.spec.sections import ModelSpec, SplitSpec

pytestmark = pytest.mark.usefixtures("single_threaded_eager")


def arange_frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"unique_id": "s", "ds": pd.date_range("2021-01-01", periods=n, freq="h"),
                         "y": np.arange(n, dtype=np.float64)})


def test_every_normalisation_is_documented_and_complete():
    for name in NORMALISATIONS:
        entry = NORMALISATIONS.get(name)
        assert entry.description and entry.scaler in SCALERS
        assert entry.window is None or entry.window in WINDOW_STAGES


@pytest.mark.parametrize("scaler_class", [Scaler, MinMaxScaler])
def test_series_scalers_invert_exactly_on_arange(scaler_class):
    values = np.arange(50, dtype=np.float64)
    scaler = scaler_class().fit(values[:30])
    restored = scaler.inverse_transform(scaler.transform(values))
    np.testing.assert_allclose(restored, values, rtol=0, atol=1e-12)
    again = Scaler.from_dict(scaler.to_dict())
    assert type(again) is scaler_class and np.allclose(again.transform(values), scaler.transform(values))


def test_minmax_maps_the_training_part_onto_zero_one():
    scaler = MinMaxScaler().fit(np.arange(10.0, 21.0))
    assert scaler.transform(np.array([10.0, 15.0, 20.0])).tolist() == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("stage", ["last_value", "window"])
def test_window_stages_invert_exactly_on_arange(stage):
    x, y = make_windows(np.arange(40, dtype=np.float64), lookback=6, horizon=3)
    normalised, stats = normalise_windows(stage, x)
    # every window of an arange is the same shape once its level (and spread) is removed
    assert np.allclose(normalised, normalised[:1])
    # outputs expressed the same way come back exactly
    y_normalised = (y - stats[0]) / stats[1]
    np.testing.assert_allclose(denormalise_outputs(y_normalised, stats), y, rtol=0, atol=1e-9)
    if stage == "last_value":
        assert normalised[0, -1, 0] == 0.0 and np.allclose(y_normalised[:, 0], 1.0)


def test_a_flat_window_is_centred_not_divided_by_zero():
    normalised, (location, scale) = normalise_windows("window", np.full((2, 5, 1), 3.0))
    assert np.all(np.isfinite(normalised)) and np.all(normalised == 0.0) and np.all(scale > 0)


@pytest.mark.parametrize("stage", ["last_value", "window"])
def test_window_statistics_read_nothing_after_the_window(stage):
    series = np.sin(np.arange(60) / 3.0) * 5 + np.arange(60) * 0.1
    x, _ = make_windows(series, lookback=8, horizon=1)
    poisoned = series.copy()
    poisoned[30:] = 1e6  # everything from position 30 on
    x_poisoned, _ = make_windows(poisoned, lookback=8, horizon=1)
    before = slice(0, 30 - 8 + 1)  # windows whose inputs all lie before position 30
    a, stats_a = normalise_windows(stage, x[before])
    b, stats_b = normalise_windows(stage, x_poisoned[before])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(stats_a[0], stats_b[0])


@pytest.mark.parametrize("normalisation", ["global", "last_value", "window", "minmax"])
def test_no_test_value_reaches_a_cell_s_scaling(normalisation):
    split = SplitSpec(lookback=4, horizon=2, test_size=20, val_fraction=0.25)
    frame = arange_frame(100)
    poisoned = frame.assign(y=np.where(np.arange(100) >= 80, 1e6, frame["y"]))
    clean = make_cell_data(frame, 40, split, "s", normalisation=normalisation)
    dirty = make_cell_data(poisoned, 40, split, "s", normalisation=normalisation)
    assert clean.scaler.to_dict() == dirty.scaler.to_dict()
    for name in ("x_train", "y_train", "x_val", "y_val"):
        np.testing.assert_array_equal(getattr(clean, name), getattr(dirty, name))


@pytest.mark.parametrize("normalisation", ["last_value", "window"])
def test_the_model_window_stage_equals_the_numpy_reference(normalisation):
    from benchmark.models import build_model
    from benchmark.models.layers import WindowDenorm, WindowNorm

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(6, 12, 2)) * 3 + 40).astype(np.float32)
    stage = NORMALISATIONS.get(normalisation).window
    expected, stats = normalise_windows(stage, x)
    np.testing.assert_allclose(np.asarray(WindowNorm(stage)(x)), expected, rtol=1e-5, atol=1e-4)
    outputs = rng.normal(size=(6, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(WindowDenorm(stage)([outputs, x])),
                               denormalise_outputs(outputs, stats), rtol=1e-5, atol=1e-4)
    # a whole model is shift-equivariant in its target channel: it forecasts a level it never saw
    model = build_model(ModelSpec(units=4, normalisation=normalisation), 12, 1, 3)
    shifted = x[:, :, :1] + 1000.0
    np.testing.assert_allclose(model.predict_on_batch(shifted),
                               model.predict_on_batch(x[:, :, :1]) + 1000.0, rtol=0, atol=2e-3)


def test_a_body_of_another_normalisation_is_refused_with_the_fix():
    from benchmark.models import build_model, prepare_for_mode

    body = build_model(ModelSpec(units=4, normalisation="window"), 8, 1, 1, name="pretrained")
    with pytest.raises(TlbenchError, match=r"model.normalisation to 'window'"):
        prepare_for_mode("finetune", ModelSpec(units=4, normalisation="global"), 8, 1, 1, body)
    model = prepare_for_mode("finetune", ModelSpec(units=4, normalisation="window"), 8, 1, 1, body)
    np.testing.assert_array_equal(model.get_layer("body_0").get_weights()[0],
                                  body.get_layer("body_0").get_weights()[0])


def test_zeroshot_uses_a_longer_horizon_body_s_first_outputs():
    from benchmark.models import build_model, prepare_for_mode

    spec = ModelSpec(units=4, normalisation="last_value")
    body = build_model(spec, 8, 1, 6, name="pretrained")
    cell = prepare_for_mode("zeroshot", spec, 8, 1, 2, body)
    x = np.random.default_rng(1).normal(size=(5, 8, 1)).astype(np.float32)
    assert cell.output_shape == (None, 2)
    np.testing.assert_allclose(cell.predict_on_batch(x), body.predict_on_batch(x)[:, :2], atol=1e-6)
    with pytest.raises(TlbenchError, match="pretrain.horizon >= 8"):
        prepare_for_mode("zeroshot", spec, 8, 1, 8, body)


def test_direct_and_recursive_forecasts_are_scored_on_the_same_origins():
    frame = arange_frame(120)
    direct = make_cell_data(frame, 60, SplitSpec(lookback=6, horizon=4, test_size=30), "s")
    recursive = make_cell_data(frame, 60, SplitSpec(lookback=6, horizon=4, test_size=30,
                                                    forecast="recursive"), "s")
    assert direct.y_train.shape[1] == 4 and recursive.y_train.shape[1] == 1
    np.testing.assert_array_equal(direct.y_test_true, recursive.y_test_true)
    np.testing.assert_array_equal(direct.test_ds, recursive.test_ds)
    np.testing.assert_array_equal(direct.x_test, recursive.x_test)
    # a perfect one-step model of an arange, fed back 4 times, forecasts every step exactly
    step = float(direct.scaler.transform(np.array([1.0]))[0] - direct.scaler.transform(np.array([0.0]))[0])
    forecast = FORECASTS.get("recursive").forecast(lambda w: w[:, -1:, 0] + step, recursive.x_test, 4)
    np.testing.assert_allclose(recursive.scaler.inverse_transform(forecast), recursive.y_test_true,
                               atol=1e-4)


def test_test_stride_keeps_every_kth_origin_for_models_and_baselines():
    split = SplitSpec(lookback=6, horizon=4, test_size=30, test_stride=5)
    data = make_cell_data(arange_frame(120), 60, split, "s")
    origins = test_origins(data.split, split)
    assert origins.tolist() == [90, 95, 100, 105, 110, 115]  # 30-point test segment, 4 steps each
    assert data.y_test_true[:, 0].tolist() == [float(t) for t in origins]
