"""``train_cell``: the flow a pool worker runs for one batch of cells (deployment
``train-cell/train-cell``, see ``prefect.yaml``).

In pool mode (``benchmark_grid(execution="pool")``, :class:`flows.pool.PoolEngine`) the parent
sends every batch of cell jobs here as plain JSON data. Each cell keeps its own MLflow run and
leaderboard row through :func:`benchmark.run.cells.run_cell`; the parent reads the outcome of every
cell from the leaderboard (the ledger), never from this flow's return value, so a worker that dies
mid-batch loses nothing that was already recorded.

Settings come from the worker's environment (``TLBENCH_DATA_DIR``, ``TLBENCH_RESULTS``,
``MLFLOW_TRACKING_URI``, ``TLBENCH_ARTIFACTS``); the parent also passes its results location and
tracking URI as parameters, so every child writes to the ledger and tracking store the parent reads.
"""

from __future__ import annotations

import os
import platform
import socket
from typing import Any, Sequence

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from benchmark.run.cells import run_cell
from benchmark.run.engines import configure_worker_device
from benchmark.run.jobs import CellJob
from benchmark.run.ledger import tag_run
from benchmark.spec.convert import from_dict
from benchmark.spec.identity import to_plain
from benchmark.spec.settings import Settings, apply_mlflow_http_policy
from flows.labels import HOST_LABEL, PID_LABEL, WORKER_LABEL
from tasks.stages import stage_task

#: The deployment pool mode submits batches to: "<flow name>/<deployment name>".
CELL_DEPLOYMENT = "train-cell/train-cell"


#: MLflow tags added to every cell run trained by a pool worker.
TAG_WORKER = "prefect_worker"
TAG_FLOW_RUN = "prefect_flow_run_id"


def jobs_to_plain(jobs: Sequence[CellJob]) -> list[dict[str, Any]]:
    """Cell jobs -> JSON-able data (a flow-run parameter)."""
    return [to_plain(job) for job in jobs]


def jobs_from_plain(data: Sequence[dict[str, Any]]) -> list[CellJob]:
    """The inverse of :func:`jobs_to_plain`; a malformed job raises ``SpecError`` with its path."""
    return [from_dict(CellJob, item, f"jobs[{i}]") for i, item in enumerate(data)]


def worker_name() -> str:
    """The Prefect worker running this flow run (set by the worker), else this host's name."""
    return os.environ.get("PREFECT__WORKER_NAME") or f"no-worker@{platform.node()}"


def label_flow_run(worker: str) -> str | None:
    """Put the worker's name, this host and this process's pid on this flow run (``WORKER_LABEL``,
    ``HOST_LABEL``, ``PID_LABEL``); returns the flow run id."""

    run_id = flow_run.get_id()
    if run_id is None:
        return None
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run_labels(run_id, {WORKER_LABEL: worker, HOST_LABEL: socket.gethostname(),
                                                   PID_LABEL: str(os.getpid())})
    except Exception:  # noqa: BLE001 - a missing label only slows crash detection
        get_run_logger().warning("could not label flow run %s with its worker", run_id, exc_info=True)
    return str(run_id)


@flow(name="train-cell", log_prints=True)
def train_cell(jobs: list[dict[str, Any]], results: str | None = None,
               tracking_uri: str | None = None) -> list[dict[str, Any]]:
    """Train a batch of cells one after the other on this worker's device.

    Args:
        jobs: Cell jobs as plain JSON data (``flows.cell.jobs_to_plain``); pool mode fills this in.
        results: Results location (the leaderboard ledger); default: the worker's ``TLBENCH_RESULTS``.
        tracking_uri: MLflow tracking URI; default: the worker's ``MLFLOW_TRACKING_URI``.

    The flow run ends FAILED when any cell failed (its failure row and FAILED MLflow run are
    written first); it returns the outcomes as plain data for the UI.
    """
    logger = get_run_logger()
    worker = worker_name()
    flow_run_id = label_flow_run(worker)
    cell_jobs = jobs_from_plain(jobs)
    device = configure_worker_device()
    settings = Settings.from_environment(results=results, tracking_uri=tracking_uri)
    apply_mlflow_http_policy(settings)
    logger.info("worker %s (%s): %d cell(s), results %s", worker, device, len(cell_jobs),
                settings.results)
    outcomes = []
    for job in cell_jobs:
        outcome = stage_task("cell", run_cell)(job, settings)
        tag_run(settings, job.context.experiment, outcome.mlflow_run_id,
                {TAG_WORKER: worker, TAG_FLOW_RUN: flow_run_id or ""})
        outcomes.append(outcome)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(outcomes)} cell(s) failed: "
                           + "; ".join(f"{o.label}: {o.error}" for o in failed))
    return [to_plain(o) for o in outcomes]
