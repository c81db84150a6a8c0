"""The training loop of every cell and of pretraining: fit, phases, budgets, LR schedules.

No tracking, no files.

Owns :func:`fit` (early stopping on validation loss, or on the training loss where
``training.monitor`` says so, best weights restored, non-finite losses and time limits as
:class:`~benchmark.spec.errors.CellFailed`), the learning-rate schedules (:data:`LR_SCHEDULES`),
the epoch budget (:func:`budget_epochs`) and :func:`train_for_mode`, which runs a transfer mode's
phases through :func:`~benchmark.models.transfer.apply_freezing` so every change of ``trainable``
is followed by a recompile. Seeding and threads live in :mod:`benchmark.models.runtime`; how a
regime turns a cell into samples and forecasts, in :mod:`benchmark.models.regimes`.

Epoch numbers: ``on_epoch_end(epoch, logs)`` receives the 0-based epoch index across all phases
(Keras's convention); ``FitResult.best_epoch`` and error messages use 1-based epoch numbers.

A stateful model (``build_model(..., stateful=True)``) trains on its chunks in order, batch 1,
with a :class:`~benchmark.models.regimes.StreamValidation` as ``val`` (see that module).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import keras
import numpy as np

from benchmark.models.architectures import param_counts
from benchmark.models.compile import LOSSES, compile_model
from benchmark.models.regimes import Arrays, StreamValidation, reset_states, stateful_forecast
from benchmark.models.transfer import FREEZE_RULES, TransferMode, apply_freezing, frozen_layer_names
from benchmark.spec import catalog
from benchmark.spec.catalog import declared
from benchmark.spec.errors import CellFailed, TlbenchError
from benchmark.spec.registry import Registry
from benchmark.spec.sections import TrainingSpec, TransferSpec

log = logging.getLogger(__name__)

EpochHook = Callable[[int, dict], None]


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


LR_SCHEDULES: Registry[LrSchedule] = Registry(catalog.LR_SCHEDULES.kind)


def _add_schedule(schedule: LrSchedule) -> None:
    declared(catalog.LR_SCHEDULES, schedule.name)  # refuses a name the catalogue does not declare
    LR_SCHEDULES.add(schedule.name, schedule)


_add_schedule(LrSchedule("constant", lambda training, epochs, lr: [], "the phase's learning rate throughout"))
_add_schedule(LrSchedule("cosine", _cosine,
                         "cosine decay from the phase's rate to 1% of it over the phase's epochs"))
_add_schedule(LrSchedule("plateau", _plateau,
                         "halve the rate when val_loss stalls for patience // 2 epochs (floor: rate / 32)"))


# --------------------------------------------------------------------------- fit


@dataclass
class FitResult:
    """What training did. ``history`` has ``loss`` and ``val_loss``, one value per epoch across all
    phases; ``best_epoch`` is 1-based and its weights are the model's final ones (0: no epoch ran,
    or, for a mode with ``keep_start``, no epoch beat the starting weights, which were kept).
    ``start_loss``: the monitored loss of the starting weights (``keep_start`` modes; else None)."""

    history: dict[str, list[float]] = field(default_factory=lambda: {"loss": [], "val_loss": []})
    epochs_run: int = 0
    best_epoch: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    phases: list[dict] = field(default_factory=list)
    start_loss: float | None = None


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


#: What early stopping may watch (``training.monitor``), as declared in the catalogue.
MONITORS = catalog.MONITORS


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
        if logs is not None:
            logs["val_loss"] = self.score(self.model)

    def score(self, model: keras.Model) -> float:
        """The loss of ``model``'s forecasts of the validation stream (state reset, then warmed)."""
        v = self.validation
        y_pred = stateful_forecast(model, v.values, v.start, v.first, v.end, v.horizon)
        return float(self.loss(self.y_true, y_pred))


def _keep_start(model: keras.Model, arrays: tuple[Arrays, Arrays | StreamValidation], run: _Run) -> None:
    """Score the compiled ``model`` as it starts on what early stopping watches (``val_loss``: the
    validation windows or stream, as Keras scores them after an epoch; ``loss``: the training
    windows) and make its weights the best so far: an epoch must beat them to replace them."""
    (x_train, y_train), val = arrays
    batch = run.training.batch_size
    if isinstance(val, StreamValidation):
        score = _StatefulEpochs(val, LOSSES.get(run.training.loss)()).score(model)
        reset_states(model)
    elif run.training.monitor == "loss":
        score = float(model.evaluate(x_train, y_train, batch_size=batch, verbose=0))
    else:
        score = float(model.evaluate(val[0], val[1], batch_size=batch, verbose=0))
    if not math.isfinite(score):
        raise CellFailed(f"the starting model's {run.training.monitor} is {score}; check the pretrained "
                         "weights and the inputs for NaN/inf.")
    run.best_val_loss, run.best_weights = score, model.get_weights()
    run.result.start_loss, run.result.best_epoch = score, 0


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
    its ``max_epochs``. Early stopping (``patience`` on ``monitor``) still ends the run sooner.
    (:meth:`TrainingSpec.budget_epochs`, which the dispatch cost reads without Keras.)"""
    return training.budget_epochs(n_windows, batch_size)


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
    A mode with ``keep_start`` scores the model before the first epoch (``FitResult.start_loss``) and
    keeps its starting weights unless an epoch beats them by more than ``min_delta``. A phase's
    ``body_lr_factor`` trains the body layers at ``rate x body_lr_factor`` (the head at ``rate``).
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
        apply_freezing(model, frozen, training, rate, phase.body_lr_factor)
        if index == 0 and mode.keep_start:
            _keep_start(model, arrays, run)
        log.debug("%s phase %d: %d epochs at lr %g (body x %g), frozen %s", mode.name, index, epochs, rate,
                  phase.body_lr_factor, frozen)
        info = _fit_phase(model, arrays, run, epochs, index)
        counts = param_counts(model)
        run.result.phases.append({**info, "freeze": phase.freeze, "frozen_layers": frozen,
                                  "learning_rate": rate, "body_lr_factor": phase.body_lr_factor,
                                  "trainable_params": counts["trainable"],
                                  "non_trainable_params": counts["non_trainable"]})
    run.result.seconds = run.elapsed()
    return run.result

