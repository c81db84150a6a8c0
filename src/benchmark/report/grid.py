"""A grid's report: the best cells' forecasts fetched from their runs, the page written, its files logged.

:func:`write_grid_report` gathers what :func:`benchmark.report.html.write_report` needs beyond the
rows (the best cell's forecast per size from its MLflow run, the per-origin errors and the
source's statistical baselines from the leaderboard, links to the runs) and writes the report in
:func:`benchmark.report.paths.report_dir`. It takes a tracker from its caller: this layer never
imports MLflow.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from benchmark.report.html import RUN_URL, best_cells, write_report
from benchmark.report.paths import report_dir
from benchmark.report.verdicts import source_baselines
from benchmark.results.leaderboard import Leaderboard
from benchmark.spec.settings import Settings

log = logging.getLogger(__name__)


def write_grid_report(rows: pd.DataFrame, settings: Settings, grid: str, tracker=None,
                      parent_run_id: str | None = None, out_dir: Path | None = None,
                      agg: pd.DataFrame | None = None) -> Path:
    """The HTML report of ``rows`` (one grid), in ``out_dir`` or :func:`benchmark.report.paths.report_dir`.

    With a tracker (:class:`benchmark.tracking.tracker.Tracker`), the forecast of the best cell per size
    (:func:`benchmark.report.html.best_cells`) is fetched from its MLflow run's ``predictions.parquet``; with a parent
    run too, the report and its PNGs are logged under that run's ``report/`` artifacts. Returns
    the HTML path.
    """
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
    board = Leaderboard(settings.results)
    errors = board.read_errors(rows["cell_key"].tolist())
    extra = source_baselines(board, rows)  # the source section's statistical baselines
    rows = pd.concat([rows, extra], ignore_index=True) if len(extra) else rows
    if tracker is not None and "mlflow_run_id" in rows.columns:  # links from the report to the runs
        rows = rows.assign(**{RUN_URL: [tracker.run_url(run) if isinstance(run, str) else None
                                        for run in rows["mlflow_run_id"]]})
    path = write_report(rows, out_dir or report_dir(settings, grid), f"tlbench report: grid {grid}",
                        forecasts, agg=agg, errors=errors)
    if tracker is not None and parent_run_id:
        for file in sorted(path.parent.iterdir()):
            if file.is_file() and not file.name.startswith("."):
                tracker.log_file(parent_run_id, file, "report")
    return path
