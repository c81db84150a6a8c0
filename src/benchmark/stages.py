"""The stages of a grid, one job at a time: :func:`run_pretraining`, :func:`run_cell` (with
:func:`train_and_evaluate`, its pure computation) and :func:`run_baselines`; the leaderboard rows
they write; and the ledger-side helpers an orchestrator needs (:func:`ledger_outcomes`,
:func:`close_lost_runs`, :func:`tag_run`), so that ``flows/`` never touches MLflow or the
leaderboard itself.

Every stage function has the signature ``fn(job, settings)`` that :class:`benchmark.grid.Engine`
maps; jobs and results are the small dataclasses of :mod:`benchmark.jobs`. A stage records its
own result (MLflow run, leaderboard row) before it returns, so an orchestrator that loses a
return value loses nothing: the leaderboard is the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import traceback
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from benchmark import __version__
from benchmark.config import CellSpec, DataSpec, ModelSpec, to_plain
from benchmark.data.loading import load_data
from benchmark.errors import TlbenchError
from benchmark.files import atomic_write
from benchmark.jobs import (BaselineJob, CellJob, CellNames, CellOutcome, CellResult, PretrainedRef,
                            PretrainJob, RunContext, now)
from benchmark.leaderboard import Leaderboard
from benchmark.metrics import METRIC_NAMES, Z_METRIC_NAMES
from benchmark.settings import Settings
from benchmark.tracking import (TAG_CELL_KEY, TAG_GRID_ID, TAG_NOTE, TAG_RUN_ID, DatasetRef, Tracker,
                                flatten, host_and_device)

log = logging.getLogger(__name__)

METRICS = METRIC_NAMES  # the metric names of a result row (for the flows' parameter forms)


# --------------------------------------------------------------------------- pretraining


def registry_name(model: ModelSpec, source: DataSpec) -> str:
    """Registered-model name of a pretrained body, e.g. ``pretrained-lstm-m4-hourly``."""
    from benchmark.data.sources import source_label

    slug = re.sub(r"[^a-z0-9]+", "-", source_label(source).lower()).strip("-")
    return f"pretrained-{model.architecture}-{slug}"


def pretrained_dir(settings: Settings, key: str) -> Path:
    """Local cache of a pretrained model (:meth:`Settings.local_dir`, kind ``pretrained``)."""
    return settings.local_dir("pretrained", key)


def _write_meta(folder: Path, ref: PretrainedRef, **extra) -> None:
    meta = {"key": ref.key, "sha256": ref.sha256, "mlflow_run_id": ref.mlflow_run_id,
            "seconds": ref.seconds, **extra, "registry_name": ref.registry_name,
            "version": ref.version, "created": now().isoformat()}
    atomic_write(folder / "meta.json", json.dumps(meta, indent=2))


def _fetch_registered(tracker: Tracker, job: PretrainJob, name: str, version: str,
                      folder: Path) -> PretrainedRef:
    """Download a registered pretrained model into the local cache (checksummed)."""
    from benchmark.pretrain import save_pretrained

    _, run_id = tracker.resolve_model_version(name, version)
    model = tracker.load_registered_keras(name, version)
    sha = save_pretrained(model, folder / "model.keras")
    ref = PretrainedRef(job.key, str(folder / "model.keras"), sha, run_id, 0.0, True, name, version)
    _write_meta(folder, ref)
    return ref


def _cached_pretrained(job: PretrainJob, folder: Path) -> PretrainedRef | None:
    """The local cache's model when its checksum verifies (a corrupted file is never loaded)."""
    from benchmark.pretrain import load_pretrained

    path, meta_path = folder / "model.keras", folder / "meta.json"
    if not (meta_path.is_file() and path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    try:
        load_pretrained(path, meta["sha256"])
    except TlbenchError as exc:
        log.warning("pretrained %s is unusable (%s); fetching or pretraining again", job.key, exc)
        return None
    log.info("reusing pretrained %s (%s)", job.key, path)
    return PretrainedRef(job.key, str(path), meta["sha256"], meta.get("mlflow_run_id"),
                         meta.get("seconds", 0.0), True, meta.get("registry_name"), meta.get("version"))


def run_pretraining(job: PretrainJob, settings: Settings) -> PretrainedRef:
    """Pretrain one (architecture, source, pretraining spec) and register it, or reuse it.

    Reuse, in order: a pinned registry version or alias; the local cache when its checksum
    verifies (a corrupted file is rebuilt, never loaded); a registry version tagged with this
    key (pretrained on another machine or night). Only then is a model trained."""
    tracker = Tracker(settings, job.context.experiment)
    name = registry_name(job.model, job.pretrain.source)
    folder = pretrained_dir(settings, job.key)
    if job.pinned_version:
        version, _ = tracker.resolve_model_version(name, job.pinned_version)
        return _fetch_registered(tracker, job, name, version, folder)
    cached = _cached_pretrained(job, folder)
    if cached is not None:
        return cached
    version = tracker.find_model_version(name, "pretrain_key", job.key)
    if version is not None:
        return _fetch_registered(tracker, job, name, version, folder)
    return _pretrain(job, settings, tracker, name, folder)


def _pretrain(job: PretrainJob, settings: Settings, tracker: Tracker, name: str,
              folder: Path) -> PretrainedRef:
    from benchmark.console import epoch_writer
    from benchmark.data.splits import source_arrays
    from benchmark.pretrain import pretrain_model, save_pretrained
    from benchmark.training import seed_everything

    tags = {"architecture": job.model.architecture, "pretrain_key": job.key,
            "source": job.pretrain.source.source, TAG_RUN_ID: job.context.run_id,
            "normalisation": job.model.normalisation, "pretrain_seed": str(job.seed),
            "package_version": __version__, "git_commit": job.context.git_commit or ""}
    params = {**flatten("model", to_plain(job.model)), **flatten("pretrain", to_plain(job.pretrain)),
              "lookback": str(job.lookback), "horizon": str(job.horizon)}
    run_id = tracker.start_run(f"pretrain-{job.model.architecture}-{job.key[:8]}", "pretrain", tags,
                               params, parent_run_id=job.context.parent_run_id)
    progress = epoch_writer(settings, job.key, job.pretrain.training.max_epochs)
    try:
        progress(-1, {})
        seed_everything(job.seed, job.pretrain.training.deterministic)
        frame = load_data(job.pretrain.source, settings)
        arrays = source_arrays(frame, job.pretrain, job.lookback, job.horizon, job.model.normalisation)
        model, fit = pretrain_model(job.model, job.pretrain.training, (arrays.x_train, arrays.y_train),
                                    (arrays.x_val, arrays.y_val), (job.lookback, job.horizon), job.seed, progress)
        progress(fit.epochs_run - 1, {"finished": True, "val_loss": min(fit.history.get("val_loss", [np.nan]))})
        path = folder / "model.keras"
        sha = save_pretrained(model, path)
        tracker.log_history(run_id, fit.history)
        tracker.log_metrics(run_id, {"train_seconds": fit.seconds, "epochs": fit.epochs_run,
                                     "n_train_windows": len(arrays.x_train),
                                     "n_series": arrays.n_series,
                                     "best_val_loss": min(fit.history.get("val_loss", [np.nan]))})
        model_uri = tracker.log_keras_model(run_id, model, arrays.x_val[:4],
                                            tags={"pretrain_key": job.key, "registered_model": name})
        version = tracker.register_model(name, run_id, model_uri, {"pretrain_key": job.key,
                                                                   "sha256": sha})
        tracker.set_tags(run_id, {"registered_model": name, "registered_version": version})
        ref = PretrainedRef(job.key, str(path), sha, run_id, fit.seconds, False, name, version)
        _write_meta(folder, ref, architecture=job.model.architecture,
                    normalisation=job.model.normalisation, lookback=job.lookback, horizon=job.horizon)
        _score_on_source(job, settings, tracker, model, run_id)
        tracker.end_run(run_id, "FINISHED")
        return ref
    except BaseException as exc:
        tracker.end_run(run_id, "FAILED", error=f"{type(exc).__name__}: {exc}")
        raise


#: Sources with a published protocol to score a pretrained body on: ``(horizon, season length)``.
SOURCE_PROTOCOLS = {("m4", "Hourly"): (48, 24)}


def _score_on_source(job: PretrainJob, settings: Settings, tracker: Tracker, model, run_id: str) -> None:
    """Score a freshly pretrained body on its source's own protocol (M4 Hourly: 48 steps, all
    series), log ``m4_smape``/``m4_mase``/``m4_owa`` on its run and write ``source`` rows (the body,
    seasonal naive, Naive2 and, once per results location, MSTL: ``evaluation.SOURCE_REFERENCES``)
    so nobody transfers a body unaware. A source without a protocol, or a subset, is skipped."""
    from benchmark.data.sources import parse_options
    from benchmark.evaluation import ModelForecaster, ensure_source_references, evaluate_source, source_metrics

    options, _ = parse_options(job.pretrain.source)
    protocol = SOURCE_PROTOCOLS.get((job.pretrain.source.source, getattr(options, "group", None)))
    if protocol is None or job.pretrain.max_series is not None:
        return
    horizon, season = protocol
    try:
        forecaster = ModelForecaster(model, normalisation=job.model.normalisation)
        scored = evaluate_source(job.pretrain.source, "pretrained", settings.data_dir, forecaster,
                                 protocol=(horizon, season), allow_download=settings.allow_download)
        reference = evaluate_source(job.pretrain.source, "seasonal_naive", settings.data_dir,
                                    protocol=(horizon, season), allow_download=settings.allow_download)
        scored.update({f"{key}_seasonal_naive": reference[key] for key in ("smape", "mase", "owa")})
        tracker.log_metrics(run_id, source_metrics(scored))
        tracker.set_tags(run_id, {"m4_eval": forecaster.strategy(horizon)})
        Leaderboard(settings.results).append(source_rows(job, scored, run_id))
        ensure_source_references(settings, job.pretrain.source, protocol)  # logs its own failure
    except Exception:  # noqa: BLE001 - the body is trained and registered; its score can be redone
        log.warning("could not score the pretrained body %s on its source", job.key, exc_info=True)


def record_source_evaluation(settings: Settings, loaded, forecaster, scored: dict, reference: dict) -> str:
    """``tlbench evaluate-source --model``'s result as leaderboard rows of kind ``source`` (grid
    ``evaluate-source``): the model (``loaded``, an ``evaluation.SourceModel``) and seasonal naive
    (``reference``) and Naive2 on the protocol. Returns the results location."""
    from benchmark.config import DataSpec, ModelSpec, PretrainSpec, spec_hash

    stamp = now()
    context = RunContext("evaluate-source", "evaluate-source", f"{stamp:%Y%m%dT%H%M%S}", f"{stamp:%Y-%m-%d}",
                         "tlbench-evaluate", None, None)
    architecture = re.sub(r"^pretrained_", "", str(getattr(loaded.model, "name", "model")))
    job = PretrainJob(spec_hash("evaluate-source", loaded.label), ModelSpec(architecture=architecture,
                      normalisation=loaded.normalisation), PretrainSpec(source=DataSpec("m4", {"group": "Hourly"})),
                      forecaster.lookback, forecaster.model_horizon, context)
    scored = {**scored, **{f"{key}_seasonal_naive": reference[key] for key in ("smape", "mase", "owa")}}
    Leaderboard(settings.results).append(source_rows(job, scored, loaded.run_id))
    return settings.results


def source_rows(job: PretrainJob, scored: dict, run_id: str | None) -> list[dict]:
    """Leaderboard rows of kind ``source``: the body and the seasonal naive and Naive2 forecasts
    on the source's protocol (sMAPE, MASE, OWA; the other metrics NaN), keyed by the body."""
    from benchmark.data.sources import source_label

    host, device = host_and_device()
    base = {"grid_id": job.context.grid_id, "grid": job.context.grid, "run_id": job.context.run_id,
            "run_date": job.context.run_date, "kind": "source", "target": source_label(job.pretrain.source),
            "target_dataset": job.pretrain.source.source, "target_column": None,
            "target_size": int(scored["n_series"]), "lookback": int(job.lookback),
            "horizon": int(scored["horizon"]), "git_commit": job.context.git_commit,
            "data_fingerprint": job.key, "package_version": __version__, "regime": "stateless",
            "features": "y", "normalisation": job.model.normalisation, "forecast": "direct",
            "pretrain_seed": int(job.seed), "train_seconds": 0.0, "epochs": 0, "trainable_params": 0,
            "frozen_params": 0, "mlflow_run_id": None, "model_uri": None, "pretrained_key": job.key,
            "pretrained_version": None, "worker_host": host, "device": device,
            "started_at": now(), "finished_at": now(), **{m: float("nan") for m in METRIC_NAMES}}
    entries = [(job.model.architecture, "pretrained", scored["smape"], scored["mase"], scored["owa"], run_id),
               ("baseline", "naive2", scored["smape_naive2"], scored["mase_naive2"], 1.0, None)]
    if "smape_seasonal_naive" in scored:
        entries.append(("baseline", "seasonal_naive", scored["smape_seasonal_naive"],
                        scored["mase_seasonal_naive"], scored["owa_seasonal_naive"], None))
    return [{**base, "cell_key": f"source-{job.key}-{mode}", "architecture": architecture, "mode": mode,
             "seed": int(job.seed), "smape": float(smape), "mase": float(mase), "owa": float(owa),
             "mlflow_run_id": run}
            for architecture, mode, smape, mase, owa, run in entries]


# --------------------------------------------------------------------------- cells


def train_and_evaluate(cell: CellSpec, settings: Settings, pretrained: PretrainedRef | None,
                       on_epoch_end: Callable[[int, dict], None] | None = None) -> CellResult:
    """Train one cell and evaluate it on its target's fixed test segment, on the original scale.

    Pure computation (no tracking, no files written): returns the model, its fit, predictions and
    metrics for the caller to log.
    """
    from benchmark.data.features import load_covariates
    from benchmark.data.sources import source_label
    from benchmark.data.splits import make_cell_data, scale_metrics
    from benchmark.metrics import compute_metrics
    from benchmark.models import TRANSFER_MODES, param_counts, prepare_for_mode
    from benchmark.training import REGIMES, seed_everything, train_for_mode

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
    from benchmark.models import build_model

    twin = build_model(spec, None, n_features, horizon, name=model.name)
    twin.set_weights(model.get_weights())
    for layer in twin.layers:
        layer.trainable = model.get_layer(layer.name).trainable
    return twin


def _load_source_model(pretrained: PretrainedRef, settings: Settings):
    """The pretrained model a cell starts from: the local file when this machine has it (checksum
    verified), else the registered version, fetched from MLflow (another machine pretrained it)."""
    from benchmark.pretrain import load_pretrained

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
    except Exception as exc:  # noqa: BLE001 - a cell's failure is recorded, not raised
        error = f"{type(exc).__name__}: {exc}"
        log.error("cell %s failed: %s\n%s", names.label, error, traceback.format_exc())
        try:
            curves.flush()  # the curve up to the failure (a NaN loss shows where it went wrong)
            tracker.end_run(run_id, "FAILED", error=error)
        except Exception:  # noqa: BLE001 - MLflow is down: the failure row still goes in; the
            log.warning("could not mark MLflow run %s FAILED", run_id, exc_info=True)  # rerun closes it
        _record_failure(leaderboard, job, job.cell_key, error, **names.columns())
        return CellOutcome(job.cell_key, "failed", names.label, mlflow_run_id=run_id, error=error)
    try:
        tracker.end_run(run_id, "FINISHED")
        tracker.supersede_runs(job.cell_key, run_id, settings.delete_superseded)  # one counted run
    except Exception:  # noqa: BLE001 - the row counts; the next run marks this run FINISHED
        log.warning("cell %s is recorded but MLflow run %s could not be marked FINISHED; the next run "
                    "of the grid reconciles it", names.label, run_id, exc_info=True)
    return CellOutcome(job.cell_key, "finished", names.label, dict(result.metrics), run_id,
                       seconds=result.fit.seconds)


def _log_cell(tracker: Tracker, run_id: str, result: CellResult, job: CellJob, settings: Settings) -> str:
    """A trained cell's metrics, plots, predictions, datasets and model on its MLflow run; the
    model URI (``models:/<id>``, its logged model, tagged with the pretrained body it started from)."""
    from benchmark.report import forecast_figure, learning_curve_figure

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


# --------------------------------------------------------------------------- leaderboard rows


def identity_columns(context: RunContext, cell: CellSpec, key: str, fingerprint: str) -> dict:
    """The leaderboard columns that say which cell a row is."""
    options = cell.target.options
    return {
        **context.ledger_columns(cell, key), "kind": "model", **CellNames.of(cell).columns(),
        "target_dataset": cell.target.source,
        "target_column": options.get("column") or options.get("value_column"),
        "lookback": int(cell.split.lookback), "horizon": int(cell.split.horizon),
        "git_commit": context.git_commit, "data_fingerprint": fingerprint,
        "package_version": __version__, **cell.variant, "pretrain_seed": int(cell.pretrain_seed),
    }


def result_row(identity: dict, metrics: dict, started: dt.datetime, fit=None, params: dict | None = None,
               **extra) -> dict:
    """A leaderboard row: ``identity`` (:func:`identity_columns`), the metrics, and what ran it."""
    host, device = host_and_device()
    params = params or {"trainable": 0, "non_trainable": 0}
    return {
        **identity,
        **{m: float(metrics.get(m, np.nan)) for m in (*METRIC_NAMES, *Z_METRIC_NAMES)},
        "train_seconds": float(fit.seconds) if fit else 0.0,
        "epochs": int(fit.epochs_run) if fit else 0,
        "trainable_params": int(params["trainable"]), "frozen_params": int(params["non_trainable"]),
        "mlflow_run_id": None, "model_uri": None, "pretrained_key": None, "pretrained_version": None,
        "worker_host": host, "device": device, "started_at": started, "finished_at": now(),
        **extra,
    }


def model_row(job: CellJob, result: CellResult, started: dt.datetime, run_id: str, model_uri: str) -> dict:
    """The leaderboard row of a finished model cell."""
    identity = identity_columns(job.context, job.cell, job.cell_key, job.data_fingerprint)
    pretrained = job.pretrained
    return result_row(identity, result.metrics, started, result.fit, result.params,
                      mlflow_run_id=run_id, model_uri=model_uri,
                      pretrained_key=pretrained.key if pretrained else None,
                      pretrained_version=pretrained.registry_version if pretrained else None)


def _record_failure(leaderboard: Leaderboard, job: CellJob | BaselineJob, key: str, error: str, **columns) -> None:
    """The failure row of a cell or baseline (``key`` of ``job``), or a logged error."""
    try:
        leaderboard.record_failure({**job.context.ledger_columns(job.cell, key), **columns, "error": error[:5000],
                                    "failed_at": now()})
    except Exception:  # noqa: BLE001 - the failure is already in the outcome, MLflow and the log
        log.exception("could not record the failure of %s", key)


# --------------------------------------------------------------------------- baselines


def run_baselines(job: BaselineJob, settings: Settings) -> list[CellOutcome]:
    """Rows of kind 'baseline' (architecture 'baseline', mode = the baseline's name, seed 0)."""
    from benchmark.baselines import BASELINES, forecast_at_origins
    from benchmark.data.sources import source_label
    from benchmark.data.splits import scale_metrics, split_target, test_origins
    from benchmark.metrics import compute_metrics
    from benchmark.statistical import set_fit_seconds
    cell, label = job.cell, source_label(job.cell.target)
    set_fit_seconds(settings.baseline_fit_seconds)
    values = load_data(cell.target, settings, cell.split)["y"].to_numpy(dtype=float)
    split = split_target(len(values), cell.target_size, cell.split, label)
    insample = values[split.history_start:split.val_start]
    horizon, m = cell.split.horizon, cell.split.season_length
    # The same targets the models are scored on: one row per test origin, `horizon` steps each.
    origins = test_origins(split, cell.split)
    truth = values[origins[:, None] + np.arange(horizon)]  # [n_origins, horizon]
    leaderboard = Leaderboard(settings.results)
    outcomes, rows, finished = [], [], leaderboard.finished_keys()
    for name in job.baselines:
        key, text = job.key(name), f"{label} n={cell.target_size} baseline/{name}"
        if key in finished:
            outcomes.append(CellOutcome(key, "skipped", text))
            continue
        started, baseline = now(), BASELINES.get(name)
        try:  # a fit that fails or times out (benchmark.statistical) is this baseline's failure row
            forecast = forecast_at_origins(baseline, values, split.history_start, split.test_start, origins,
                                           horizon, m)
        except TlbenchError as exc:
            _record_failure(leaderboard, job, key, str(exc), target=label, mode=name,
                            target_size=int(cell.target_size), architecture="baseline", seed=0)
            outcomes.append(CellOutcome(key, "failed", text, error=str(exc)))
            continue
        metrics = compute_metrics(truth, forecast, insample, m)
        metrics.update(scale_metrics(cell.split, split, values, truth, forecast))
        identity = {**identity_columns(job.context, cell, key, job.data_fingerprint), "kind": "baseline",
                    "architecture": "baseline", "mode": name, "seed": 0, "pretrain_seed": None}
        rows.append(result_row(identity, metrics, started))
        leaderboard.write_errors(rows[-1], truth - forecast)
        outcomes.append(CellOutcome(key, "finished", text, dict(metrics)))
    if rows:
        leaderboard.append(rows)
    return outcomes


# --------------------------------------------------------------------------- the ledger, for orchestrators


def ledger_outcomes(jobs: Sequence[CellJob], settings: Settings) -> dict[str, CellOutcome]:
    """What the leaderboard says of ``jobs``: ``{cell_key: outcome}`` for every cell with a row
    (finished, with its metrics and run) or a failure row of its grid run (failed, with the
    error; the latest failure wins). A cell with neither is missing: it never got recorded."""
    board = Leaderboard(settings.results)
    finished = board.finished_keys()
    rows = board.read(grid=sorted({job.cell.grid for job in jobs}))
    by_key = {row["cell_key"]: row for row in rows.to_dict(orient="records")} if len(rows) else {}
    failures = board.failures()
    errors: dict[str, str] = {}
    if len(failures):
        mine = failures[failures["run_id"].isin({job.context.run_id for job in jobs})]
        errors = dict(zip(mine["cell_key"], mine["error"]))  # oldest first: the last one wins
    outcomes = {}
    for job in jobs:
        label = job.names.label
        if job.cell_key in finished:
            row = by_key.get(job.cell_key, {})
            outcomes[job.cell_key] = CellOutcome(
                job.cell_key, "finished", label, {m: float(row[m]) for m in METRIC_NAMES if m in row},
                row.get("mlflow_run_id"), seconds=float(row.get("train_seconds", 0.0)),
                worker_host=row.get("worker_host"))
        elif job.cell_key in errors:
            outcomes[job.cell_key] = CellOutcome(job.cell_key, "failed", label, error=errors[job.cell_key])
    return outcomes


def close_lost_runs(jobs: Sequence[CellJob], settings: Settings) -> None:
    """Close as KILLED the MLflow runs that cells without a row left RUNNING (a crashed worker);
    the next run of the grid would, and never fails for it."""
    if not jobs:
        return
    try:
        tracker = Tracker(settings, jobs[0].context.experiment)
        for job in jobs:
            tracker.close_stale_runs(job.cell_key)
    except Exception:  # noqa: BLE001 - the next run closes them too
        log.warning("could not close stale MLflow runs", exc_info=True)


def tag_run(settings: Settings, experiment: str, run_id: str | None, tags: dict[str, str]) -> None:
    """Add provenance tags to a recorded run (e.g. the pool worker that ran a cell); never raises."""
    if not run_id:
        return
    try:
        Tracker(settings, experiment).set_tags(run_id, tags)
    except Exception:  # noqa: BLE001 - tags are provenance; never fail a recorded cell for them
        log.warning("could not tag MLflow run %s", run_id, exc_info=True)


def regression_check(settings: Settings, grid: str, run_id: str, metric: str = "mase",
                     threshold_pct: float = 5.0):
    """:func:`benchmark.nightly.regression_check` of a grid run against the leaderboard at
    ``settings.results``."""
    from benchmark.nightly import regression_check as check

    return check(Leaderboard(settings.results), grid, run_id, metric, threshold_pct)
