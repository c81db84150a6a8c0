"""The cell stage: one cell trained, evaluated, logged and recorded (:func:`run_cell`), with its
pure computation (:func:`train_and_evaluate`), its MLflow tags, live epoch curves, logged
artefacts and datasets. A cell's failure is recorded, never raised: the grid goes on."""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from benchmark import __version__
from benchmark.data.features import load_covariates
from benchmark.data.loading import load_data
from benchmark.data.sources import source_label
from benchmark.data.splits import make_cell_data, scale_metrics
from benchmark.forecasters.metrics import compute_metrics
from benchmark.results.leaderboard import Leaderboard
from benchmark.run.jobs import CellJob, CellOutcome, CellResult, PretrainedRef, now
from benchmark.run.rows import model_row, record_failure
from benchmark.spec.errors import TlbenchError
from benchmark.spec.identity import to_plain
from benchmark.spec.sections import ModelSpec
from benchmark.spec.settings import Settings
from benchmark.spec.tree import CellSpec
from benchmark.tracking.tags import TAG_CELL_KEY, TAG_GRID_ID, TAG_RUN_ID, DatasetRef, flatten, host_and_device
from benchmark.tracking.outage import TrackingUnavailable
from benchmark.tracking.tracker import Tracker
from benchmark.tracking.views import TAG_NOTE

log = logging.getLogger(__name__)


def train_and_evaluate(cell: CellSpec, settings: Settings, pretrained: PretrainedRef | None,
                       on_epoch_end: Callable[[int, dict], None] | None = None) -> CellResult:
    """Train one cell and evaluate it on its target's fixed test segment, on the original scale.

    Pure computation (no tracking, no files written): returns the model, its fit, predictions and
    metrics for the caller to log.
    """
    # Keras: loaded only when a cell trains
    from benchmark.models import TRANSFER_MODES, param_counts, prepare_for_mode
    from benchmark.models.regimes import REGIMES  # Keras, as above
    from benchmark.models.runtime import seed_everything  # Keras, as above
    from benchmark.models.training import train_for_mode  # Keras, as above

    seed_everything(cell.seed, cell.training.deterministic)
    regime = REGIMES.get(cell.regime)
    frame = load_data(cell.target, settings, cell.split)
    covariates = load_covariates(cell.target, frame, cell.features,
                                 lambda spec: load_data(spec, settings, cell.split))
    data = make_cell_data(frame, cell.target_size, cell.split, source_label(cell.target), cell.features,
                          covariates, cell.model.normalisation)
    mode = TRANSFER_MODES.get(cell.mode)
    source_model = None
    if mode.load_body:
        if pretrained is None:
            raise TlbenchError(f"mode {cell.mode!r} needs a pretrained model and none was given")
        source_model = _load_source_model(pretrained, settings)
    lookback, horizon = cell.split.lookback, cell.split.horizon
    model_horizon = data.y_train.shape[1]  # horizon (direct) or 1 (recursive)
    n_features = data.x_train.shape[-1]
    model = prepare_for_mode(cell.mode, cell.model, lookback, n_features, model_horizon, source_model,
                             stateful=regime.stateful)
    train, val = regime.samples(data, lookback, horizon)
    fit = train_for_mode(model, mode, train, val, cell.training, cell.transfer,
                         on_epoch_end=on_epoch_end)
    scaled = regime.forecast(model, data, lookback, horizon)  # [n_test, horizon], scaled
    y_pred = np.asarray(data.scaler.inverse_transform(scaled)).reshape(data.y_test_true.shape)
    metrics = compute_metrics(data.y_test_true, y_pred, data.insample, cell.split.season_length)
    metrics.update(scale_metrics(cell.split, data.split, data.values, data.y_test_true, y_pred))
    params = param_counts(model)
    if regime.stateful:
        model = _stateless_twin(model, cell.model, n_features, model_horizon)
    return CellResult(model, fit, data, y_pred, metrics, params)


def _stateless_twin(model, spec: ModelSpec, n_features: int, horizon: int):
    """What gets logged for a stateful cell: the stateless twin over sequences of any length, same
    weights and flags. Given the history from its start it returns what the warmed stateful
    model does."""
    from benchmark.models import build_model  # Keras: loaded only when a stateful cell is logged

    twin = build_model(spec, None, n_features, horizon, name=model.name)
    twin.set_weights(model.get_weights())
    for layer in twin.layers:
        layer.trainable = model.get_layer(layer.name).trainable
    return twin


def _load_source_model(pretrained: PretrainedRef, settings: Settings):
    """The pretrained model a cell starts from: the local file when this machine has it (checksum
    verified), else the registered version, fetched from MLflow (another machine pretrained it)."""
    from benchmark.models.pretrain import load_pretrained  # Keras: loaded only when a cell needs a body

    path = Path(pretrained.path)
    if path.is_file():
        return load_pretrained(path, pretrained.sha256)
    if not pretrained.registry_name or not pretrained.version:
        raise TlbenchError(f"pretrained model {pretrained.key} is not at {path} and has no registry "
                           "version to fetch; use a results location every worker can reach")
    return Tracker(settings, "unused").load_registered_keras(pretrained.registry_name, pretrained.version)


def cell_tags(job: CellJob) -> dict[str, str]:
    """The MLflow tags of a cell's run (the UI filters on them)."""
    cell = job.cell
    host, device = host_and_device()
    tags = {**{k: str(v) for k, v in job.names.columns().items()}, "grid": cell.grid,
            TAG_GRID_ID: job.context.grid_id, **{k: str(v) for k, v in cell.variant.items()},
            "pretrain_seed": str(cell.pretrain_seed),
            TAG_RUN_ID: job.context.run_id, TAG_CELL_KEY: job.cell_key,
            "package_version": __version__, "git_commit": job.context.git_commit or "",
            "worker_host": host, "device": device, "data_fingerprint": job.data_fingerprint,
            TAG_NOTE: job.names.description(job.cell_key, job.pretrained and job.pretrained.registry_version)}
    if job.pretrained is not None:
        tags["pretrained_key"] = job.pretrained.key
        tags["pretrained_run_id"] = job.pretrained.mlflow_run_id or ""
        tags["pretrained_model"] = job.pretrained.registry_name or ""
        tags["pretrained_version"] = job.pretrained.version or ""
    return tags


class _EpochCurves:
    """A cell's per-epoch ``loss``/``val_loss``, sent to MLflow in one call every ``interval_s``
    (and on :meth:`flush`) instead of one call per epoch: the curves stay live in the UI while a
    long cell trains, and a short cell costs one request instead of dozens."""

    def __init__(self, tracker: Tracker, run_id: str, interval_s: float = 5.0):
        self.tracker, self.run_id, self.interval_s = tracker, run_id, interval_s
        self.pending: list[tuple[int, dict]] = []
        self.last = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.pending.append((epoch, {k: v for k, v in logs.items() if k in ("loss", "val_loss")}))
        if time.monotonic() - self.last >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            steps, self.pending = self.pending, []
            self.tracker.log_steps(self.run_id, steps)
        self.last = time.monotonic()


def run_cell(job: CellJob, settings: Settings) -> CellOutcome:
    """Train, evaluate, log and record one cell. Never raises for a cell's own failure: the run
    ends FAILED with the error, a failure row is written, and the grid goes on."""
    names = job.names
    leaderboard = Leaderboard(settings.results)
    if job.cell_key in leaderboard.finished_keys():
        return CellOutcome(job.cell_key, "skipped", names.label)
    tracker = Tracker(settings, job.context.experiment)
    tracker.close_stale_runs(job.cell_key)
    started = now()
    params = {**flatten("", to_plain(job.cell)), "cell_key": job.cell_key}
    run_id = tracker.start_run(names.run_name, "cell", cell_tags(job), params,
                               parent_run_id=job.context.parent_run_id)
    curves = _EpochCurves(tracker, run_id)
    try:
        result = train_and_evaluate(job.cell, settings, job.pretrained, curves.on_epoch_end)
        curves.flush()
        model_uri = _log_cell(tracker, run_id, result, job, settings)
        # The row goes in before the run is marked FINISHED: a crash (or an MLflow outage) in
        # between leaves a RUNNING run whose cell is already counted; the next run of the grid marks
        # that run FINISHED (close_stale_runs with the row's run id): never a double count.
        row = model_row(job, result, started, run_id, model_uri)
        leaderboard.write_errors(row, result.data.y_test_true - result.y_pred)  # for the DM tests
        leaderboard.append([row])
    except TrackingUnavailable:  # not the cell's fault: the grid stops with one line (outage.py)
        raise
    except Exception as exc:  # noqa: BLE001 - a cell's failure is recorded, not raised
        error = f"{type(exc).__name__}: {exc}"
        log.error("cell %s failed: %s\n%s", names.label, error, traceback.format_exc())
        try:
            curves.flush()  # the curve up to the failure (a NaN loss shows where it went wrong)
            tracker.end_run(run_id, "FAILED", error=error)
        except TrackingUnavailable:  # the store is gone: the rerun trains the cell and closes the run
            raise
        except Exception:  # noqa: BLE001 - MLflow is down: the failure row still goes in; the
            log.warning("could not mark MLflow run %s FAILED", run_id, exc_info=True)  # rerun closes it
        record_failure(leaderboard, job, job.cell_key, error, names)
        return CellOutcome(job.cell_key, "failed", names.label, mlflow_run_id=run_id, error=error)
    try:
        tracker.end_run(run_id, "FINISHED")
        tracker.supersede_runs(job.cell_key, run_id, settings.delete_superseded)  # one counted run
    except Exception:  # noqa: BLE001 - the row counts (a TrackingUnavailable too); the next run marks it FINISHED
        log.warning("cell %s is recorded but MLflow run %s could not be marked FINISHED; the next run "
                    "of the grid reconciles it", names.label, run_id, exc_info=True)
    return CellOutcome(job.cell_key, "finished", names.label, dict(result.metrics), run_id,
                       seconds=result.fit.seconds)


def _log_cell(tracker: Tracker, run_id: str, result: CellResult, job: CellJob, settings: Settings) -> str:
    """A trained cell's metrics, plots, predictions, datasets and model on its MLflow run; the
    model URI (``models:/<id>``, its logged model, tagged with the pretrained body it started from)."""
    from benchmark.report.figures import forecast_figure, learning_curve_figure  # matplotlib: only to log a cell

    fit, data, label = result.fit, result.data, job.names.label
    tracker.log_metrics(run_id, {**result.metrics, "train_seconds": fit.seconds,
                                 "epochs": fit.epochs_run, "best_epoch": fit.best_epoch,
                                 "trainable_params": result.params["trainable"],
                                 "frozen_params": result.params["non_trainable"]})
    tracker.log_datasets(run_id, cell_datasets(job, data, str(settings.data_dir)))
    tracker.log_figure(run_id, forecast_figure(data.test_ds[:, 0], data.y_test_true[:, 0],
                                               result.y_pred[:, 0], title=label), "forecast.png")
    tracker.log_figure(run_id, learning_curve_figure(fit.history, title=label), "learning_curve.png")
    tracker.log_frame(run_id, pd.DataFrame({"ds": data.test_ds[:, 0], "y": data.y_test_true[:, 0],
                                            "y_pred": result.y_pred[:, 0]}), "predictions.parquet")
    lineage = {"tlbench.cell_key": job.cell_key, "mode": job.cell.mode}
    if job.pretrained is not None:
        lineage.update(pretrained_model=job.pretrained.registry_name or "",
                       pretrained_version=job.pretrained.version or "",
                       pretrained_key=job.pretrained.key)
    return tracker.log_keras_model(run_id, result.model, data.x_test[:4], tags=lineage)


def cell_datasets(job: CellJob, data, data_dir: str) -> list[DatasetRef]:
    """The training, validation and test data of a cell (its windows, scaled) as MLflow datasets,
    each named with its slice of the target and that slice's time range."""
    cut, names = data.split, job.names
    ds = data.ds if data.ds is not None else np.arange(cut.n_total)
    source = f"{data_dir.rstrip('/')}/{job.cell.target.source}"
    parts = (("training", cut.history_start, cut.val_start, data.x_train, data.y_train),
             ("validation", cut.val_start, cut.test_start, data.x_val, data.y_val),
             ("test", cut.test_start, cut.end, data.x_test, data.y_test))
    return [DatasetRef(context, names.dataset_name(context, ds[start], ds[end - 1], end - start), source, x, y)
            for context, start, end, x, y in parts if end > start and len(x)]
