"""Nothing to do costs nothing: the result of a grid whose every cell and baseline already has a
leaderboard row, read from the ledger alone, before any orchestrator starts or TensorFlow is
imported.

``tlbench run`` asks :func:`finished_result` right after planning (which is TensorFlow-free:
:mod:`benchmark.spec.catalog`). When it returns a result, the CLI prints it as it prints a finished
run (counts, leaderboard, verdicts, report path) and starts neither Prefect's server nor a worker
process, and imports neither TensorFlow nor MLflow. It returns ``None``, and the grid runs as
usual, whenever the full path has work to do: a cell or baseline without a row, an unreadable
ledger file (the full path repairs it), or a last run that did not get through to its report.

Why the report: ``run_grid`` writes it after every cell's row and MLflow run is closed, and
closes the grid's MLflow run right after. A report of this grid spec (its id recorded beside it,
:func:`benchmark.report.paths.mark_report`) newer than the grid's newest row therefore says that
the run which wrote that row ended cleanly, and that the report covers this grid's rows (not only
one ``--subgrid`` part's); if a run crashed after a row but before its
report (MLflow runs possibly left RUNNING), the full path runs and closes them. Asking MLflow
itself would cost 5-10 s here (its import and store), more than everything else together.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from benchmark.report.paths import REPORT_FILE, report_dir, reported_grid
from benchmark.results.leaderboard import Leaderboard
from benchmark.results.ranking import aggregate
from benchmark.run.jobs import CellOutcome, GridResult, RunContext, now
from benchmark.spec.settings import Settings

log = logging.getLogger(__name__)


def pending_keys(plan, settings: Settings) -> list[str] | None:
    """Keys of the plan's cells and baselines that have no leaderboard row (``None`` when the
    ledger has unreadable files: only the full path may repair them)."""
    board = Leaderboard(settings.results)
    finished = board.finished_keys()
    if board.skipped:
        return None
    return [key for key in plan.row_keys(_context(plan, settings)) if key not in finished]


def finished_result(plan, settings: Settings) -> GridResult | None:
    """The grid's result from the ledger when nothing is left to run, else ``None``."""
    t0 = time.perf_counter()
    pending = pending_keys(plan, settings)
    if pending is None or pending:
        return None
    spec = plan.spec
    context = _context(plan, settings)
    rows = plan.rows_of(Leaderboard(settings.results).read(grid=spec.name), context)
    report = Path(report_dir(settings, spec.name)) / REPORT_FILE
    if (not len(rows) or (reported_grid(settings, spec.name) or {}).get("grid_id") != plan.grid_id
            or report.stat().st_mtime < rows["finished_at"].max().timestamp()):
        log.info("grid %s: every cell has a row but no report of this grid was written after them; "
                 "running the grid to reconcile", spec.name)
        return None
    from benchmark.results.verdicts import headline  # scipy: loaded only when there is a result to show

    agg = aggregate(rows)
    outcomes = [CellOutcome(job.cell_key, "skipped", job.names.label) for job in plan.cell_jobs(context)]
    log.info("grid %s: every one of %d cells already has a leaderboard row; nothing to run", spec.name,
             len(outcomes))
    return GridResult(spec.name, plan.grid_id, "nothing-to-run", None, outcomes, rows, None,
                      time.perf_counter() - t0, str(report), agg, headline(agg))


def _context(plan, settings: Settings) -> RunContext:
    experiment = settings.experiment or f"tlbench-{plan.spec.name}"
    return RunContext(plan.spec.name, plan.grid_id, "ledger-check", f"{now():%Y-%m-%d}", experiment,
                      None, None)
