"""Training loop: seeding and reproducibility, early stopping on validation loss, failures as
CellFailed, epoch splitting, registries and predict."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from benchmark.models import TRANSFER_MODES, build_model, prepare_for_mode
from benchmark.models.compile import LOSSES, OPTIMIZERS, compile_model
from benchmark.models.regimes import predict
from benchmark.models.runtime import configure_threads, seed_everything
from benchmark.models.training import fit, split_epochs, train_for_mode
from benchmark.spec.errors import CellFailed, TlbenchError, UnknownNameError
from benchmark.spec.sections import ModelSpec, TrainingSpec, TransferSpec

LOOKBACK, HORIZON = 8, 1
SPEC = ModelSpec(units=8)


pytestmark = pytest.mark.usefixtures("single_threaded_eager")


def sine_windows(n_points: int, lookback: int = LOOKBACK, horizon: int = HORIZON):
    """``sin(t / 4)`` cut into windows: x [n, lookback, 1], y [n, horizon]."""
    series = np.sin(np.arange(n_points) / 4.0).astype("float32")
    windows = np.lib.stride_tricks.sliding_window_view(series, lookback + horizon)
    return windows[:, :lookback, None].copy(), windows[:, lookback:].copy()


def train_and_predict(seed: int) -> np.ndarray:
    x, y = sine_windows(200)
    seed_everything(seed)
    model = prepare_for_mode("scratch", SPEC, LOOKBACK, 1, HORIZON, None)
    # 150 windows in 3 shuffled batches: the order matters, and it must repeat with the seed.
    training = TrainingSpec(learning_rate=1e-2, batch_size=64, max_epochs=1, shuffle=True)
    train_for_mode(model, TRANSFER_MODES.get("scratch"), (x[:150], y[:150]), (x[150:], y[150:]),
                   training, TransferSpec())
    return predict(model, x[150:])


def test_same_seed_same_predictions_other_seed_differs():
    first, again, other = train_and_predict(0), train_and_predict(0), train_and_predict(1)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


def test_early_stopping_watches_val_loss_and_restores_the_best_epoch():
    # Same inputs, opposite targets: fitting the training set makes the validation loss rise.
    x, y = sine_windows(200)
    seed_everything(0)
    model = build_model(SPEC, LOOKBACK, 1, HORIZON)
    training = TrainingSpec(learning_rate=1e-2, batch_size=256, max_epochs=30, patience=2)
    compile_model(model, training)
    snapshots, epochs_seen = [], []

    def on_epoch_end(epoch: int, logs: dict) -> None:
        epochs_seen.append(epoch)
        snapshots.append(model.get_weights())

    result = fit(model, (x, y), (x, -y), training, on_epoch_end=on_epoch_end)
    loss, val_loss = result.history["loss"], result.history["val_loss"]
    best = int(np.argmin(val_loss))
    assert result.stopped_early and result.epochs_run == best + 1 + training.patience < 30
    assert result.best_epoch == best + 1
    assert epochs_seen == list(range(result.epochs_run))
    assert loss[-1] < loss[best]  # training loss still falling when it stopped
    assert all(v > val_loss[best] for v in val_loss[best + 1:])
    final = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(final, snapshots[best]))
    assert not all(np.array_equal(a, b) for a, b in zip(final, snapshots[-1]))


def test_non_finite_loss_raises_cell_failed():
    x, y = sine_windows(100)
    y[5] = np.nan
    model = build_model(SPEC, LOOKBACK, 1, HORIZON)
    with pytest.raises(CellFailed, match="non-finite loss at epoch 1"):
        fit(model, (x, y), (x, y), TrainingSpec(batch_size=256, max_epochs=3))


def test_time_limit_raises_cell_failed():
    x, y = sine_windows(100)
    model = build_model(SPEC, LOOKBACK, 1, HORIZON)
    with pytest.raises(CellFailed, match="time limit of 0 s exceeded after epoch 1"):
        fit(model, (x, y), (x, y), TrainingSpec(batch_size=256, max_epochs=3, time_limit_s=0.0))


def test_inputs_are_checked():
    x, y = sine_windows(100)
    model = build_model(SPEC, LOOKBACK, 1, HORIZON)
    with pytest.raises(TlbenchError, match="val has no windows"):
        fit(model, (x, y), (x[:0], y[:0]), TrainingSpec())
    with pytest.raises(TlbenchError, match=r"train: expected x of shape \(n, lookback, n_features\)"):
        fit(model, (x[..., 0], y), (x, y), TrainingSpec())


def test_zeroshot_trains_nothing():
    model = prepare_for_mode("scratch", SPEC, LOOKBACK, 1, HORIZON, None)
    result = train_for_mode(model, TRANSFER_MODES.get("zeroshot"), None, None, TrainingSpec(), TransferSpec())
    assert (result.epochs_run, result.seconds, result.history) == (0, 0.0, {"loss": [], "val_loss": []})


def exact_nlinear(x: np.ndarray, y: np.ndarray):
    """An ``nlinear`` body fitted by least squares to ``(x, y)``: on sine windows, an exact fit
    (a sine obeys a linear recurrence), so no weight change can lower its validation loss."""
    spec = ModelSpec(architecture="nlinear", normalisation="global")
    model = build_model(spec, LOOKBACK, 1, HORIZON, name="exact_body")
    relative = (x[..., 0] - x[:, -1:, 0]).astype("float64")  # [n, L]: the window minus its last value
    design = np.hstack([relative, np.ones((len(x), 1))])
    coefficients, *_ = np.linalg.lstsq(design, (y - x[:, -1:, 0]).astype("float64"), rcond=None)
    model.get_layer("body_0").set_weights([coefficients[:-1].astype("float32"), coefficients[-1].astype("float32")])
    return spec, model


def test_ft_from_head_ends_with_its_start_when_every_epoch_hurts():
    """The body fits the validation windows exactly; the training windows' targets are shifted by
    1 (a level shift), so every step moves away from the validation optimum. ft_from_head scores
    its start, no epoch beats it, and it ends with the starting weights and the zero-shot
    validation score. finetune, the same training without that start, ends worse."""
    x, y = sine_windows(200)
    train, val = (x[:150], y[:150] + 1.0), (x[150:], y[150:])
    spec, body = exact_nlinear(x, y)
    zeroshot = prepare_for_mode("zeroshot", spec, LOOKBACK, 1, HORIZON, body)
    zeroshot_score = float(np.mean((predict(zeroshot, val[0]) - val[1]) ** 2))
    assert zeroshot_score < 1e-8  # the start is the validation optimum
    training = TrainingSpec(learning_rate=1e-2, batch_size=256, max_epochs=6, patience=2)  # 1 step an epoch
    results, models = {}, {}
    for mode in ("ft_from_head", "finetune"):
        seed_everything(0)
        models[mode] = prepare_for_mode(mode, spec, LOOKBACK, 1, HORIZON, body)
        results[mode] = train_for_mode(models[mode], TRANSFER_MODES.get(mode), train, val, training, TransferSpec())
    kept = results["ft_from_head"]
    assert kept.start_loss == pytest.approx(zeroshot_score, abs=1e-9)
    assert all(v > kept.start_loss for v in kept.history["val_loss"])  # every epoch hurt
    assert (kept.best_epoch, kept.epochs_run, kept.stopped_early) == (0, training.patience, True)
    assert all(np.array_equal(a, b) for a, b in zip(models["ft_from_head"].get_weights(), body.get_weights()))
    assert np.array_equal(predict(models["ft_from_head"], val[0]), predict(zeroshot, val[0]))
    moved = results["finetune"]
    assert moved.start_loss is None and moved.best_epoch >= 1  # its best is a trained epoch, worse than the start
    assert float(np.mean((predict(models["finetune"], val[0]) - val[1]) ** 2)) > 100 * max(zeroshot_score, 1e-12)


def test_body_lr_factor_is_key_neutral_at_its_default_and_validated():
    from benchmark.run.validation import grid_problems
    from benchmark.spec.identity import key_plain, to_plain
    from benchmark.spec.tree import GridSpec

    assert "body_lr_factor" in to_plain(TransferSpec()) and "body_lr_factor" not in key_plain(TransferSpec())
    assert key_plain(TransferSpec(body_lr_factor=0.5))["body_lr_factor"] == 0.5
    assert "grid.transfer.body_lr_factor: must be >= 0 (0: the body stays as loaded), got -1" in \
        grid_problems(GridSpec(transfer=TransferSpec(body_lr_factor=-1)))


@pytest.mark.parametrize("fractions,max_epochs,expected", [
    ([1.0], 7, [7]), ([0.5, 0.5], 1, [1, 1]), ([0.3, 0.7], 50, [15, 35]), ([0.5, 0.5], 5, [3, 2]),
    ([0.9, 0.1], 3, [3, 1]),
])
def test_split_epochs(fractions, max_epochs, expected):
    assert split_epochs(fractions, max_epochs) == expected


def test_registries_and_compile():
    assert OPTIMIZERS.names() == ["adam", "adamw", "nadam", "sgd"]
    assert LOSSES.names() == ["huber", "mae", "mse"]
    model = build_model(SPEC, LOOKBACK, 1, HORIZON)
    compile_model(model, TrainingSpec(optimizer="sgd", loss="huber", learning_rate=0.5), learning_rate=0.25)
    assert model.optimizer.momentum == 0.9
    assert float(np.asarray(model.optimizer.learning_rate)) == 0.25
    with pytest.raises(UnknownNameError, match="Unknown optimizer 'adamm'. Known: adam, adamw, nadam, sgd."):
        compile_model(model, TrainingSpec(optimizer="adamm"))


def test_predict_in_chunks_matches_one_batch():
    x, _ = sine_windows(60)
    model = build_model(SPEC, LOOKBACK, 1, HORIZON)  # uncompiled is fine
    assert np.allclose(predict(model, x, batch_size=7), predict(model, x), atol=1e-6)
    assert predict(model, x[:0]).shape == (0, HORIZON)


def test_seeding_and_threads_tolerate_repeats(caplog):
    seed_everything(3)
    seed_everything(3)
    with caplog.at_level(logging.WARNING, logger="benchmark.models.training"):
        configure_threads(1, 1)  # the current values: silently fine
        configure_threads(2, 2)  # too late in this process: logged, not raised
    assert "already initialised" in caplog.text


def test_training_deterministic_switches_tf_op_determinism_and_the_cell_key():
    from tensorflow.python.framework import config as tf_config

    from benchmark.run.jobs import cell_key, expand
    from benchmark.spec.profiles import load_grid

    try:
        seed_everything(0, deterministic=False)
        assert not tf_config.is_op_determinism_enabled()
        seed_everything(0)
        assert tf_config.is_op_determinism_enabled()
    finally:
        seed_everything(0)  # the default for every later test in this process
    fast = expand(load_grid("smoke", ["training.deterministic=false"]))[0]
    assert fast.training.deterministic is False
    assert cell_key(fast, "fp") != cell_key(expand(load_grid("smoke"))[0], "fp")  # another result


# --------------------------------------------------------------------------- the fair budget


@pytest.mark.parametrize("n_windows, batch, max_epochs, min_steps, expected", [
    (8521, 64, 8, 1000, 8),     # ett-standard at 8640 points: 134 steps/epoch, max_epochs already enough
    (1, 64, 8, 0, 8),           # min_steps 0: max_epochs alone (the behaviour before the field)
    (601, 64, 8, 1000, 100),    # 720 points: 10 steps/epoch, raised to 100 epochs
    (120, 64, 1, 10, 5),        # 2 steps/epoch
])
def test_budget_epochs_raises_max_epochs_to_min_steps(n_windows, batch, max_epochs, min_steps, expected):
    from benchmark.models.training import budget_epochs

    assert budget_epochs(TrainingSpec(max_epochs=max_epochs, min_steps=min_steps), n_windows, batch) == expected


def test_a_120_point_target_gets_at_least_min_steps_optimizer_steps():
    # 120 points, lookback 8, horizon 1: 112 windows, 96 train (2 steps per epoch at batch 64), 16
    # val. max_epochs 1 alone is 2 steps; min_steps 40 raises it to 20 epochs. The patience is
    # large, so only the budget ends the run; the optimizer counts the steps it really took.
    x, y = sine_windows(120)
    seed_everything(0)
    training = TrainingSpec(learning_rate=1e-3, batch_size=64, max_epochs=1, min_steps=40, patience=1000)
    for run in (lambda model: fit(model, (x[:96], y[:96]), (x[96:], y[96:]), training),
                lambda model: train_for_mode(model, TRANSFER_MODES.get("scratch"), (x[:96], y[:96]),
                                             (x[96:], y[96:]), training, TransferSpec())):
        model = prepare_for_mode("scratch", SPEC, LOOKBACK, 1, HORIZON, None)
        result = run(model)
        assert result.epochs_run == 20
        assert int(model.optimizer.iterations.numpy()) >= 40
    unbudgeted = prepare_for_mode("scratch", SPEC, LOOKBACK, 1, HORIZON, None)
    fit(unbudgeted, (x[:96], y[:96]), (x[96:], y[96:]), TrainingSpec(batch_size=64, max_epochs=1))
    assert int(unbudgeted.optimizer.iterations.numpy()) == 2  # the test can fail: without the budget, 2


def test_min_steps_is_validated_and_keys_change_only_when_it_is_set():
    from benchmark.run.jobs import cell_key, expand
    from benchmark.run.validation import validate_grid
    from benchmark.spec.convert import from_dict
    from benchmark.spec.errors import SpecError
    from benchmark.spec.profiles import load_grid
    from benchmark.spec.tree import GridSpec

    with pytest.raises(SpecError, match=r"grid.training.min_steps: must be >= 0 optimizer steps .* got -5"):
        validate_grid(from_dict(GridSpec, {"training": {"min_steps": -5}}))
    with pytest.raises(SpecError, match=r"grid.training.min_steps: expected an integer, got 'many'"):
        from_dict(GridSpec, {"training": {"min_steps": "many"}})
    plain = expand(load_grid("smoke"))[0]
    zero = expand(load_grid("smoke", ["training.min_steps=0"]))[0]
    set_ = expand(load_grid("smoke", ["training.min_steps=500"]))[0]
    # the default (0: max_epochs alone, the behaviour before the field) leaves every key as it was
    assert cell_key(zero, "fp") == cell_key(plain, "fp")
    assert cell_key(set_, "fp") != cell_key(plain, "fp")  # another budget, another result


@pytest.mark.parametrize("architecture", ["nlinear", "dlinear"])
def test_a_linear_body_of_a_longer_horizon_starts_ft_from_head_with_its_first_outputs(architecture):
    """A linear reference pretrained for M4 Hourly's 48 steps starts a 24-step ft_from_head cell:
    its lookback -> horizon maps are cut to their first 24 columns, so before training the cell
    forecasts exactly the body's first 24 steps (the same network as scratch's, 24 outputs)."""
    spec = ModelSpec(architecture=architecture, normalisation="last_value")
    body = build_model(spec, 16, 1, 48, name="body48")
    rng = np.random.default_rng(0)
    for layer in body.layers:
        if layer.weights:
            layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.weights])
    cell = prepare_for_mode("ft_from_head", spec, 16, 1, 24, body)
    assert cell.output_shape[-1] == 24
    assert len(cell.get_weights()) == len(build_model(spec, 16, 1, 24).get_weights())
    x = rng.normal(size=(5, 16, 1)).astype("float32")
    np.testing.assert_allclose(predict(cell, x), predict(body, x)[:, :24], rtol=1e-5, atol=1e-5)
