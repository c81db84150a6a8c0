"""Run a whole grid: :func:`run_grid`, the one entry point the CLI, the Prefect flows and the tests
call, as plan -> reconcile -> stages -> finish.

*What* runs is decided here; *where* it runs is an :class:`benchmark.run.engines.Engine` handed in
by the caller (:class:`benchmark.run.engines.LocalEngine`, :class:`benchmark.run.engines.ProcessEngine`,
a Prefect engine in ``flows/``). The stages are :mod:`benchmark.run.pretraining`,
:mod:`benchmark.run.baselines` and :mod:`benchmark.run.cells`; the jobs and outcomes they pass are in
:mod:`benchmark.run.jobs`, the plan in :mod:`benchmark.run.plan`.

Identity and resume: a cell's key is the hash of its full spec, the target's data fingerprint and
the package version. A cell whose key already has a row in the Parquet leaderboard is skipped; a
failed or crashed cell has none and runs again. The leaderboard is the ledger because it is the
product's answer and lives at the results location every worker can reach (Prefect's result cache
is per machine); MLflow is reconciled against it (runs left RUNNING are closed).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Callable

from benchmark import __version__
from benchmark.report.paths import mark_report
from benchmark.results.leaderboard import Leaderboard
from benchmark.results.ranking import aggregate
from benchmark.run import baselines
from benchmark.run.dispatch import longest_first
from benchmark.run.engines import Engine, LocalEngine, engine_slots
from benchmark.run.jobs import CellJob, CellOutcome, GridResult, RunContext, now
from benchmark.run.lease import GridLease, acquire, pid_alive
from benchmark.run.plan import GridPlan, needs_pretrained, plan_grid
from benchmark.run.repair import repair
from benchmark.spec.files import atomic_write
from benchmark.spec.identity import to_plain
from benchmark.spec.settings import Settings
from benchmark.spec.tree import GridSpec
from benchmark.tracking.outage import TrackingUnavailable
from benchmark.tracking.tags import (
    TAG_CLOSED_REASON,
    TAG_GRID_ID,
    TAG_HEARTBEAT,
    TAG_HOST,
    TAG_PID,
    TAG_RUN_ID,
    flatten,
)
from benchmark.tracking.views import LOCAL_UI

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
OnLease = Callable[[GridLease], None]


def default_experiment(spec: GridSpec, settings: Settings) -> str:
    return settings.experiment or f"tlbench-{spec.name}"


def local_report_url(result: GridResult, spec: GridSpec, settings: Settings) -> str | None:
    """A local store's grid report as ``tlbench ui`` serves it on that machine (None on a tracking
    server, whose ``result.report_url`` anyone can open, or without a report)."""
    from benchmark.tracking.tracker import Tracker  # MLflow: not for planning or `tlbench validate`

    if result.report_url or not result.report_path:
        return None
    return Tracker(settings, default_experiment(spec, settings)).run_url(result.parent_run_id, "report/report.html",
                                                                         local_ui=LOCAL_UI)


def run_grid(spec: GridSpec, settings: Settings, engine: Engine | None = None,
             label: str = "grid spec", on_progress: Progress | None = None,
             on_lease: OnLease | None = None) -> GridResult:
    """Run a whole grid: validate, plan, pretrain what is missing, run the baselines and every
    unfinished cell, then aggregate the leaderboard. The one entry point for CLI, flows and tests.

    Everything that can be checked is checked before anything trains (spec problems all at once,
    then every target and size). ``on_progress(stage, done, total)`` reports progress.

    One run of a grid at a time per results location: a second run of the same grid (the same
    spec hash) raises :class:`benchmark.run.lease.GridAlreadyRunning` before it opens MLflow
    (:mod:`benchmark.run.lease`); other grids run beside it. ``on_lease(lease)`` is called once
    the lease is held, before anything else starts: a Prefect flow records its run in it and
    closes the runs of a dead holder it took the lease from (``flows/lost.py``).
    """
    t0 = time.perf_counter()
    plan = plan_grid(spec, settings, label)
    with acquire(settings, plan.spec.name, plan.grid_id) as lease:  # one run of this grid at a time here
        if on_lease is not None:
            on_lease(lease)
        return _run_plan(plan, settings, engine or LocalEngine(), on_progress, t0)


def _run_plan(plan: GridPlan, settings: Settings, engine: Engine, on_progress: Progress | None,
              t0: float) -> GridResult:
    """:func:`run_grid` once the plan is made and the grid's lease held."""
    from benchmark.results.verdicts import headline  # scipy: loaded only when a grid runs
    from benchmark.tracking.tracker import Heartbeat, Tracker  # MLflow, as above

    spec = plan.spec
    tracker = Tracker(settings, default_experiment(spec, settings))
    tracker.forget_outage()  # a server this process gave up on earlier is tried again
    tracker.ensure_store()  # once, before any fan-out
    context = _start(plan, settings, tracker)
    heartbeat = Heartbeat(tracker, context.parent_run_id, settings.heartbeat_seconds)
    try:
        jobs = plan.cell_jobs(context)
        leaderboard = Leaderboard(settings.results)
        pending, skipped = _reconcile(jobs, leaderboard, tracker, settings)
        log.info("grid %s: %d cells, %d already finished, %d to run", spec.name, len(jobs),
                 len(skipped), len(pending))
        baseline_outcomes, outcomes = _run_stages(plan, jobs, pending, engine, settings, context,
                                                  on_progress)
        rows, agg, aggregate_uri, report_path = _aggregate(plan, context, leaderboard, tracker, settings)
        all_outcomes = skipped + baseline_outcomes + outcomes
        failed = [o for o in all_outcomes if o.status == "failed"]
        tracker.log_metrics(context.parent_run_id, {
            "cells_total": len(jobs), "cells_failed": len(failed), "cells_skipped": len(skipped),
            "wall_seconds": time.perf_counter() - t0})
        verdict = headline(agg) if agg is not None else []
        report_url = tracker.describe_grid_run(  # the verdict and the report link, in the MLflow UI
            context.parent_run_id, f"`{spec.name}`, run `{context.run_id}`", [o.status for o in all_outcomes],
            verdict, "report/report.html" if report_path else None)
        tracker.end_run(context.parent_run_id, "FAILED" if failed else "FINISHED",
                        error=f"{len(failed)} cell(s) failed" if failed else None)
        return GridResult(spec.name, plan.grid_id, context.run_id, context.parent_run_id, all_outcomes,
                          rows, aggregate_uri, time.perf_counter() - t0, report_path, agg, verdict,
                          report_url)
    except TrackingUnavailable as exc:  # one line; the grid's run is closed by the next run
        _defer_close(settings, plan.grid_id, context.parent_run_id, f"the tracking server was gone: {exc}")
        raise
    except BaseException as exc:
        try:
            tracker.end_run(context.parent_run_id, "FAILED", error=f"{type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001 - keep the original error; the next run closes the run
            log.warning("could not mark the grid's MLflow run %s FAILED", context.parent_run_id,
                        exc_info=True)
        raise
    finally:
        heartbeat.stop()


def _start(plan: GridPlan, settings: Settings, tracker) -> RunContext:
    """Close a killed earlier run of this grid, open the grid's parent MLflow run; the context."""
    spec, started = plan.spec, now()
    run_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    commit, host = _git_commit(), socket.gethostname()
    _close_deferred(tracker, settings, plan.grid_id)
    tracker.close_orphaned_grid_runs(host, pid_alive, settings.stale_grid_seconds)
    parent = tracker.start_run(f"grid-{spec.name}-{run_id}", "grid",
                               {TAG_GRID_ID: plan.grid_id, TAG_RUN_ID: run_id, "grid": spec.name,
                                "package_version": __version__, "git_commit": commit or "",
                                TAG_HOST: host, TAG_PID: str(os.getpid()), TAG_HEARTBEAT: f"{time.time():.0f}"},
                               flatten("", to_plain(spec)))
    return RunContext(spec.name, plan.grid_id, run_id, f"{started:%Y-%m-%d}",
                      default_experiment(spec, settings), parent, commit)


def _defer_close(settings: Settings, grid_id: str, run_id: str, reason: str) -> None:
    """Leave a note that the grid's MLflow run ``run_id`` is to be closed FAILED when the tracking
    server is back (it was gone: no request can close it now); the next run of the grid does it."""
    note = settings.local_dir("leases", f"{grid_id}.unclosed-{run_id}.json")
    note.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(note, json.dumps({"run_id": run_id, "reason": reason[:2000]}))
    log.info("grid run %s stays RUNNING in MLflow until the tracking server is back: the next run of "
             "the grid closes it", run_id)


def _close_deferred(tracker, settings: Settings, grid_id: str) -> None:
    """Close the grid's MLflow runs that an earlier run left noted by :func:`_defer_close`."""
    for note in sorted(settings.local_dir("leases", "").glob(f"{grid_id}.unclosed-*.json")):
        item = json.loads(note.read_text(encoding="utf-8"))
        tracker.set_tags(item["run_id"], {TAG_CLOSED_REASON: item["reason"]})
        tracker.end_run(item["run_id"], "FAILED", error=item["reason"])
        note.unlink(missing_ok=True)
        log.info("closed grid run %s left RUNNING while the tracking server was gone", item["run_id"])


def _reconcile(jobs: list[CellJob], leaderboard, tracker,
               settings: Settings) -> tuple[list[CellJob], list[CellOutcome]]:
    """Split the jobs into pending and skipped (a row in the ledger), moving unreadable ledger
    files aside first (and restoring their rows from the compaction archive: ``repair``) and
    closing MLflow runs the ledger says ended; older FINISHED runs of a cell are superseded."""
    repair(leaderboard, full=False)  # logs what it moved, recovered and could not recover
    finished_runs = leaderboard.finished_runs()
    pending = [j for j in jobs if j.cell_key not in finished_runs]
    skipped = [CellOutcome(j.cell_key, "skipped", j.names.label) for j in jobs
               if j.cell_key in finished_runs]
    for job in jobs:
        if job.cell_key in finished_runs:  # MLflow agrees with the ledger: the row's run FINISHED
            tracker.close_stale_runs(job.cell_key, finished_runs[job.cell_key], settings.delete_superseded)
    return pending, skipped


def _run_stages(plan: GridPlan, jobs: list[CellJob], pending: list[CellJob], engine: Engine,
                settings: Settings, context: RunContext,
                on_progress: Progress | None) -> tuple[list[CellOutcome], list[CellOutcome]]:
    """Stage 1 pretraining, stage 2 baselines, stage 3 cells; ``(baseline outcomes, cell outcomes)``.

    Cells whose mode loads no pretrained model need nothing from stage 1. On an engine with room
    for more than one job they start at once, beside the pretraining, instead of leaving a worker
    idle behind the stage barrier (on the smoke grid the scratch cells fill the second core while
    the only pretraining runs).
    """
    # MLflow (and Keras inside them): loaded only when a grid runs, never for planning. Stage
    # functions are looked up by module attribute at call time, so a benchmark may wrap them
    # (benchmarks/orchestration.py).
    from benchmark.run import cells, pretraining

    pretrain_jobs = plan.pretrain_jobs(pending, context)
    # longest first, so that no slot idles behind one long cell
    independent = longest_first([j for j in pending if not needs_pretrained(j.cell)])
    overlap = bool(independent and pretrain_jobs) and engine_slots(engine) > 1
    side = ThreadPoolExecutor(1, thread_name_prefix="tlbench-early-cells") if overlap else None
    early = (side.submit(contextvars.copy_context().run, engine.map, "cell", cells.run_cell, independent,
                         settings) if side else None)
    try:
        refs = engine.map("pretrain", pretraining.run_pretraining, pretrain_jobs, settings)
        by_key = {ref.key: ref for ref in refs}
        if on_progress:
            on_progress("pretrain", len(refs), len(refs))
        pending = [replace(j, pretrained=by_key[plan.pretrain_key_of(j.cell)]) if needs_pretrained(j.cell)
                   else j for j in pending]
        baseline_outcomes = [o for group in engine.map("baselines", baselines.run_baselines,
                                                       plan.baseline_jobs(jobs, context), settings)
                             for o in group]
        rest = longest_first([j for j in pending if needs_pretrained(j.cell)] if overlap else pending)
        by_cell = {o.cell_key: o for o in engine.map("cell", cells.run_cell, rest, settings)}
    finally:
        if side is not None:
            side.shutdown(wait=True)  # never leave cells running behind a failed stage
    if early is not None:
        by_cell.update({o.cell_key: o for o in early.result()})
    outcomes = [by_cell[j.cell_key] for j in pending]
    if on_progress:
        on_progress("cell", len(outcomes), len(outcomes))
    return baseline_outcomes, outcomes


def _aggregate(plan: GridPlan, context: RunContext, leaderboard, tracker, settings: Settings):
    """Stage 4: compact this run's partition, aggregate the grid's rows once, write and log the
    aggregate and the report. ``(rows, aggregate, aggregate URI, report path)``."""
    from benchmark.report.grid import write_grid_report  # matplotlib: loaded only for a report

    name, parent = plan.spec.name, context.parent_run_id
    try:  # one file per cell keeps concurrent writers apart; merging keeps reads fast
        leaderboard.compact(run_date=context.run_date, grid=name)
    except Exception:  # noqa: BLE001 - compaction is an optimisation; the files stay valid
        log.warning("could not compact the leaderboard partition", exc_info=True)
    rows = plan.rows_of(leaderboard.read(grid=name), context)
    if not len(rows):
        return rows, None, None, None
    agg = aggregate(rows)
    aggregate_uri = leaderboard.write_aggregate(agg)
    tracker.log_frame(parent, agg, "leaderboard.parquet")
    report_path = None
    try:
        report_path = str(write_grid_report(rows, settings, name, tracker, parent, agg=agg))
        mark_report(settings, name, plan.grid_id, rows["cell_key"].tolist())
    except Exception:  # noqa: BLE001 - the results are safe; a report can be redrawn (tlbench report)
        log.warning("could not write the grid report", exc_info=True)
    return rows, agg, aggregate_uri, report_path


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except Exception:  # noqa: BLE001 - not a git checkout (an installed wheel): no commit
        return None
