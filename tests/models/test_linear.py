"""The linear reference forecasters (``nlinear``, ``dlinear``; docs/models.md "Linear reference
forecasters"): the shape contract, answers visible on ``np.arange`` windows, DLinear's
decomposition against a NumPy moving average, how they meet the normalisations, the transfer modes
and regimes they refuse (with the message, before anything trains), and a real grid cell each."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from benchmark.models import ARCHITECTURES, build_model, param_counts, prepare_for_mode
from benchmark.models.linear import DLINEAR_KERNEL
from benchmark.models.regimes import predict
from benchmark.models.runtime import seed_everything
from benchmark.run.validation import grid_problems
from benchmark.spec.errors import TlbenchError
from benchmark.spec.profiles import load_grid
from benchmark.spec.sections import ModelSpec, TrainingSpec

LINEAR = ("nlinear", "dlinear")
pytestmark = pytest.mark.usefixtures("single_threaded_eager")


def trend_windows(lookback: int, horizon: int, slopes=(-2.0, 0.5, 3.0), offsets=(-50.0, 0.0, 7.0)):
    """Windows of ``offset + slope * np.arange``: x [n, lookback, 1], y [n, horizon] (the line's next steps)."""
    t = np.arange(lookback + horizon, dtype=np.float64)
    series = np.array([o + s * t for s in slopes for o in offsets])  # [n, lookback + horizon]
    return series[:, :lookback, None].astype("float32"), series[:, lookback:].astype("float32")


def moving_average_reference(x: np.ndarray, kernel: int) -> np.ndarray:
    """LTSF-Linear's ``moving_avg`` in NumPy: ends padded by repeating the end values. x [B, L]."""
    front, end = (kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2
    padded = np.concatenate([np.repeat(x[:, :1], front, 1), x, np.repeat(x[:, -1:], end, 1)], axis=1)
    return np.stack([np.convolve(row, np.ones(kernel) / kernel, mode="valid") for row in padded])


@pytest.mark.parametrize("n_features", [1, 3])
@pytest.mark.parametrize("architecture", LINEAR)
def test_shape_contract_and_parameter_counts(architecture, n_features):
    for lookback, horizon in ((8, 3), (96, 24)):
        model = build_model(ModelSpec(architecture=architecture), lookback, n_features, horizon)
        x = np.random.default_rng(0).normal(size=(5, lookback, n_features)).astype("float32")
        assert model.input_shape == (None, lookback, n_features) and model.output_shape == (None, horizon)
        assert predict(model, x).shape == (5, horizon)
        dense = {"nlinear": 1, "dlinear": 2}[architecture] * (lookback * horizon + horizon)
        projection = n_features + 1 if n_features > 1 else 0
        assert param_counts(model) == {"trainable": dense + projection, "non_trainable": 0,
                                       "total": dense + projection}
        # no head: every weighted layer but the input projection is a body layer
        assert not [layer.name for layer in model.layers if layer.name.startswith("head_")]


def nlinear_by_hand(lookback: int, horizon: int, normalisation: str) -> keras.Model:
    """NLinear whose map is ``step h = last + h * (last - previous)``: a line's exact continuation."""
    model = build_model(ModelSpec(architecture="nlinear", normalisation=normalisation), lookback, 1, horizon)
    kernel = np.zeros((lookback, horizon), dtype=np.float32)
    steps = np.arange(1, horizon + 1, dtype=np.float32)
    kernel[-1], kernel[-2] = steps, -steps  # relative window: its last entry is 0, the one before -slope
    model.get_layer("body_0").set_weights([kernel, np.zeros(horizon, dtype=np.float32)])
    return model


@pytest.mark.parametrize("normalisation", ["global", "last_value", "window"])
def test_nlinear_continues_a_line_exactly_with_weights_set_by_hand(normalisation):
    x, y = trend_windows(8, 3)
    np.testing.assert_allclose(predict(nlinear_by_hand(8, 3, normalisation), x), y, atol=1e-4)


def test_a_one_step_nlinear_continues_a_line_recursively():
    from benchmark.data.windows import recursive_forecast

    x, y = trend_windows(8, 5)
    model = nlinear_by_hand(8, 1, "last_value")
    np.testing.assert_allclose(recursive_forecast(lambda w: predict(model, w), x, 5), y, atol=1e-3)


def test_nlinear_under_last_value_normalisation_is_not_normalised_twice():
    """Its own last-value step sees windows that already end at 0: the same forecasts with or
    without the normalisation's window stage, for any weights."""
    seed_everything(3)
    plain = build_model(ModelSpec(architecture="nlinear", normalisation="global"), 8, 1, 3)
    stacked = build_model(ModelSpec(architecture="nlinear", normalisation="last_value"), 8, 1, 3)
    stacked.set_weights(plain.get_weights())
    x = np.random.default_rng(1).normal(size=(16, 8, 1)).astype("float32") * 5 + 40
    np.testing.assert_allclose(predict(stacked, x), predict(plain, x), rtol=1e-5, atol=1e-4)


def test_nlinear_learns_a_linear_trend_from_scratch():
    import tensorflow as tf

    from benchmark.models.compile import compile_model

    seed_everything(0)
    x, y = trend_windows(8, 3, slopes=np.linspace(-3, 3, 13), offsets=np.linspace(-20, 20, 9))
    model = build_model(ModelSpec(architecture="nlinear", normalisation="global"), 8, 1, 3)
    compile_model(model, TrainingSpec(learning_rate=0.05, loss="mse"))
    tf.config.run_functions_eagerly(False)
    try:
        model.fit(x, y, epochs=300, batch_size=len(x), verbose=0)
    finally:
        tf.config.run_functions_eagerly(True)
    x_test, y_test = trend_windows(8, 3, slopes=(1.7,), offsets=(123.0,))
    error = np.abs(predict(model, x_test) - y_test).max()
    assert error < 0.05 * np.abs(y_test - x_test[:, -1:, 0]).max(), error  # within 5% of the step


@pytest.mark.parametrize("lookback", [8, 40])  # shorter than the kernel, and longer
def test_dlinear_decomposition_is_the_numpy_moving_average(lookback):
    model = build_model(ModelSpec(architecture="dlinear", normalisation="global"), lookback, 1, 4)
    x = np.cumsum(np.random.default_rng(2).normal(size=(6, lookback)), axis=1).astype("float32")
    trend_model = keras.Model(model.input, [model.get_layer("dlinear_trend").output,
                                            model.get_layer("dlinear_remainder").output])
    trend, remainder = (np.asarray(a)[:, :, 0] for a in trend_model(x[:, :, None]))
    reference = moving_average_reference(x.astype(np.float64), DLINEAR_KERNEL)
    np.testing.assert_allclose(trend, reference, atol=1e-4)
    np.testing.assert_allclose(remainder, x - reference, atol=1e-4)
    (w_trend, b_trend), (w_rest, b_rest) = (model.get_layer(n).get_weights() for n in ("body_0", "body_1"))
    expected = reference @ w_trend + b_trend + (x - reference) @ w_rest + b_rest  # the two maps, summed
    np.testing.assert_allclose(predict(model, x[:, :, None]), expected, rtol=1e-4, atol=1e-4)


def test_linear_models_refuse_what_makes_no_sense():
    for architecture in LINEAR:
        entry = ARCHITECTURES.get(architecture)
        assert [mode for mode, _ in entry.refused_modes] == ["frozen", "lp_ft", "partial"]
        assert not entry.stateful_capable and entry.window_sized
        with pytest.raises(TlbenchError, match="cannot be stateful: it maps a fixed window"):
            build_model(ModelSpec(architecture=architecture), 8, 1, 3, stateful=True)
        with pytest.raises(TlbenchError, match="needs lookback as a positive integer"):
            build_model(ModelSpec(architecture=architecture), None, 1, 3)
        pretrained = build_model(ModelSpec(architecture=architecture), 8, 1, 3)
        with pytest.raises(TlbenchError, match=f"'{architecture}' cannot use transfer mode 'frozen': "
                                               "a linear forecaster .* freezing the body leaves nothing"):
            prepare_for_mode("frozen", ModelSpec(architecture=architecture), 8, 1, 3, pretrained)
        # a body pretrained on another lookback cannot load: its weights are lookback x horizon
        with pytest.raises(TlbenchError, match=r"layer 'body_0': pretrained weight shapes \[\(8, 3\)"):
            prepare_for_mode("finetune", ModelSpec(architecture=architecture), 16, 1, 3, pretrained)


def test_grid_validation_refuses_them_before_anything_trains():
    spec = load_grid("smoke", ["architectures=[lstm, nlinear, dlinear]", "modes=[scratch, frozen, zeroshot]",
                               "regimes=[stateless, stateful]", "pretrain.lookback=48",
                               "model.normalisation=global"])
    problems = "\n".join(grid_problems(spec))
    for j, architecture in ((1, "nlinear"), (2, "dlinear")):
        assert (f"grid.modes[1]: architecture '{architecture}' cannot use transfer mode 'frozen': a linear "
                "forecaster is one lookback -> horizon map") in problems
        assert f"or drop 'frozen' from grid.modes or grid.architectures[{j}] '{architecture}'" in problems
        assert f"grid.regimes[1]: 'stateful' cannot train grid.architectures[{j}] '{architecture}'" in problems
    assert "grid.pretrain.lookback: 48, but nlinear, dlinear weigh each of the cells' lookback steps (24)" \
        in problems
    # scratch (modes[0]) and zeroshot (modes[2]) are accepted; lstm accepts frozen
    assert [p.split(":")[0] for p in grid_problems(spec) if p.startswith("grid.modes")] == ["grid.modes[1]"] * 2
    assert "'lstm' cannot" not in problems
    fine = load_grid("smoke", ["architectures=[nlinear, dlinear]", "modes=[scratch, finetune, zeroshot]"])
    assert grid_problems(fine) == []
    longer = load_grid("smoke", ["architectures=[nlinear]", "modes=[finetune]", "pretrain.horizon=48"])
    assert [p.split(":")[0] for p in grid_problems(longer)] == ["grid.pretrain.horizon"]
    # ft_from_head starts from the body's first H outputs: a longer body horizon is fine, a shorter one not
    from_head = load_grid("smoke", ["architectures=[nlinear]", "modes=[ft_from_head]", "pretrain.horizon=48"])
    assert grid_problems(from_head) == []
    shorter = load_grid("smoke", ["architectures=[nlinear]", "modes=[ft_from_head]", "pretrain.horizon=48",
                                  "split.horizon=96"])
    assert [p.split(":")[0] for p in grid_problems(shorter)] == ["grid.pretrain.horizon"]


def test_a_tiny_real_grid_cell_of_each_runs_through_run_grid(settings):
    from benchmark.results.leaderboard import Leaderboard
    from benchmark.run.engines import LocalEngine
    from benchmark.run.grid import run_grid

    spec = load_grid("smoke", ["architectures=[nlinear, dlinear]", "modes=[scratch]", "baselines=[]",
                               "target_sizes=[240]", "split.test_size=48", "training.max_epochs=2"])
    result = run_grid(spec, settings, LocalEngine(1))
    assert result.counts() == {"finished": 2}, [r.error for r in result.failed]
    rows = Leaderboard(settings.results).read(kind="model").set_index("architecture")
    assert rows.loc["nlinear", "trainable_params"] == 24 * 1 + 1  # lookback 24 -> horizon 1
    assert rows.loc["dlinear", "trainable_params"] == 2 * (24 * 1 + 1)
    assert (rows["frozen_params"] == 0).all() and np.isfinite(rows["mae"]).all()


@pytest.mark.parametrize("architecture", LINEAR)
def test_saved_linear_models_load_in_safe_mode(tmp_path, architecture):
    seed_everything(0)
    model = build_model(ModelSpec(architecture=architecture), 30, 1, 4)
    x = np.cumsum(np.random.default_rng(0).normal(size=(5, 30, 1)), axis=1).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    assert np.array_equal(predict(model, x), predict(loaded, x))


def test_grid_subgrids_are_checked_for_the_pairs_they_run():
    axes = ["architectures=[lstm, nlinear]", "modes=[scratch, frozen]"]
    apart = load_grid("smoke", axes + ["subgrids=[{architectures: [lstm], modes: [frozen]}, "
                                       "{architectures: [nlinear], modes: [scratch]}]"])
    assert grid_problems(apart) == []
    together = load_grid("smoke", axes + ["subgrids=[{architectures: [lstm], modes: [frozen]}, "
                                          "{architectures: [nlinear], modes: [frozen]}]"])
    [problem] = grid_problems(together)
    assert problem.startswith("grid.subgrids[1]: grid.modes[0]: architecture 'nlinear' cannot use "
                              "transfer mode 'frozen': a linear forecaster"), problem
