"""Expand a grid into cells, run one pretraining, one cell, one baseline set, and run a whole grid.

:func:`run_grid` is the one entry point: the CLI, the Prefect flows and the tests all call it.
*What* runs is decided here; *where* it runs is an :class:`Engine` handed in by the caller
(:class:`LocalEngine` threads here, a Prefect engine in ``flows/``). Stages hand each other
small, picklable jobs and outcomes (specs, keys, paths, run ids), never frames or models.

Identity and resume: a cell's key is the hash of its full spec, the target's data fingerprint and
the package version. A cell whose key already has a row in the Parquet leaderboard is skipped; a
failed or crashed cell has none and runs again. The leaderboard is the ledger because it is the
product's answer and lives at the results location every worker can reach (Prefect's result cache
is per machine); MLflow is reconciled against it (runs left RUNNING are closed).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import json
import logging
import os
import socket
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import pandas as pd

from benchmark import __version__
from benchmark.config import (CellSpec, DataSpec, GridSpec, ModelSpec, PretrainSpec, SplitSpec,
                              spec_hash, to_plain)
from benchmark.errors import DataError, TlbenchError
from benchmark.settings import Settings

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- jobs and outcomes


@dataclass(frozen=True)
class RunContext:
    """What every job of one grid run shares."""

    grid: str
    grid_id: str
    run_id: str
    run_date: str
    experiment: str
    parent_run_id: str | None
    git_commit: str | None


@dataclass(frozen=True)
class PretrainJob:
    key: str
    model: ModelSpec
    pretrain: PretrainSpec
    lookback: int
    horizon: int
    context: RunContext
    seed: int = 0
    pinned_version: str | None = None  # a registry version or alias to use instead of training


@dataclass(frozen=True)
class PretrainedRef:
    """Where a pretrained model is: a local ``.keras`` file (with its checksum) and its version in
    the MLflow Model Registry, from which a worker on another machine fetches it."""

    key: str
    path: str
    sha256: str
    mlflow_run_id: str | None
    seconds: float
    reused: bool
    registry_name: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class CellJob:
    cell: CellSpec
    cell_key: str
    data_fingerprint: str
    context: RunContext
    pretrained: PretrainedRef | None = None


@dataclass(frozen=True)
class CellOutcome:
    cell_key: str
    status: str  # finished | failed | skipped
    label: str
    metrics: dict = field(default_factory=dict)
    mlflow_run_id: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class GridResult:
    grid: str
    grid_id: str
    run_id: str
    parent_run_id: str | None
    outcomes: list[CellOutcome]
    leaderboard: pd.DataFrame
    aggregate_uri: str | None
    wall_seconds: float
    report_path: str | None = None

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for outcome in self.outcomes:
            out[outcome.status] = out.get(outcome.status, 0) + 1
        return out


# --------------------------------------------------------------------------- engines


class Engine(Protocol):
    """Where jobs run. ``map`` runs ``fn(item, settings)`` for every item and returns the results
    in order; ``fn`` is a module-level function of this module named by ``stage``."""

    def map(self, stage: str, fn: Callable[[Any, Settings], Any], items: Sequence[Any],
            settings: Settings) -> list[Any]: ...


def engine_slots(engine: Engine) -> int:
    """How many jobs ``engine`` runs at once (its ``slots`` attribute; 1 when it has none). With
    more than one, :func:`run_grid` may call ``map`` from two threads at once (stages overlap)."""
    return int(getattr(engine, "slots", 1) or 1)


class LocalEngine:
    """Runs jobs in this process, ``concurrency`` at a time (threads). The engine of one-at-a-time
    runs and of tests: threads share one TensorFlow runtime and one GIL and do not make cells
    faster on a CPU (docs/performance.md); parallel cells need processes
    (:class:`benchmark.engines.ProcessEngine`, ``tlbench run --engine local --concurrency K``)."""

    def __init__(self, concurrency: int = 1):
        self.concurrency = max(1, int(concurrency))

    @property
    def slots(self) -> int:
        return self.concurrency

    def map(self, stage, fn, items, settings):
        if self.concurrency == 1 or len(items) <= 1:
            return [fn(item, settings) for item in items]
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"tlbench-{stage}") as pool:
            return list(pool.map(lambda item: fn(item, settings), items))


# --------------------------------------------------------------------------- data access


@functools.lru_cache(maxsize=16)
def _load_cached(spec_json: str, data_dir: str, allow_download: bool, fill_gaps: str | None,
                 max_gap: int) -> pd.DataFrame:
    from benchmark.data.sources import load_source

    plain = json.loads(spec_json)
    return load_source(DataSpec(plain["source"], plain["options"]), Path(data_dir), allow_download,
                       fill_gaps=fill_gaps, max_gap=max_gap)


def load_data(spec: DataSpec, settings: Settings, split: SplitSpec | None = None) -> pd.DataFrame:
    """A source's tidy, validated frame, cached per process (cells of one target share one load).
    ``split.fill_gaps`` decides whether small gaps are filled or are errors."""
    from benchmark.config import canonical_json

    fill_gaps, max_gap = (split.fill_gaps, split.max_gap) if split else (None, 0)
    return _load_cached(canonical_json(spec), str(settings.data_dir), settings.allow_download,
                        fill_gaps, max_gap)


# --------------------------------------------------------------------------- planning


def expand(spec: GridSpec) -> list[CellSpec]:
    """Every (target, size, architecture, regime, feature set, mode, seed) of a grid, as full
    cell specs."""
    import itertools

    return [CellSpec(grid=spec.name, target=target, target_size=size, mode=mode, seed=seed,
                     split=spec.split, model=replace(spec.model, architecture=architecture),
                     training=spec.training, transfer=spec.transfer, pretrain=spec.pretrain,
                     regime=regime, features=tuple(features))
            for target, size, architecture, regime, features, mode, seed in itertools.product(
                spec.targets, spec.target_sizes, spec.architectures, spec.regimes,
                spec.feature_sets, spec.modes, spec.seeds)]


def cell_key(cell: CellSpec, data_fingerprint: str) -> str:
    """A cell's identity: its full spec, its data and the code version."""
    return spec_hash(cell, data_fingerprint, __version__)


def pretrain_key(model: ModelSpec, pretrain: PretrainSpec, lookback: int, horizon: int,
                 source_fingerprint: str) -> str:
    """Everything that determines a pretrained model; the same key is never trained twice."""
    return spec_hash({"model": model, "pretrain": pretrain, "lookback": lookback, "horizon": horizon,
                      "source": source_fingerprint, "version": __version__})


def _git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except Exception:  # noqa: BLE001 - not a git checkout (an installed wheel): no commit
        return None


def check_targets(spec: GridSpec, settings: Settings) -> dict[str, str]:
    """Load every target, check every size fits; all problems at once. Returns fingerprints."""
    from benchmark.data.features import build_inputs, load_covariates
    from benchmark.data.sources import data_fingerprint, source_label
    from benchmark.data.splits import split_target

    problems, fingerprints = [], {}
    for i, target in enumerate(spec.targets):
        label = source_label(target)
        try:
            frame = load_data(target, settings, spec.split)
        except DataError as exc:
            problems.append(f"grid.targets[{i}] ({label}): {exc}")
            continue
        ids = frame["unique_id"].unique()
        if len(ids) != 1:
            problems.append(f"grid.targets[{i}] ({label}): a target must be one series, found {len(ids)}; "
                            "choose one column or filter the CSV")
            continue
        fingerprints[label] = data_fingerprint(frame)
        for j, names in enumerate(spec.feature_sets):
            if not names:
                continue
            try:  # covariate columns exist and align, calendar features have dates: before training
                covariates = load_covariates(target, frame, names,
                                             lambda other: load_data(other, settings, spec.split))
                build_inputs(frame, names, label, covariates)
            except DataError as exc:
                problems.append(f"grid.feature_sets[{j}] on grid.targets[{i}] ({label}): {exc}")
        for size in spec.target_sizes:
            try:
                split_target(len(frame), size, spec.split, label)
            except DataError as exc:
                problems.append(f"grid.targets[{i}] size {size}: {exc}")
    if problems:
        raise DataError("the grid's targets do not fit what was asked:\n"
                        + "\n".join(f"  - {p}" for p in problems))
    return fingerprints


# --------------------------------------------------------------------------- stage: pretraining


def pretrained_dir(settings: Settings, key: str) -> Path:
    """Local cache of pretrained models: ``<results>/pretrained/<key>/`` (or a local cache folder
    beside the MLflow store when results live on an object store: the registry is the source)."""
    if "://" in settings.results and not settings.results.startswith("file://"):
        return settings.mlflow_dir / "pretrained-cache" / key
    return Path(settings.results.removeprefix("file://")) / "pretrained" / key


def registry_name(model: ModelSpec, source: DataSpec) -> str:
    """Registered-model name of a pretrained body, e.g. ``pretrained-lstm-m4-hourly``."""
    import re

    from benchmark.data.sources import source_label

    slug = re.sub(r"[^a-z0-9]+", "-", source_label(source).lower()).strip("-")
    return f"pretrained-{model.architecture}-{slug}"


def _write_meta(folder: Path, meta: dict) -> None:
    tmp = folder / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(folder / "meta.json")


def _fetch_registered(tracker, job: PretrainJob, name: str, version: str, run_id: str | None,
                      folder: Path) -> PretrainedRef:
    """Download a registered pretrained model into the local cache (checksummed)."""
    from benchmark.pretrain import save_pretrained

    model = tracker.load_registered_keras(name, version)
    folder.mkdir(parents=True, exist_ok=True)
    sha = save_pretrained(model, folder / "model.keras")
    _write_meta(folder, {"key": job.key, "sha256": sha, "mlflow_run_id": run_id, "seconds": 0.0,
                         "registry_name": name, "version": version, "created": _now().isoformat()})
    return PretrainedRef(job.key, str(folder / "model.keras"), sha, run_id, 0.0, True, name, version)


def run_pretraining(job: PretrainJob, settings: Settings) -> PretrainedRef:
    """Pretrain one (architecture, source, pretraining spec) and register it, or reuse it.

    Reuse, in order: a pinned registry version or alias; the local cache when its checksum
    verifies (a corrupted file is rebuilt, never loaded); a registry version tagged with this
    key (pretrained on another machine or night). Only then is a model trained.
    """
    from benchmark.data.splits import source_arrays
    from benchmark.pretrain import load_pretrained, pretrain_model, save_pretrained
    from benchmark.tracking import TAG_RUN_ID, Tracker, flatten
    from benchmark.training import seed_everything

    tracker = Tracker(settings, job.context.experiment)
    name = registry_name(job.model, job.pretrain.source)
    folder = pretrained_dir(settings, job.key)
    path, meta_path = folder / "model.keras", folder / "meta.json"
    if job.pinned_version:
        version, run_id = tracker.resolve_model_version(name, job.pinned_version)
        return _fetch_registered(tracker, job, name, version, run_id, folder)
    if meta_path.is_file() and path.is_file():
        meta = json.loads(meta_path.read_text())
        try:
            load_pretrained(path, meta["sha256"])
            log.info("reusing pretrained %s (%s)", job.key, path)
            return PretrainedRef(job.key, str(path), meta["sha256"], meta.get("mlflow_run_id"),
                                 meta.get("seconds", 0.0), True, meta.get("registry_name"),
                                 meta.get("version"))
        except TlbenchError as exc:
            log.warning("pretrained %s is unusable (%s); fetching or pretraining again", job.key, exc)
    version = tracker.find_model_version(name, "pretrain_key", job.key)
    if version is not None:
        _, run_id = tracker.resolve_model_version(name, version)
        return _fetch_registered(tracker, job, name, version, run_id, folder)

    run_name = f"pretrain-{job.model.architecture}-{job.key[:8]}"
    tags = {"architecture": job.model.architecture, "pretrain_key": job.key,
            "source": job.pretrain.source.source, TAG_RUN_ID: job.context.run_id,
            "package_version": __version__, "git_commit": job.context.git_commit or ""}
    params = {**flatten("model", to_plain(job.model)), **flatten("pretrain", to_plain(job.pretrain)),
              "lookback": str(job.lookback), "horizon": str(job.horizon)}
    run_id = tracker.start_run(run_name, "pretrain", tags, params, parent_run_id=job.context.parent_run_id)
    try:
        seed_everything(job.seed, job.pretrain.training.deterministic)
        frame = load_data(job.pretrain.source, settings)
        arrays = source_arrays(frame, job.lookback, job.horizon, job.pretrain.val_fraction,
                               windows_per_series=job.pretrain.windows_per_series,
                               max_series=job.pretrain.max_series)
        model, fit = pretrain_model(job.model, job.pretrain.training, (arrays.x_train, arrays.y_train),
                                    (arrays.x_val, arrays.y_val), job.lookback, job.horizon, job.seed)
        folder.mkdir(parents=True, exist_ok=True)
        sha = save_pretrained(model, path)
        tracker.log_history(run_id, fit.history)
        tracker.log_metrics(run_id, {"train_seconds": fit.seconds, "epochs": fit.epochs_run,
                                     "n_train_windows": len(arrays.x_train),
                                     "n_series": arrays.n_series,
                                     "best_val_loss": min(fit.history.get("val_loss", [np.nan]))})
        tracker.log_keras_model(run_id, model, arrays.x_val[:4])
        version = tracker.register_model(name, run_id, "model", {"pretrain_key": job.key,
                                                                 "sha256": sha})
        tracker.set_tags(run_id, {"registered_model": name, "registered_version": version})
        _write_meta(folder, {"key": job.key, "sha256": sha, "mlflow_run_id": run_id,
                             "seconds": fit.seconds, "architecture": job.model.architecture,
                             "registry_name": name, "version": version, "created": _now().isoformat()})
        tracker.end_run(run_id, "FINISHED")
        return PretrainedRef(job.key, str(path), sha, run_id, fit.seconds, False, name, version)
    except BaseException as exc:
        tracker.end_run(run_id, "FAILED", error=f"{type(exc).__name__}: {exc}")
        raise


# --------------------------------------------------------------------------- stage: cells


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def variant_parts(cell: CellSpec) -> list[str]:
    """The cell's regime and feature set where they are not the defaults (``[]`` for a plain
    stateless, target-only cell): what labels and run names add to tell variants apart, the same
    rule as the leaderboard's :func:`~benchmark.leaderboard.fold_variants`."""
    from benchmark.leaderboard import VARIANT_DEFAULTS

    values = {"regime": cell.regime, "features": cell.feature_label}
    return [values[column] for column, default in VARIANT_DEFAULTS if values[column] != default]


def cell_label(cell: CellSpec) -> str:
    from benchmark.data.sources import source_label

    variant = "".join(f" {part}" for part in variant_parts(cell))
    return (f"{source_label(cell.target)} n={cell.target_size} {cell.model.architecture}/"
            f"{cell.mode}{variant} seed={cell.seed}")


def train_and_evaluate(cell: CellSpec, settings: Settings, pretrained: PretrainedRef | None,
                       on_epoch_end: Callable[[int, dict], None] | None = None) -> dict:
    """Train one cell and evaluate it on its target's fixed test segment, on the original scale.

    Pure computation (no tracking, no files written): returns the model, its fit, predictions and
    metrics for the caller to log.
    """
    from benchmark.data.features import load_covariates
    from benchmark.data.sources import source_label
    from benchmark.data.splits import make_cell_data
    from benchmark.metrics import compute_metrics
    from benchmark.models import TRANSFER_MODES, build_model, param_counts, prepare_for_mode
    from benchmark.training import REGIMES, seed_everything, train_for_mode

    seed_everything(cell.seed, cell.training.deterministic)
    label = source_label(cell.target)
    regime = REGIMES.get(cell.regime)
    frame = load_data(cell.target, settings, cell.split)
    covariates = load_covariates(cell.target, frame, cell.features,
                                 lambda spec: load_data(spec, settings, cell.split))
    data = make_cell_data(frame, cell.target_size, cell.split, label, cell.features, covariates)
    mode = TRANSFER_MODES.get(cell.mode)
    source_model = None
    if mode.load_body:
        if pretrained is None:
            raise TlbenchError(f"mode {cell.mode!r} needs a pretrained model and none was given")
        source_model = _load_source_model(pretrained, settings)
    lookback, horizon = cell.split.lookback, cell.split.horizon
    n_features = data.x_train.shape[-1]
    model = prepare_for_mode(cell.mode, cell.model, lookback, n_features, horizon, source_model,
                             stateful=regime.stateful)
    train, val = regime.samples(data, lookback, horizon)
    fit = train_for_mode(model, mode, train, val, cell.training, cell.transfer,
                         on_epoch_end=on_epoch_end)
    scaled = regime.forecast(model, data, lookback, horizon)  # [n_test, horizon], scaled
    y_pred = np.asarray(data.scaler.inverse_transform(scaled)).reshape(data.y_test_true.shape)
    metrics = compute_metrics(data.y_test_true, y_pred, data.insample, cell.split.season_length)
    params = param_counts(model)
    if regime.stateful:
        # What gets logged: the stateless twin over sequences of any length, same weights and
        # flags. Given the history from its start it returns what the warmed stateful model does.
        twin = build_model(cell.model, None, n_features, horizon, name=model.name)
        twin.set_weights(model.get_weights())
        for layer in twin.layers:
            layer.trainable = model.get_layer(layer.name).trainable
        model = twin
    return {"model": model, "fit": fit, "data": data, "y_pred": y_pred, "metrics": metrics,
            "params": params}


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
    from benchmark.tracking import Tracker

    return Tracker(settings, "unused").load_registered_keras(pretrained.registry_name, pretrained.version)


def _cell_tags(job: CellJob) -> dict[str, str]:
    from benchmark.data.sources import source_label
    from benchmark.tracking import TAG_CELL_KEY, TAG_GRID_ID, TAG_RUN_ID, host_and_device

    cell = job.cell
    host, device = host_and_device()
    tags = {"architecture": cell.model.architecture, "mode": cell.mode,
            "target": source_label(cell.target), "target_size": str(cell.target_size),
            "seed": str(cell.seed), "grid": cell.grid, TAG_GRID_ID: job.context.grid_id,
            "regime": cell.regime, "features": cell.feature_label,
            TAG_RUN_ID: job.context.run_id, TAG_CELL_KEY: job.cell_key,
            "package_version": __version__, "git_commit": job.context.git_commit or "",
            "worker_host": host, "device": device, "data_fingerprint": job.data_fingerprint}
    if job.pretrained is not None:
        tags["pretrained_key"] = job.pretrained.key
        tags["pretrained_run_id"] = job.pretrained.mlflow_run_id or ""
        tags["pretrained_model"] = job.pretrained.registry_name or ""
        tags["pretrained_version"] = job.pretrained.version or ""
    return tags


def _identity(context: RunContext, cell: CellSpec, key: str, fingerprint: str) -> dict:
    """The leaderboard columns that say which cell a row is."""
    from benchmark.data.sources import source_label

    options = cell.target.options
    return {
        "grid_id": context.grid_id, "grid": cell.grid, "run_id": context.run_id,
        "run_date": context.run_date, "cell_key": key, "kind": "model",
        "target": source_label(cell.target), "target_dataset": cell.target.source,
        "target_column": options.get("column") or options.get("value_column"),
        "target_size": int(cell.target_size), "architecture": cell.model.architecture,
        "mode": cell.mode, "seed": int(cell.seed), "lookback": int(cell.split.lookback),
        "horizon": int(cell.split.horizon), "git_commit": context.git_commit,
        "data_fingerprint": fingerprint, "package_version": __version__,
        "regime": cell.regime, "features": cell.feature_label,
    }


def _row(identity: dict, metrics: dict, started: dt.datetime, fit=None, params: dict | None = None,
         **extra) -> dict:
    from benchmark.tracking import host_and_device

    host, device = host_and_device()
    params = params or {"trainable": 0, "non_trainable": 0}
    return {
        **identity,
        **{m: float(metrics.get(m, np.nan)) for m in ("mse", "rmse", "mae", "mape", "smape", "mase")},
        "train_seconds": float(fit.seconds) if fit else 0.0,
        "epochs": int(fit.epochs_run) if fit else 0,
        "trainable_params": int(params["trainable"]), "frozen_params": int(params["non_trainable"]),
        "mlflow_run_id": None, "model_uri": None, "pretrained_key": None, "pretrained_version": None,
        "worker_host": host, "device": device, "started_at": started, "finished_at": _now(),
        **extra,
    }


class _EpochCurves:
    """A cell's per-epoch ``loss``/``val_loss``, sent to MLflow in one call every ``interval_s``
    (and on :meth:`flush`) instead of one call per epoch: the curves stay live in the UI while a
    long cell trains, and a short cell costs one request instead of dozens."""

    def __init__(self, tracker, run_id: str, interval_s: float = 5.0):
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
    from benchmark.leaderboard import Leaderboard
    from benchmark.report import forecast_figure, learning_curve_figure
    from benchmark.tracking import Tracker, flatten

    label = cell_label(job.cell)
    leaderboard = Leaderboard(settings.results)
    if job.cell_key in leaderboard.finished_keys():
        return CellOutcome(job.cell_key, "skipped", label)
    tracker = Tracker(settings, job.context.experiment)
    tracker.close_stale_runs(job.cell_key)
    started = _now()
    params = {**flatten("", to_plain(job.cell)), "cell_key": job.cell_key}
    variant = "".join(f"-{part}" for part in variant_parts(job.cell))
    run_id = tracker.start_run(f"{job.cell.model.architecture}-{job.cell.mode}{variant}-n"
                               f"{job.cell.target_size}-s{job.cell.seed}", "cell", _cell_tags(job), params,
                               parent_run_id=job.context.parent_run_id)
    curves = _EpochCurves(tracker, run_id)
    try:
        result = train_and_evaluate(job.cell, settings, job.pretrained, curves.on_epoch_end)
        curves.flush()
        fit, data = result["fit"], result["data"]
        tracker.log_metrics(run_id, {**result["metrics"], "train_seconds": fit.seconds,
                                     "epochs": fit.epochs_run, "best_epoch": fit.best_epoch,
                                     "trainable_params": result["params"]["trainable"],
                                     "frozen_params": result["params"]["non_trainable"]})
        tracker.log_figure(run_id, forecast_figure(data.test_ds[:, 0], data.y_test_true[:, 0],
                                                   result["y_pred"][:, 0], title=label), "forecast.png")
        tracker.log_figure(run_id, learning_curve_figure(fit.history, title=label), "learning_curve.png")
        tracker.log_frame(run_id, pd.DataFrame({"ds": data.test_ds[:, 0], "y": data.y_test_true[:, 0],
                                                "y_pred": result["y_pred"][:, 0]}), "predictions.parquet")
        model_uri = tracker.log_keras_model(run_id, result["model"], data.x_test[:4])
        # The row goes in before the run is marked FINISHED: a crash (or an MLflow outage) in
        # between leaves a RUNNING run whose cell is already counted; the next run of the grid marks
        # that run FINISHED (close_stale_runs with the row's run id): never a double count.
        identity = _identity(job.context, job.cell, job.cell_key, job.data_fingerprint)
        leaderboard.append([_row(identity, result["metrics"], started, fit, result["params"],
                                 mlflow_run_id=run_id, model_uri=model_uri,
                                 pretrained_key=job.pretrained.key if job.pretrained else None,
                                 pretrained_version=(f"{job.pretrained.registry_name}/{job.pretrained.version}"
                                                     if job.pretrained and job.pretrained.version else None))])
    except Exception as exc:  # noqa: BLE001 - a cell's failure is recorded, not raised
        error = f"{type(exc).__name__}: {exc}"
        log.error("cell %s failed: %s\n%s", label, error, traceback.format_exc())
        try:
            curves.flush()  # the curve up to the failure (a NaN loss shows where it went wrong)
            tracker.end_run(run_id, "FAILED", error=error)
        except Exception:  # noqa: BLE001 - MLflow is down: the failure row still goes in; the
            log.warning("could not mark MLflow run %s FAILED", run_id, exc_info=True)  # rerun closes it
        _record_failure(leaderboard, job, error)
        return CellOutcome(job.cell_key, "failed", label, mlflow_run_id=run_id, error=error)
    try:
        tracker.end_run(run_id, "FINISHED")
    except Exception:  # noqa: BLE001 - the row counts; the next run marks this run FINISHED
        log.warning("cell %s is recorded but MLflow run %s could not be marked FINISHED; the next run "
                    "of the grid reconciles it", label, run_id, exc_info=True)
    return CellOutcome(job.cell_key, "finished", label, dict(result["metrics"]), run_id,
                       seconds=fit.seconds)


def _record_failure(leaderboard, job: CellJob, error: str) -> None:
    from benchmark.data.sources import source_label

    cell = job.cell
    try:
        leaderboard.record_failure({
            "grid_id": job.context.grid_id, "grid": cell.grid, "run_id": job.context.run_id,
            "run_date": job.context.run_date, "cell_key": job.cell_key,
            "target": source_label(cell.target), "target_size": int(cell.target_size),
            "architecture": cell.model.architecture, "mode": cell.mode, "seed": int(cell.seed),
            "error": error[:5000], "failed_at": _now()})
    except Exception:  # noqa: BLE001 - the failure is already in MLflow and the log
        log.exception("could not record the failure of %s", job.cell_key)


@dataclass(frozen=True)
class BaselineJob:
    """Every baseline of a grid on one (target, size): the same test segment as the cells."""

    cell: CellSpec  # the (target, size, split) the baselines share; mode/model unused
    baselines: tuple[str, ...]
    data_fingerprint: str
    context: RunContext

    def key(self, name: str) -> str:
        return spec_hash("baseline", name, self.cell.target, self.cell.target_size, self.cell.split,
                         self.data_fingerprint, __version__)


def run_baselines(job: BaselineJob, settings: Settings) -> list[CellOutcome]:
    """Rows of kind 'baseline' (architecture 'baseline', mode = the baseline's name, seed 0)."""
    from benchmark.baselines import BASELINES
    from benchmark.data.sources import source_label
    from benchmark.data.splits import split_target
    from benchmark.leaderboard import Leaderboard
    from benchmark.metrics import compute_metrics

    cell = job.cell
    label = source_label(cell.target)
    values = load_data(cell.target, settings, cell.split)["y"].to_numpy(dtype=float)
    split = split_target(len(values), cell.target_size, cell.split, label)
    insample = values[split.history_start:split.val_start]
    horizon, m = cell.split.horizon, cell.split.season_length
    # The same targets the models are scored on: one row per test origin, `horizon` steps each.
    origins = np.arange(split.test_start, split.end - horizon + 1)
    truth = values[origins[:, None] + np.arange(horizon)]  # [n_origins, horizon]
    leaderboard = Leaderboard(settings.results)
    finished = leaderboard.finished_keys()
    outcomes, rows = [], []
    for name in job.baselines:
        key, text = job.key(name), f"{label} n={cell.target_size} baseline/{name}"
        if key in finished:
            outcomes.append(CellOutcome(key, "skipped", text))
            continue
        started = _now()
        baseline = BASELINES.get(name)
        if horizon == 1:
            forecast = baseline.one_step(values, split.history_start, split.test_start, split.end, m)
        else:  # multi-step from every origin, with only the values before it
            forecast = np.stack([baseline.forecast(values[split.history_start:t], horizon, m)
                                 for t in origins])
        forecast = np.asarray(forecast, float).reshape(truth.shape)
        metrics = compute_metrics(truth, forecast, insample, m)
        identity = {**_identity(job.context, cell, key, job.data_fingerprint), "kind": "baseline",
                    "architecture": "baseline", "mode": name, "seed": 0}
        rows.append(_row(identity, metrics, started))
        outcomes.append(CellOutcome(key, "finished", text, dict(metrics)))
    if rows:
        leaderboard.append(rows)
    return outcomes


# --------------------------------------------------------------------------- the grid


def default_experiment(spec: GridSpec, settings: Settings) -> str:
    return settings.experiment or f"tlbench-{spec.name}"


def run_grid(spec: GridSpec, settings: Settings, engine: Engine | None = None,
             label: str = "grid spec", on_progress: Callable[[str, int, int], None] | None = None
             ) -> GridResult:
    """Run a whole grid: validate, plan, pretrain what is missing, run the baselines and every
    unfinished cell, then aggregate the leaderboard. The one entry point for CLI, flows and tests.

    Everything that can be checked is checked before anything trains (spec problems all at once,
    then every target and size). ``on_progress(stage, done, total)`` reports progress.
    """
    from benchmark.leaderboard import Leaderboard, aggregate
    from benchmark.models import TRANSFER_MODES
    from benchmark.tracking import TAG_GRID_ID, TAG_HOST, TAG_PID, TAG_RUN_ID, Tracker, flatten
    from benchmark.validation import validate_grid

    t0 = time.perf_counter()
    engine = engine or LocalEngine()
    validate_grid(spec, label)
    fingerprints = check_targets(spec, settings)
    source_fp = source_fingerprint(spec, settings)

    grid_id = spec_hash(spec)
    now = _now()
    tracker = Tracker(settings, default_experiment(spec, settings))
    tracker.ensure_store()  # once, before any fan-out
    run_id = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    commit = _git_commit()
    host = socket.gethostname()
    tracker.close_orphaned_grid_runs(grid_id, host, _pid_alive)  # a killed earlier run of this grid
    parent = tracker.start_run(f"grid-{spec.name}-{run_id}", "grid",
                               {TAG_GRID_ID: grid_id, TAG_RUN_ID: run_id, "grid": spec.name,
                                "package_version": __version__, "git_commit": commit or "",
                                TAG_HOST: host, TAG_PID: str(os.getpid())},
                               flatten("", to_plain(spec)))
    context = RunContext(spec.name, grid_id, run_id, f"{now:%Y-%m-%d}", default_experiment(spec, settings),
                         parent, commit)
    try:
        from benchmark.data.sources import source_label

        cells = expand(spec)
        jobs = [CellJob(c, cell_key(c, fingerprints[source_label(c.target)]),
                        fingerprints[source_label(c.target)], context) for c in cells]
        leaderboard = Leaderboard(settings.results)
        for path, moved_to in leaderboard.quarantine():  # unreadable files: their cells run again
            log.warning("leaderboard file %s is unreadable; moved to %s", path, moved_to)
        finished_runs = leaderboard.finished_runs()
        finished = set(finished_runs)
        pending = [j for j in jobs if j.cell_key not in finished]
        skipped = [CellOutcome(j.cell_key, "skipped", cell_label(j.cell)) for j in jobs
                   if j.cell_key in finished]
        for job in jobs:
            if job.cell_key in finished:  # MLflow agrees with the ledger: the row's run FINISHED
                tracker.close_stale_runs(job.cell_key, committed_run_id=finished_runs[job.cell_key])
        log.info("grid %s: %d cells, %d already finished, %d to run", spec.name, len(jobs),
                 len(skipped), len(pending))

        # Stage 1: one pretraining per distinct (architecture spec, source, pretraining spec).
        def key_of(cell: CellSpec) -> str:
            if spec.transfer.pretrained_version:  # a pinned registry version: its own identity
                return spec_hash("pinned", cell.model, spec.pretrain.source, spec.transfer.pretrained_version)
            return pretrain_key(cell.model, spec.pretrain, spec.split.lookback, spec.split.horizon,
                                source_fp)

        pretrain_jobs: dict[str, PretrainJob] = {}
        for job in pending:
            if TRANSFER_MODES.get(job.cell.mode).load_body:
                key = key_of(job.cell)
                pretrain_jobs.setdefault(key, PretrainJob(key, job.cell.model, spec.pretrain,
                                                          spec.split.lookback, spec.split.horizon,
                                                          context, pinned_version=spec.transfer.pretrained_version))
        # Cells whose mode loads no pretrained model need nothing from stage 1. On an engine with
        # room for more than one job they start now, beside the pretraining, instead of leaving
        # a worker idle behind the stage barrier (on the smoke grid the scratch cells fill the
        # second core while the only pretraining runs).
        needs_body = {j.cell_key: TRANSFER_MODES.get(j.cell.mode).load_body for j in pending}
        independent = [j for j in pending if not needs_body[j.cell_key]]
        overlap = bool(independent and pretrain_jobs) and engine_slots(engine) > 1
        side = ThreadPoolExecutor(1, thread_name_prefix="tlbench-early-cells") if overlap else None
        early = (side.submit(contextvars.copy_context().run, engine.map, "cell", run_cell, independent,
                             settings) if side else None)
        try:
            refs = engine.map("pretrain", run_pretraining, list(pretrain_jobs.values()), settings)
            by_key = {ref.key: ref for ref in refs}
            if on_progress:
                on_progress("pretrain", len(refs), len(refs))
            pending = [replace(j, pretrained=by_key[key_of(j.cell)]) if needs_body[j.cell_key] else j
                       for j in pending]

            # Stage 2: baselines per (target, size): cheap, one job each.
            baseline_jobs = []
            seen = set()
            for job in jobs:
                ident = (source_label(job.cell.target), job.cell.target_size)
                if spec.baselines and ident not in seen:
                    seen.add(ident)
                    baseline_jobs.append(BaselineJob(job.cell, tuple(spec.baselines),
                                                     job.data_fingerprint, context))
            baseline_outcomes = [o for group in engine.map("baselines", run_baselines, baseline_jobs,
                                                           settings) for o in group]

            # Stage 3: every unfinished cell (those not started early).
            rest = [j for j in pending if needs_body[j.cell_key]] if overlap else pending
            by_cell = {o.cell_key: o for o in engine.map("cell", run_cell, rest, settings)}
        finally:
            if side is not None:
                side.shutdown(wait=True)  # never leave cells running behind a failed stage
        if early is not None:
            by_cell.update({o.cell_key: o for o in early.result()})
        outcomes = [by_cell[j.cell_key] for j in pending]
        if on_progress:
            on_progress("cell", len(outcomes), len(outcomes))

        # Stage 4: the aggregated leaderboard of this grid. One file per cell keeps concurrent
        # writers apart; merging this run's partition afterwards keeps reads fast.
        try:
            leaderboard.compact(run_date=context.run_date, grid=spec.name)
        except Exception:  # noqa: BLE001 - compaction is an optimisation; the files stay valid
            log.warning("could not compact the leaderboard partition", exc_info=True)
        rows = leaderboard.read(grid=spec.name)
        rows = rows[rows["grid_id"] == grid_id] if len(rows) else rows
        aggregate_uri = report_path = None
        if len(rows):
            aggregate_uri = leaderboard.write_aggregate(aggregate(rows))
            tracker.log_frame(parent, aggregate(rows), "leaderboard.parquet")
            try:
                report_path = str(write_grid_report(rows, settings, spec.name, tracker, parent))
            except Exception:  # noqa: BLE001 - the results are safe; a report can be redrawn (tlbench report)
                log.warning("could not write the grid report", exc_info=True)
        all_outcomes = skipped + baseline_outcomes + list(outcomes)
        failed = [o for o in all_outcomes if o.status == "failed"]
        tracker.log_metrics(parent, {"cells_total": len(jobs), "cells_failed": len(failed),
                                     "cells_skipped": len(skipped),
                                     "wall_seconds": time.perf_counter() - t0})
        tracker.end_run(parent, "FAILED" if failed else "FINISHED",
                        error=f"{len(failed)} cell(s) failed" if failed else None)
        return GridResult(spec.name, grid_id, run_id, parent, all_outcomes, rows, aggregate_uri,
                          time.perf_counter() - t0, report_path)
    except BaseException as exc:
        try:
            tracker.end_run(parent, "FAILED", error=f"{type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001 - keep the original error; the next run closes the run
            log.warning("could not mark the grid's MLflow run %s FAILED", parent, exc_info=True)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def report_dir(settings: Settings, grid: str) -> Path:
    """Where a grid's report goes: ``<results>/reports/<grid>/`` (beside the MLflow store when the
    results live on an object store; the copy logged to the parent MLflow run is the shared one)."""
    import re

    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", grid).strip("._") or "grid"
    if "://" in settings.results and not settings.results.startswith("file://"):
        return settings.mlflow_dir / "reports" / name
    return Path(settings.results.removeprefix("file://")) / "reports" / name


def write_grid_report(rows: pd.DataFrame, settings: Settings, grid: str, tracker=None,
                      parent_run_id: str | None = None, out_dir: Path | None = None) -> Path:
    """The HTML report of ``rows`` (one grid), in ``out_dir`` or :func:`report_dir`.

    With a tracker, the forecast of the best cell per size (:func:`benchmark.report.best_cells`)
    is fetched from its MLflow run's ``predictions.parquet``; with a parent run too, the report and
    its PNGs are logged under that run's ``report/`` artifacts. Returns the HTML path.
    """
    from benchmark.report import best_cells, write_report

    forecasts = {}
    best = best_cells(rows) if tracker is not None else rows.iloc[0:0]
    several_targets = best["target"].nunique() > 1
    for cell in best.itertuples(index=False):
        if not isinstance(cell.mlflow_run_id, str):
            continue
        try:
            frame = tracker.load_frame(cell.mlflow_run_id, "predictions.parquet")
        except Exception as exc:  # noqa: BLE001 - a missing artifact costs one plot, not the report
            log.warning("report: no predictions for %s n=%s (run %s): %s", cell.target, cell.target_size,
                        cell.mlflow_run_id, exc)
            continue
        key = (cell.target, int(cell.target_size)) if several_targets else int(cell.target_size)
        forecasts[key] = (frame["ds"].to_numpy(), frame["y"].to_numpy(), frame["y_pred"].to_numpy())
    path = write_report(rows, out_dir or report_dir(settings, grid), f"tlbench report: grid {grid}", forecasts)
    if tracker is not None and parent_run_id:
        for file in sorted(path.parent.iterdir()):
            if file.is_file() and not file.name.startswith("."):
                tracker.log_file(parent_run_id, file, "report")
    return path


def source_fingerprint(spec: GridSpec, settings: Settings) -> str:
    """Load the pretraining source (when a mode needs it) before anything trains; its fingerprint."""
    from benchmark.data.sources import data_fingerprint
    from benchmark.models import TRANSFER_MODES

    if not any(TRANSFER_MODES.get(m).load_body for m in spec.modes):
        return ""
    try:
        frame = load_data(spec.pretrain.source, settings)
    except DataError as exc:
        raise DataError(f"grid.pretrain.source: {exc}") from None
    return data_fingerprint(frame)
