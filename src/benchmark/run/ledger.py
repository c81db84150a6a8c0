"""What an orchestrator asks of the ledger and of MLflow, so that ``flows/`` never touches either
itself: the outcomes the leaderboard records for a set of jobs (:func:`ledger_outcomes`), closing
runs that crashed workers left open (:func:`close_lost_runs`), provenance tags (:func:`tag_run`)
and the nightly regression check of a grid run (:func:`regression_check`)."""

from __future__ import annotations

import logging
from typing import Sequence

from benchmark.forecasters.metrics import METRIC_NAMES
from benchmark.results.leaderboard import Leaderboard
from benchmark.results.nightly import RegressionReport
from benchmark.results.nightly import regression_check as _regression_check
from benchmark.run.jobs import CellJob, CellOutcome
from benchmark.spec.settings import Settings
from benchmark.tracking.tracker import Tracker

log = logging.getLogger(__name__)

#: The metric names of a result row: what a regression check may compare (the flows' parameter forms).
METRICS = METRIC_NAMES


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
                     threshold_pct: float = 5.0) -> RegressionReport:
    """Grid run ``run_id`` of ``grid`` against the previous run of the same grid in the leaderboard
    at ``settings.results`` (:func:`benchmark.results.nightly.regression_check`, which takes the
    leaderboard itself). Here because an orchestrator holds settings, not a leaderboard: the nightly
    flow may import only the run and spec layers."""
    return _regression_check(Leaderboard(settings.results), grid, run_id, metric, threshold_pct)
