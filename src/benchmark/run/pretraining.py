"""The pretraining stage: one body per (architecture, source, pretraining spec), pretrained once,
registered in the MLflow Model Registry and cached locally (checksummed), or reused: a pinned
registry version, the local cache, or a version registered under the same key elsewhere."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from benchmark import __version__
from benchmark.data.loading import load_data
from benchmark.data.sources import source_label
from benchmark.data.splits import source_arrays
from benchmark.run.jobs import PretrainedRef, PretrainJob, now
from benchmark.run.progress import epoch_writer
from benchmark.run.source import score_on_source
from benchmark.spec.errors import TlbenchError
from benchmark.spec.files import atomic_write
from benchmark.spec.identity import to_plain
from benchmark.spec.sections import DataSpec, ModelSpec
from benchmark.spec.settings import Settings
from benchmark.tracking.tags import TAG_RUN_ID, flatten
from benchmark.tracking.tracker import Tracker

log = logging.getLogger(__name__)


def registry_name(model: ModelSpec, source: DataSpec) -> str:
    """Registered-model name of a pretrained body, e.g. ``pretrained-lstm-m4-hourly``."""
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
    from benchmark.models.pretrain import save_pretrained  # Keras: loaded only when a body is fetched

    _, run_id = tracker.resolve_model_version(name, version)
    model = tracker.load_registered_keras(name, version)
    sha = save_pretrained(model, folder / "model.keras")
    ref = PretrainedRef(job.key, str(folder / "model.keras"), sha, run_id, 0.0, True, name, version)
    _write_meta(folder, ref)
    return ref


def _cached_pretrained(job: PretrainJob, folder: Path) -> PretrainedRef | None:
    """The local cache's model when its checksum verifies (a corrupted file is never loaded)."""
    from benchmark.models.pretrain import load_pretrained  # Keras: loaded only when a body is cached

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
    # Keras: loaded only when a body trains
    from benchmark.models.pretrain import pretrain_model, save_pretrained
    from benchmark.models.runtime import seed_everything  # Keras, as above

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
        score_on_source(job, settings, tracker, model, run_id)
        tracker.end_run(run_id, "FINISHED")
        return ref
    except BaseException as exc:
        tracker.end_run(run_id, "FAILED", error=f"{type(exc).__name__}: {exc}")
        raise

