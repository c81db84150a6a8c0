"""Compile, fit and predict: the training loop of every cell and of pretraining. No tracking, no files.

Owns the one seeding function (:func:`seed_everything`), process threading
(:func:`configure_threads`), the optimiser and loss registries, :func:`fit` (early stopping on
validation loss with the best weights restored, non-finite losses and time limits as
:class:`~benchmark.errors.CellFailed`) and :func:`train_for_mode`, which runs a transfer mode's
phases through :func:`~benchmark.models.transfer.apply_freezing` so every change of ``trainable``
is followed by a recompile.

Epoch numbers: ``on_epoch_end(epoch, logs)`` receives the 0-based epoch index across all phases
(Keras's convention); ``FitResult.best_epoch`` and error messages use 1-based epoch numbers.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from benchmark.config import TrainingSpec, TransferSpec
from benchmark.errors import CellFailed, TlbenchError
from benchmark.models.architectures import param_counts
from benchmark.models.transfer import FREEZE_RULES, TransferMode, apply_freezing, frozen_layer_names
from benchmark.registry import Registry

log = logging.getLogger(__name__)

EpochHook = Callable[[int, dict], None]
Arrays = tuple[np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- process setup


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TF ops deterministic. The one seeding function.

    Safe to call again (e.g. once per cell in the same process): the seeds are reset each time.
    """
    keras.utils.set_random_seed(int(seed))
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception as exc:  # noqa: BLE001 - never fatal; determinism is best effort past this
        log.warning("could not enable TF op determinism (%s); runs may not be bit-reproducible", exc)


def configure_threads(intra: int, inter: int) -> None:
    """Set TF's intra-/inter-op thread pools; possible only before TF runs its first op.

    On CPU, one single-threaded job per core is fastest (docs: STACK_NOTES). Called too late, TF
    keeps its pools and this logs a warning instead of failing.
    """
    threading = tf.config.threading
    if (threading.get_intra_op_parallelism_threads() == intra
            and threading.get_inter_op_parallelism_threads() == inter):
        return
    try:
        threading.set_intra_op_parallelism_threads(intra)
        threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError as exc:
        log.warning("TF threads already initialised (%s); keeping intra=%d inter=%d. Call "
                    "configure_threads before the first TF op to change them.", exc,
                    threading.get_intra_op_parallelism_threads(),
                    threading.get_inter_op_parallelism_threads())


# --------------------------------------------------------------------------- compile

# name -> learning rate -> optimiser
OPTIMIZERS: Registry[Callable[[float], keras.optimizers.Optimizer]] = Registry("optimizer")
OPTIMIZERS.add("adam", lambda lr: keras.optimizers.Adam(learning_rate=lr))
OPTIMIZERS.add("nadam", lambda lr: keras.optimizers.Nadam(learning_rate=lr))
OPTIMIZERS.add("adamw", lambda lr: keras.optimizers.AdamW(learning_rate=lr))
OPTIMIZERS.add("sgd", lambda lr: keras.optimizers.SGD(learning_rate=lr, momentum=0.9))

# name -> () -> loss
LOSSES: Registry[Callable[[], keras.losses.Loss]] = Registry("loss")
LOSSES.add("mse", keras.losses.MeanSquaredError)
LOSSES.add("mae", keras.losses.MeanAbsoluteError)
LOSSES.add("huber", keras.losses.Huber)


def compile_model(model: keras.Model, training: TrainingSpec, learning_rate: float | None = None) -> None:
    """(Re)compile with a fresh optimiser from ``training`` (``learning_rate`` overrides its rate)."""
    rate = training.learning_rate if learning_rate is None else learning_rate
    model.compile(optimizer=OPTIMIZERS.get(training.optimizer)(float(rate)),
                  loss=LOSSES.get(training.loss)())


# --------------------------------------------------------------------------- fit


@dataclass
class FitResult:
    """What training did. ``history`` has ``loss`` and ``val_loss``, one value per epoch across all
    phases; ``best_epoch`` is 1-based (0: no epoch ran) and its weights are the model's final ones."""

    history: dict[str, list[float]] = field(default_factory=lambda: {"loss": [], "val_loss": []})
    epochs_run: int = 0
    best_epoch: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    phases: list[dict] = field(default_factory=list)


@dataclass
class _Run:
    """State shared by the phases of one training run."""

    training: TrainingSpec
    on_epoch_end: EpochHook | None
    started: float = field(default_factory=time.monotonic)
    result: FitResult = field(default_factory=FitResult)
    best_val_loss: float = math.inf
    best_weights: list[np.ndarray] | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class _EpochMonitor(keras.callbacks.Callback):
    """Per epoch: record, report, fail on non-finite loss, early-stop on val_loss, enforce the time limit."""

    def __init__(self, run: _Run, phase_index: int):
        super().__init__()
        self.run = run
        self.phase_index = phase_index
        self.wait = 0
        self.stopped = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        run, training = self.run, self.run.training
        logs = logs or {}
        loss, val_loss = float(logs.get("loss", math.nan)), float(logs.get("val_loss", math.nan))
        number = run.result.epochs_run + 1  # 1-based, across phases
        run.result.history["loss"].append(loss)
        run.result.history["val_loss"].append(val_loss)
        run.result.epochs_run = number
        if run.on_epoch_end is not None:
            run.on_epoch_end(number - 1, {"loss": loss, "val_loss": val_loss, "phase": self.phase_index})
        if not (math.isfinite(loss) and math.isfinite(val_loss)):
            raise CellFailed(f"non-finite loss at epoch {number} (loss={loss}, val_loss={val_loss}); "
                             "lower training.learning_rate or check the inputs for NaN/inf.")
        if val_loss < run.best_val_loss - training.min_delta:
            run.best_val_loss, run.best_weights = val_loss, self.model.get_weights()
            run.result.best_epoch = number
            self.wait = 0
        else:
            self.wait += 1
            if self.wait >= training.patience:
                self.model.stop_training = True
                self.stopped = True
        limit = training.time_limit_s
        if limit is not None and run.elapsed() > limit:
            raise CellFailed(f"time limit of {limit:g} s exceeded after epoch {number} "
                             f"({run.elapsed():.1f} s); raise training.time_limit_s or lower "
                             "training.max_epochs or the target size.")


def _check_arrays(arrays: Arrays, label: str) -> Arrays:
    if not isinstance(arrays, (tuple, list)) or len(arrays) != 2:
        raise TlbenchError(f"{label} must be a pair (x, y) of arrays.")
    x, y = (np.asarray(a, dtype=np.float32) for a in arrays)
    if x.ndim != 3 or y.ndim != 2 or len(x) != len(y):
        raise TlbenchError(f"{label}: expected x of shape (n, lookback, n_features) and y of shape "
                           f"(n, horizon), got {x.shape} and {y.shape}.")
    if len(x) == 0:
        raise TlbenchError(f"{label} has no windows; early stopping needs validation windows. "
                           "Raise the target size or split.val_fraction, or lower split.lookback.")
    return x, y


def _arrays(train: Arrays, val: Arrays) -> tuple[Arrays, Arrays]:
    """Checked float32 ``(x [n, L, F], y [n, H])`` pairs for training and validation."""
    x_train, y_train = _check_arrays(train, "train")
    x_val, y_val = _check_arrays(val, "val")
    if x_train.shape[1:] != x_val.shape[1:] or y_train.shape[1:] != y_val.shape[1:]:
        raise TlbenchError(f"train and val windows differ: x {x_train.shape[1:]} vs {x_val.shape[1:]}, "
                           f"y {y_train.shape[1:]} vs {y_val.shape[1:]}.")
    return (x_train, y_train), (x_val, y_val)


def _fit_phase(model: keras.Model, arrays: tuple[Arrays, Arrays], run: _Run, epochs: int,
               phase_index: int) -> dict:
    """Up to ``epochs`` epochs of ``model.fit``; ends with the best weights seen so far restored.

    NumPy arrays go straight to ``model.fit``, as in a bare Keras fit: Keras' own array pipeline
    reshuffles the windows every epoch from the seeded global generator (``seed_everything``).
    It measured as fast as the former ``tf.data`` shuffle buffer over every window, and it keeps
    this path identical to the bare fit it is benchmarked against (docs/performance.md).
    """
    (x_train, y_train), val = arrays
    monitor = _EpochMonitor(run, phase_index)
    started, first = time.monotonic(), run.result.epochs_run
    model.fit(x_train, y_train, batch_size=run.training.batch_size, epochs=epochs, validation_data=val,
              shuffle=run.training.shuffle, callbacks=[monitor], verbose=0)
    if run.best_weights is not None:
        model.set_weights(run.best_weights)
    run.result.stopped_early = run.result.stopped_early or monitor.stopped
    return {"phase": phase_index, "epochs_planned": epochs, "epochs_run": run.result.epochs_run - first,
            "stopped_early": monitor.stopped, "seconds": time.monotonic() - started}


def fit(model: keras.Model, train: Arrays, val: Arrays, training: TrainingSpec,
        max_epochs: int | None = None, on_epoch_end: EpochHook | None = None) -> FitResult:
    """Train ``model`` on ``train = (x [n, L, F], y [n, H])`` with early stopping on ``val``.

    Compiles the model from ``training`` only if it is not compiled yet (so a caller's
    :func:`apply_freezing` and learning rate are kept). Stops after ``training.patience`` epochs
    without a val_loss improvement of more than ``min_delta`` and restores the best epoch's
    weights. Raises CellFailed on a non-finite loss or when ``training.time_limit_s`` is exceeded
    (checked at the end of every epoch).
    """
    if not getattr(model, "compiled", False):
        compile_model(model, training)
    run = _Run(training, on_epoch_end)
    epochs = training.max_epochs if max_epochs is None else max_epochs
    run.result.phases.append(_fit_phase(model, _arrays(train, val), run, epochs, 0))
    run.result.seconds = run.elapsed()
    return run.result


def split_epochs(fractions: list[float], max_epochs: int) -> list[int]:
    """Epochs per phase: cumulative rounding of ``max_epochs * fraction``, at least 1 each."""
    epochs, done, cumulative = [], 0, 0.0
    for fraction in fractions:
        cumulative += fraction
        boundary = int(math.floor(max_epochs * cumulative + 0.5))
        epochs.append(max(1, boundary - done))
        done = max(boundary, done + 1)
    return epochs


def train_for_mode(model: keras.Model, mode: TransferMode, train: Arrays, val: Arrays,
                   training: TrainingSpec, transfer: TransferSpec,
                   on_epoch_end: EpochHook | None = None) -> FitResult:
    """Run ``mode``'s phases in order on a model from ``prepare_for_mode``; history concatenated.

    Before each phase :func:`apply_freezing` sets the phase's frozen layers and recompiles at
    ``training.learning_rate * lr_factor``. Early stopping spans phases: each phase gets its own
    patience, and the best weights over all epochs are restored. A mode without phases
    (``zeroshot``) trains nothing: every layer is frozen and an empty FitResult (0 epochs) returned.
    """
    phases = mode.resolved_phases(transfer)
    if not phases:
        apply_freezing(model, FREEZE_RULES.get("all")(model, transfer), training, training.learning_rate)
        return FitResult()
    arrays = _arrays(train, val)
    run = _Run(training, on_epoch_end)
    epochs_per_phase = split_epochs([p.epochs_fraction for p in phases], training.max_epochs)
    for index, (phase, epochs) in enumerate(zip(phases, epochs_per_phase)):
        frozen = frozen_layer_names(model, phase, transfer)
        rate = training.learning_rate * phase.lr_factor
        apply_freezing(model, frozen, training, rate)
        log.debug("%s phase %d: %d epochs at lr %g, frozen %s", mode.name, index, epochs, rate, frozen)
        info = _fit_phase(model, arrays, run, epochs, index)
        counts = param_counts(model)
        run.result.phases.append({**info, "freeze": phase.freeze, "frozen_layers": frozen,
                                  "learning_rate": rate, "trainable_params": counts["trainable"],
                                  "non_trainable_params": counts["non_trainable"]})
    run.result.seconds = run.elapsed()
    return run.result


# --------------------------------------------------------------------------- predict


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Forecasts ``[n, lookback, n_features] -> [n, horizon]`` in chunks, quietly (no progress bar)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise TlbenchError(f"predict: expected x of shape (n, lookback, n_features), got {x.shape}.")
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float32)
    chunks = [np.asarray(model.predict_on_batch(x[start:start + batch_size]))
              for start in range(0, len(x), batch_size)]
    return np.concatenate(chunks, axis=0)  # [n, H]
