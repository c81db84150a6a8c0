"""The stateful regime: chunks in order, the state carried and reset per epoch (the same as a
manual loop over the same chunks), forecasts that warm the state first (the same as the stateless
twin over the whole prefix), and transfer between stateless and stateful models."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from benchmark.models import TRANSFER_MODES, build_model, load_pretrained_weights, prepare_for_mode
from benchmark.models.compile import compile_model
from benchmark.models.regimes import StreamValidation, reset_states, stateful_forecast, stream_chunks
from benchmark.models.runtime import configure_threads, seed_everything
from benchmark.models.training import train_for_mode
from benchmark.spec.errors import TlbenchError
from benchmark.spec.sections import ModelSpec, TrainingSpec, TransferSpec

LOOKBACK, HORIZON = 6, 2
SPEC = ModelSpec(architecture="lstm", units=8, normalisation="global")  # stateful: no window stage
TRAINING = TrainingSpec(learning_rate=1e-2, max_epochs=2, patience=10)


@pytest.fixture(scope="module", autouse=True)
def _single_threaded():
    configure_threads(1, 1)


def series(n: int = 90) -> np.ndarray:
    t = np.arange(n)
    return np.stack([np.sin(t / 3.0), np.cos(t / 7.0)], axis=1).astype("float32")  # [T, 2]


def test_chunks_are_consecutive_and_non_overlapping():
    values = np.arange(20, dtype="float32")
    x, y = stream_chunks(values, start=2, end=17, lookback=4, horizon=2)
    # chunk k: inputs 2+4k .. 5+4k, targets the next 2; the last target must be < 17
    np.testing.assert_array_equal(x[..., 0], [[2, 3, 4, 5], [6, 7, 8, 9], [10, 11, 12, 13]])
    np.testing.assert_array_equal(y, [[6, 7], [10, 11], [14, 15]])


def manual_training(values, chunks, validation, reset_each_epoch=True):
    """The reference: train_on_batch over the chunks in order, per epoch; weights and val loss."""
    seed_everything(0)
    model = build_model(SPEC, LOOKBACK, values.shape[1], HORIZON, stateful=True)
    compile_model(model, TRAINING)
    x, y = chunks
    weights, val_losses = [], []
    for _ in range(TRAINING.max_epochs):
        if reset_each_epoch:
            reset_states(model)
        for k in range(len(x)):
            model.train_on_batch(x[k:k + 1], y[k:k + 1])
        v = validation
        forecast = stateful_forecast(model, v.values, v.start, v.first, v.end, v.horizon)
        val_losses.append(float(np.mean((forecast - v.targets()) ** 2)))
        weights.append(model.get_weights())
    return model, weights, val_losses


def test_stateful_training_equals_a_manual_loop_over_the_same_chunks():
    values = series()
    chunks = stream_chunks(values, 0, 48, LOOKBACK, HORIZON)
    validation = StreamValidation(values, 0, 48, 58, HORIZON)
    seed_everything(0)
    model = prepare_for_mode("scratch", SPEC, LOOKBACK, 2, HORIZON, None, stateful=True)
    fit = train_for_mode(model, TRANSFER_MODES.get("scratch"), chunks, validation, TRAINING, TransferSpec())
    manual, weights, val_losses = manual_training(values, chunks, validation)
    assert fit.epochs_run == 2
    np.testing.assert_allclose(fit.history["val_loss"], val_losses, rtol=1e-4)
    manual.set_weights(weights[fit.best_epoch - 1])  # the library restores its best epoch
    ours = stateful_forecast(model, values, 0, 58, 68, HORIZON)
    theirs = stateful_forecast(manual, values, 0, 58, 68, HORIZON)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    # the reset matters: without it the same loop ends with other weights (the test can fail)
    _, unreset, _ = manual_training(values, chunks, validation, reset_each_epoch=False)
    assert not np.allclose(unreset[-1][0], weights[-1][0], atol=1e-7)


@pytest.mark.parametrize("head", ["dense", "recurrent"])
def test_warm_forecast_equals_the_stateless_twin_over_the_whole_prefix(head):
    values = series(40)
    spec = ModelSpec(architecture="gru", units=8, head=head, normalisation="global")
    seed_everything(1)
    stateful = build_model(spec, LOOKBACK, 2, HORIZON, stateful=True)
    twin = build_model(spec, None, 2, HORIZON)
    twin.set_weights(stateful.get_weights())
    forecast = stateful_forecast(stateful, values, 3, 20, 40, HORIZON)  # origins 20 .. 38
    assert forecast.shape == (19, HORIZON)
    for i, t in enumerate([20, 27, 38]):
        expected = np.asarray(twin(values[None, 3:t]))[0]
        np.testing.assert_allclose(forecast[t - 20], expected, rtol=1e-4, atol=1e-5)
    stateful.predict_on_batch(values[None, :5])  # state is reset at the start of each forecast
    np.testing.assert_allclose(stateful_forecast(stateful, values, 3, 20, 40, HORIZON), forecast, atol=1e-6)


def test_stateless_body_loads_into_a_stateful_model_and_back():
    seed_everything(2)
    stateless = build_model(SPEC, LOOKBACK, 1, HORIZON, name="pretrained")
    stateful = prepare_for_mode("frozen", SPEC, LOOKBACK, 1, HORIZON, stateless, stateful=True)
    assert all(stateful.get_layer(n).stateful for n in ("body_0", "body_1"))
    for name in ("body_0", "body_1"):
        for a, b in zip(stateless.get_layer(name).get_weights(), stateful.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    back = build_model(SPEC, LOOKBACK, 1, HORIZON)
    assert load_pretrained_weights(back, stateful) == ["body_0", "body_1"]
    np.testing.assert_array_equal(back.get_layer("body_1").get_weights()[0],
                                  stateless.get_layer("body_1").get_weights()[0])


def test_conv1d_lstm_refuses_to_be_stateful_and_says_why():
    spec = ModelSpec(architecture="conv1d_lstm", units=8, conv_filters=4, kernel_size=3, normalisation="global")
    with pytest.raises(TlbenchError, match=r"'conv1d_lstm' cannot be stateful: its causal Conv1D"):
        build_model(spec, LOOKBACK, 1, HORIZON, stateful=True)


def test_both_regimes_meet_the_forecaster_contract():
    """A trained model under either regime is a Forecaster: fit binds the history, forecast from
    origins gives [n_origins, horizon], the stateful one equal to stateful_forecast's rows at those
    origins, the stateless one to predict over each origin's window."""
    from benchmark.forecasters.contract import Forecaster
    from benchmark.models.regimes import REGIMES, predict

    values = series()
    origins = np.array([60, 63, 70])
    seed_everything(0)
    stateful = build_model(SPEC, LOOKBACK, 2, HORIZON, stateful=True)
    forecaster = REGIMES.get("stateful").forecaster(stateful, LOOKBACK).fit(values[:60])
    assert isinstance(forecaster, Forecaster) and forecaster.facts.needs_training
    out = forecaster.forecast(values, origins, HORIZON)
    reference = stateful_forecast(stateful, values, 0, 60, 72, HORIZON)[origins - 60]
    np.testing.assert_array_equal(out, reference)
    stateless = build_model(SPEC, LOOKBACK, 2, HORIZON)
    forecaster = REGIMES.get("stateless").forecaster(stateless, LOOKBACK).fit(values[:60])
    assert forecaster.facts.max_horizon == HORIZON  # a direct model forecasts its outputs only
    windows = np.stack([values[t - LOOKBACK:t] for t in origins])  # [n_origins, L, F]
    np.testing.assert_array_equal(forecaster.forecast(values, origins, HORIZON), predict(stateless, windows))
    with pytest.raises(TlbenchError, match="origins must increase"):
        forecaster.forecast(values, np.array([50]), HORIZON)  # inside the history
