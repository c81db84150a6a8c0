"""The leaderboard rows a stage writes: the columns that say which cell a row is
(:func:`identity_columns`), a result row (:func:`result_row`, :func:`model_row`) and the one way a
failed cell or baseline is written down (:func:`record_failure`)."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np

from benchmark import __version__
from benchmark.forecasters.metrics import METRIC_NAMES, Z_METRIC_NAMES
from benchmark.results.leaderboard import Leaderboard
from benchmark.run.jobs import BaselineJob, CellJob, CellNames, CellResult, RunContext, now
from benchmark.spec.tree import CellSpec
from benchmark.tracking.tags import host_and_device

log = logging.getLogger(__name__)


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



def record_failure(leaderboard: Leaderboard, job: CellJob | BaselineJob, key: str, error: str,
                   names: CellNames) -> None:
    """The failure row of a cell or baseline (``key`` of ``job``, at the coordinates ``names``),
    or a logged error: the failure is already in the outcome, MLflow and the log."""
    try:
        leaderboard.record_failure({**job.context.ledger_columns(job.cell, key), **names.columns(),
                                    "error": error[:5000], "failed_at": now()})
    except Exception:  # noqa: BLE001 - the failure is already in the outcome, MLflow and the log
        log.exception("could not record the failure of %s", key)
