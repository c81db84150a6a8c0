"""Compile, fit and predict: the training loop of every cell and of pretraining. No tracking, no files.

Owns the one seeding function (:func:`seed_everything`), process threading
(:func:`configure_threads`), :func:`fit` (early stopping on validation loss, or on the training
loss where ``training.monitor`` says so, best weights restored, non-finite losses and time limits as
:class:`~benchmark.errors.CellFailed`) and :func:`train_for_mode`, which runs a transfer mode's
phases through :func:`~benchmark.models.transfer.apply_freezing` so every change of ``trainable``
is followed by a recompile.

Epoch numbers: ``on_epoch_end(epoch, logs)`` receives the 0-based epoch index across all phases
(Keras's convention); ``FitResult.best_epoch`` and error messages use 1-based epoch numbers.

Regimes (:data:`REGIMES`): ``stateless`` trains on shuffled sliding windows, each from a zero
state; ``stateful`` reads the target's history in order, in consecutive non-overlapping chunks of
``lookback`` points (batch 1, no shuffling), the recurrent state carried from chunk to chunk and
reset at the start of every epoch; validation and forecasts reset the state, warm it on
everything before the first origin, then forecast one origin after the other with the observed
values (docs/models.md). A model is stateful when its recurrent layers are (``build_model(...,
stateful=True)``); :func:`train_for_mode` then takes a :class:`StreamValidation` as ``val``.
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
from benchmark.models.compile import LOSSES, compile_model
from benchmark.models.transfer import FREEZE_RULES, TransferMode, apply_freezing, frozen_layer_names
from benchmark.registry import Registry

log = logging.getLogger(__name__)

EpochHook = Callable[[int, dict], None]
Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class StreamValidation:
    """Validation of a stateful model: reset, warm on ``values[start:first]``, forecast the
    origins ``first .. end - horizon`` one by one; ``values`` [T, F] scaled, target in column 0."""

    values: np.ndarray
    start: int
    first: int
    end: int
    horizon: int

    def targets(self) -> np.ndarray:
        """``[n_origins, horizon]``: the target values the forecasts are scored against."""
        origins = np.arange(self.first, self.end - self.horizon + 1)
        return np.asarray(self.values, np.float32)[origins[:, None] + np.arange(self.horizon), 0]


# --------------------------------------------------------------------------- process setup


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow, and set TF op determinism. The one seeding function.

    ``deterministic`` (``TrainingSpec.deterministic``) turns TF op determinism on (bit-reproducible
    runs, the default) or off (TF's faster non-deterministic kernels: what a bare Keras script
    gets; docs/performance.md measures the difference). It is a process-wide TF setting, so it is
    set again on every call (e.g. once per cell in the same process).
    """
    keras.utils.set_random_seed(int(seed))
    try:
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        else:
            from tensorflow.python.framework import config as tf_config  # no public switch-off

            tf_config.disable_op_determinism()
    except Exception as exc:  # noqa: BLE001 - never fatal; determinism is best effort past this
        log.warning("could not set TF op determinism to %s (%s); runs may not be bit-reproducible",
                    deterministic, exc)


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


# --------------------------------------------------------------------------- learning-rate schedules


@dataclass(frozen=True)
class LrSchedule:
    """A learning-rate schedule within one training phase: ``callbacks(training, epochs, lr)``
    returns the Keras callbacks that apply it, starting from the phase's learning rate ``lr``."""

    name: str
    callbacks: Callable[[TrainingSpec, int, float], list]
    description: str


def _cosine(training: TrainingSpec, epochs: int, lr: float) -> list:
    def rate(epoch: int, current: float) -> float:  # epoch: 0-based within the phase
        return float(lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * epoch / max(1, epochs)))))

    return [keras.callbacks.LearningRateScheduler(rate, verbose=0)]


def _plateau(training: TrainingSpec, epochs: int, lr: float) -> list:
    return [keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, verbose=0,
                                              patience=max(1, training.patience // 2),
                                              min_lr=lr / 32, min_delta=training.min_delta)]


LR_SCHEDULES: Registry[LrSchedule] = Registry("learning-rate schedule")
LR_SCHEDULES.add("constant", LrSchedule("constant", lambda training, epochs, lr: [],
                                        "the phase's learning rate throughout"))
LR_SCHEDULES.add("cosine", LrSchedule("cosine", _cosine,
                                      "cosine decay from the phase's rate to 1% of it over the phase's epochs"))
LR_SCHEDULES.add("plateau", LrSchedule("plateau", _plateau,
                                       "halve the rate when val_loss stalls for patience // 2 epochs (floor: rate / 32)"))


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
        watched = {"loss": loss, "val_loss": val_loss}[training.monitor]  # MONITORS
        if not (math.isfinite(loss) and math.isfinite(watched)):
            raise CellFailed(f"non-finite loss at epoch {number} (loss={loss}, val_loss={val_loss}); "
                             "lower training.learning_rate or check the inputs for NaN/inf.")
        if watched < run.best_val_loss - training.min_delta:
            run.best_val_loss, run.best_weights = watched, self.model.get_weights()
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


#: What early stopping may watch (``training.monitor``): ``val_loss`` (held-out windows, the
#: default) or ``loss`` (the training loss: the ``notebook`` protocol's flaw, needs no validation).
MONITORS = ("val_loss", "loss")


def _check_arrays(arrays: Arrays, label: str, allow_empty: bool = False) -> Arrays:
    if not isinstance(arrays, (tuple, list)) or len(arrays) != 2:
        raise TlbenchError(f"{label} must be a pair (x, y) of arrays.")
    x, y = (np.asarray(a, dtype=np.float32) for a in arrays)
    if x.ndim != 3 or y.ndim != 2 or len(x) != len(y):
        raise TlbenchError(f"{label}: expected x of shape (n, lookback, n_features) and y of shape "
                           f"(n, horizon), got {x.shape} and {y.shape}.")
    if len(x) == 0 and not allow_empty:
        raise TlbenchError(f"{label} has no windows; early stopping needs validation windows. "
                           "Raise the target size or split.val_fraction, or lower split.lookback.")
    return x, y


def _arrays(train: Arrays, val: Arrays | StreamValidation,
            monitor: str = "val_loss") -> tuple[Arrays, Arrays | StreamValidation]:
    """Checked float32 ``(x [n, L, F], y [n, H])`` pairs for training and validation (a stateful
    model's validation stream is checked for having at least one origin). Validation may be empty
    only when early stopping watches the training loss (``monitor="loss"``)."""
    if isinstance(val, StreamValidation):
        if val.end - val.horizon + 1 <= val.first or val.first <= val.start:
            raise TlbenchError(f"stateful validation has no origin to forecast (warm-up "
                               f"[{val.start}, {val.first}), targets up to {val.end}, horizon "
                               f"{val.horizon}); raise the target size or split.val_fraction.")
        return _check_arrays(train, "train"), val
    x_train, y_train = _check_arrays(train, "train")
    x_val, y_val = _check_arrays(val, "val", allow_empty=monitor == "loss")
    if len(x_val) and (x_train.shape[1:] != x_val.shape[1:] or y_train.shape[1:] != y_val.shape[1:]):
        raise TlbenchError(f"train and val windows differ: x {x_train.shape[1:]} vs {x_val.shape[1:]}, "
                           f"y {y_train.shape[1:]} vs {y_val.shape[1:]}.")
    return (x_train, y_train), (x_val, y_val)


def is_stateful(model: keras.Model) -> bool:
    """Whether any layer of ``model`` keeps its recurrent state between calls."""
    return any(getattr(layer, "stateful", False) for layer in model.layers)


def reset_states(model: keras.Model) -> None:
    """Zero the recurrent state of every stateful layer (Keras 3: ``layer.reset_state()``)."""
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()


class _StatefulEpochs(keras.callbacks.Callback):
    """Stateful regime: reset the state before every epoch; at its end score the validation
    stream (reset, warm, forecast) into ``logs["val_loss"]`` for the monitor that follows."""

    def __init__(self, validation: StreamValidation, loss: keras.losses.Loss):
        super().__init__()
        self.validation, self.loss = validation, loss
        self.y_true = validation.targets()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        reset_states(self.model)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        v = self.validation
        y_pred = stateful_forecast(self.model, v.values, v.start, v.first, v.end, v.horizon)
        if logs is not None:
            logs["val_loss"] = float(self.loss(self.y_true, y_pred))


def _fit_phase(model: keras.Model, arrays: tuple[Arrays, Arrays | StreamValidation], run: _Run,
               epochs: int, phase_index: int) -> dict:
    """Up to ``epochs`` epochs of ``model.fit``; ends with the best weights seen so far restored.

    NumPy arrays go straight to ``model.fit``, as in a bare Keras fit: Keras' own array pipeline
    reshuffles the windows every epoch from the seeded global generator (``seed_everything``).
    It measured as fast as the former ``tf.data`` shuffle buffer over every window, and it keeps
    this path identical to the bare fit it is benchmarked against (docs/performance.md).
    """
    (x_train, y_train), val = arrays
    monitor = _EpochMonitor(run, phase_index)
    # the schedule reads val_loss after the stateful scorer wrote it, before the monitor stops
    schedule = LR_SCHEDULES.get(run.training.lr_schedule).callbacks(run.training, epochs,
                                                                     float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    started, first = time.monotonic(), run.result.epochs_run
    if isinstance(val, StreamValidation):  # stateful: chunks in order, batch 1, state carried
        model.fit(x_train, y_train, batch_size=1, epochs=epochs, shuffle=False, verbose=0,
                  callbacks=[_StatefulEpochs(val, LOSSES.get(run.training.loss)()), *schedule, monitor])
    else:
        model.fit(x_train, y_train, batch_size=run.training.batch_size, epochs=epochs,
                  validation_data=val if len(val[0]) else None, shuffle=run.training.shuffle,
                  callbacks=[*schedule, monitor], verbose=0)
    if run.best_weights is not None:
        model.set_weights(run.best_weights)
    run.result.stopped_early = run.result.stopped_early or monitor.stopped
    return {"phase": phase_index, "epochs_planned": epochs, "epochs_run": run.result.epochs_run - first,
            "stopped_early": monitor.stopped, "seconds": time.monotonic() - started}


def budget_epochs(training: TrainingSpec, n_windows: int, batch_size: int) -> int:
    """The epochs a training run may take: ``training.max_epochs``, raised to
    ``ceil(min_steps / steps_per_epoch)`` (``steps_per_epoch = ceil(n_windows / batch_size)``) so
    that a small target gets at least ``training.min_steps`` optimizer steps, as a large one does in
    its ``max_epochs``. Early stopping (``patience`` on ``monitor``) still ends the run sooner."""
    steps_per_epoch = max(1, math.ceil(int(n_windows) / max(1, int(batch_size))))
    return max(int(training.max_epochs), math.ceil(int(training.min_steps) / steps_per_epoch))


def _budget(training: TrainingSpec, arrays: tuple[Arrays, Arrays | StreamValidation]) -> int:
    """:func:`budget_epochs` of checked ``arrays`` (a stateful run trains at batch 1)."""
    batch = 1 if isinstance(arrays[1], StreamValidation) else training.batch_size
    return budget_epochs(training, len(arrays[0][0]), batch)


def fit(model: keras.Model, train: Arrays, val: Arrays | StreamValidation, training: TrainingSpec,
        max_epochs: int | None = None, on_epoch_end: EpochHook | None = None) -> FitResult:
    """Train ``model`` on ``train = (x [n, L, F], y [n, H])`` with early stopping on ``val``
    (``training.monitor``: ``val_loss``; ``loss`` watches the training loss and may have no ``val``).

    Compiles the model from ``training`` only if it is not compiled yet (so a caller's
    :func:`apply_freezing` and learning rate are kept). Runs ``max_epochs`` (default: the
    :func:`budget_epochs` of ``training``: ``min_steps`` raises it for small targets). Stops after ``training.patience`` epochs
    without an improvement of the monitored value of more than ``min_delta`` and restores the
    best epoch's weights. Raises CellFailed on a non-finite loss or when
    ``training.time_limit_s`` is exceeded (checked at the end of every epoch).
    """
    if not getattr(model, "compiled", False):
        compile_model(model, training)
    run = _Run(training, on_epoch_end)
    arrays = _arrays(train, val, training.monitor)
    epochs = _budget(training, arrays) if max_epochs is None else max_epochs
    run.result.phases.append(_fit_phase(model, arrays, run, epochs, 0))
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


def train_for_mode(model: keras.Model, mode: TransferMode, train: Arrays, val: Arrays | StreamValidation,
                   training: TrainingSpec, transfer: TransferSpec,
                   on_epoch_end: EpochHook | None = None) -> FitResult:
    """Run ``mode``'s phases in order on a model from ``prepare_for_mode``; history concatenated.

    Before each phase :func:`apply_freezing` sets the phase's frozen layers and recompiles at
    ``training.learning_rate * lr_factor``. Early stopping spans phases: each phase gets its own
    patience, and the best weights over all epochs are restored. The phases share
    :func:`budget_epochs` (``max_epochs`` raised by ``training.min_steps``). A mode without phases
    (``zeroshot``) trains nothing: every layer is frozen and an empty FitResult (0 epochs) returned.
    A stateful model (:func:`is_stateful`) trains on ``train`` = its chunks in order with ``val``
    a :class:`StreamValidation` (see the module docstring).
    """
    phases = mode.resolved_phases(transfer)
    if not phases:
        apply_freezing(model, FREEZE_RULES.get("all")(model, transfer), training, training.learning_rate)
        return FitResult()
    arrays = _arrays(train, val, training.monitor)
    run = _Run(training, on_epoch_end)
    epochs_per_phase = split_epochs([p.epochs_fraction for p in phases], _budget(training, arrays))
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


def stateful_forecast(model: keras.Model, values: np.ndarray, start: int, first: int, end: int,
                      horizon: int) -> np.ndarray:
    """Forecasts of a stateful model for the origins ``t = first .. end - horizon``: ``[n, horizon]``.

    ``values`` [T, F] scaled inputs (target in column 0). The state is reset, warmed on
    ``values[start:first]`` (whose output is the forecast for ``first``), then every later origin
    ``t`` feeds the one observed step ``values[t - 1]``: the state always summarises everything
    from ``start`` up to the origin, as in training. Ends with the state left warm.
    """
    values = np.asarray(values, dtype=np.float32)
    n = max(0, end - horizon + 1 - first)
    out = np.zeros((n, horizon), dtype=np.float32)
    reset_states(model)
    if n == 0:
        return out
    if first <= start:
        raise TlbenchError(f"stateful_forecast: nothing to warm the state on before origin {first} "
                           f"(start {start}).")
    out[0] = np.asarray(model.predict_on_batch(values[None, start:first]))[0]  # [1, n_warm, F] -> [H]
    for i in range(1, n):
        t = first + i
        out[i] = np.asarray(model.predict_on_batch(values[None, t - 1:t]))[0]  # [1, 1, F] -> [H]
    return out


def stream_chunks(values: np.ndarray, start: int, end: int, lookback: int, horizon: int) -> Arrays:
    """The stateful regime's training samples: consecutive, non-overlapping chunks.

    Chunk ``k`` has inputs ``values[start + k L : start + (k + 1) L]`` (``[L, F]``) and targets
    the next ``horizon`` values of column 0; chunks continue while those targets lie before
    ``end``. Returns ``x [K, L, F]`` and ``y [K, H]`` float32, in series order (never shuffle them).
    """
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 1:
        values = values[:, None]  # [T] -> [T, 1]
    count = max(0, (end - start - horizon) // lookback)
    x = np.stack([values[start + k * lookback:start + (k + 1) * lookback] for k in range(count)]) \
        if count else np.zeros((0, lookback, values.shape[1]), np.float32)  # [K, L, F]
    y = np.stack([values[start + (k + 1) * lookback:start + (k + 1) * lookback + horizon, 0]
                  for k in range(count)]) if count else np.zeros((0, horizon), np.float32)  # [K, H]
    return x, y


# --------------------------------------------------------------------------- regimes


@dataclass(frozen=True)
class Regime:
    """A training regime: whether models are stateful, and how a cell's data becomes training
    samples, validation and test forecasts (``data`` is a ``benchmark.data.splits.CellData``)."""

    name: str
    stateful: bool
    samples: Callable[[object, int, int], tuple[Arrays, Arrays | StreamValidation]]  # (data, L, H)
    forecast: Callable[[keras.Model, object, int, int], np.ndarray]  # (model, data, L, H) -> [n, H]
    description: str = ""


def _stateless_samples(data, lookback: int, horizon: int):
    return (data.x_train, data.y_train), (data.x_val, data.y_val)


def _stateless_forecast(model, data, lookback: int, horizon: int) -> np.ndarray:
    from benchmark.data.windows import FORECASTS

    strategy = FORECASTS.get(data.forecast)  # direct: [n, H] at once; recursive: one step H times
    return strategy.forecast(lambda x: predict(model, x), data.x_test, horizon)


def _stateful_samples(data, lookback: int, horizon: int):
    cut = data.split
    train = stream_chunks(data.inputs, cut.history_start, cut.val_start, lookback, horizon)
    return train, StreamValidation(data.inputs, cut.history_start, cut.val_start, cut.test_start, horizon)


def _stateful_forecast(model, data, lookback: int, horizon: int) -> np.ndarray:
    cut = data.split
    # the same origins, in the same order, as the stateless test windows (max(test_start, L) ..)
    return stateful_forecast(model, data.inputs, cut.history_start, max(cut.test_start, lookback),
                             cut.end, horizon)[::data.test_stride]


REGIMES: Registry[Regime] = Registry("regime")
REGIMES.add("stateless", Regime("stateless", False, _stateless_samples, _stateless_forecast,
                                "shuffled sliding windows, each from a zero state"))
REGIMES.add("stateful", Regime("stateful", True, _stateful_samples, _stateful_forecast,
                               "the history in order in lookback-long chunks, batch 1, state carried "
                               "across chunks and reset per epoch; forecasts warm the state first"))
