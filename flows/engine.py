"""The Prefect engines ``benchmark.grid.run_grid`` runs its stages on.

:class:`PrefectEngine` (``execution="local"``) runs each stage's jobs as Prefect task runs inside
the current flow run, ``concurrency`` at a time (threads that carry the flow run's context, so
every job shows up as a task run in the UI); progress is published as a progress artifact.

:class:`PoolEngine` (``execution="pool"``) sends the ``cell`` stage to the work pool: batches of
``batch_size`` cells become child flow runs of the ``train-cell/train-cell`` deployment, all
submitted at once (the pool's concurrency limit decides how many run). The ``pretrain`` and
``baselines`` stages stay in this flow run (a :class:`PrefectEngine`). The parent then waits with
bounded polls and takes every cell's outcome from the leaderboard ledger, not from Prefect results:
a cell with a row is finished; a cell without one failed, with its failure row's error or, when
its child run crashed or never ran, with the child run's state. A child run whose worker stopped
heartbeating is marked CRASHED instead of being waited on forever.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact

from benchmark.config import spec_hash
from benchmark.errors import TlbenchError
from benchmark.jobs import CellJob, CellOutcome
from benchmark.settings import Settings
from benchmark.stages import close_lost_runs, ledger_outcomes, run_cell
from flows.cell import CELL_DEPLOYMENT, WORKER_LABEL, jobs_to_plain
from tasks.stages import RUNNER, stage_task

_module_log = logging.getLogger(__name__)


def _log() -> logging.Logger | logging.LoggerAdapter:
    """The flow run's logger inside a run (so messages reach the UI), else this module's."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return _module_log


class _Progress:
    """One progress artifact per flow run, updated as jobs end (never fails a grid).

    Done, failed and still-to-go jobs are counted apart (``cell: 11 done, 1 failed, 0 to go (of
    12)``); counts add up per stage, so two maps of one stage at once (``run_grid`` starts the
    cells that need no pretraining early) show as one count."""

    def __init__(self) -> None:
        self._id = None
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}  # stage -> [done, failed, total]

    def start(self, stage: str, total: int) -> None:
        with self._lock:
            self._counts.setdefault(stage, [0, 0, 0])[2] += total
        self._show(stage)

    def advance(self, stage: str, done: int = 1, failed: int = 0) -> None:
        with self._lock:
            counts = self._counts.setdefault(stage, [0, 0, 0])
            counts[0] += done
            counts[1] += failed
        self._show(stage)

    def record(self, stage: str, result: Any) -> None:
        """Count one job's result: failed when it is (or holds) an outcome with status failed."""
        outcomes = result if isinstance(result, list) else [result]
        failed = any(getattr(o, "status", None) == "failed" for o in outcomes)
        self.advance(stage, done=0 if failed else 1, failed=1 if failed else 0)

    def describe(self, stage: str) -> tuple[str, float]:
        with self._lock:
            done, failed, total = self._counts[stage]
        to_go = max(total - done - failed, 0)
        return (f"{stage}: {done} done, {failed} failed, {to_go} to go (of {total})",
                100.0 * (done + failed) / max(total, 1))

    def _show(self, stage: str) -> None:
        from prefect.context import FlowRunContext

        if FlowRunContext.get() is None:
            return  # outside a flow run there is nothing to attach it to
        try:
            description, percent = self.describe(stage)
            with self._lock:
                if self._id is None:
                    self._id = create_progress_artifact(percent, key="grid-progress",
                                                        description=description)
                else:
                    update_progress_artifact(self._id, percent, description=description)
        except Exception:  # noqa: BLE001 - progress display must never fail a grid
            _module_log.debug("progress artifact update failed", exc_info=True)


class PrefectEngine:
    """Every stage as task runs of the current flow run, ``concurrency`` at a time.

    With ``concurrency > 1`` on a machine without a GPU, the bodies of the ``pretrain`` and
    ``cell`` task runs execute in a :class:`benchmark.engines.ProcessEngine` of ``concurrency``
    single-threaded workers (threads of one process do not make TensorFlow cells faster on a CPU;
    processes do: docs/performance.md); the task runs themselves, their states and the UI stay in
    this flow run. ``processes`` forces the choice. Use it as a context manager (or call
    :meth:`close`) so the workers stop with the flow run.
    """

    in_process_stages = frozenset({"baselines"})

    def __init__(self, concurrency: int = 1, progress: _Progress | None = None,
                 processes: bool | None = None):
        self.concurrency = max(1, int(concurrency))
        self.progress = progress or _Progress()
        self._want_processes = processes
        self._processes = None  # benchmark.engines.ProcessEngine, started on first need

    @property
    def slots(self) -> int:
        return self.concurrency

    def _runner(self, stage: str):
        """Where a task body of ``stage`` runs (see ``tasks.stages.RUNNER``): None = in the thread."""
        if self.concurrency == 1 or stage in self.in_process_stages:
            return None
        if self._want_processes is None:
            from benchmark.engines import gpu_visible

            self._want_processes = not gpu_visible()
        if not self._want_processes:
            return None
        if self._processes is None:
            from benchmark.engines import ProcessEngine

            self._processes = ProcessEngine(self.concurrency).start()
        processes = self._processes
        return lambda fn, job, settings: processes.submit(fn, job, settings).result()

    def start(self) -> "PrefectEngine":
        """Start the worker processes now (when this engine uses them), so that they import
        TensorFlow while the grid is still being planned."""
        self._runner("cell")
        return self

    def close(self) -> None:
        if self._processes is not None:
            self._processes.close()
            self._processes = None

    def __enter__(self) -> "PrefectEngine":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def map(self, stage: str, fn: Callable[[Any, Settings], Any], items: Sequence[Any],
            settings: Settings) -> list[Any]:
        items = list(items)
        task = stage_task(stage, fn)
        if not items:
            return []
        self.progress.start(stage, len(items))
        results: list[Any] = [None] * len(items)
        token = RUNNER.set(self._runner(stage))
        try:
            if self.concurrency == 1:
                for i, item in enumerate(items):
                    results[i] = task(item, settings)
                    self.progress.record(stage, results[i])
                return results
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"prefect-{stage}") as pool:
                # Each thread runs the task in a copy of this flow run's context (RUNNER included).
                futures = {pool.submit(contextvars.copy_context().run, task, item, settings): i
                           for i, item in enumerate(items)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    self.progress.record(stage, results[futures[future]])
            return results
        finally:
            RUNNER.reset(token)


# --------------------------------------------------------------------------- pool mode


@dataclass
class _Child:
    """One submitted batch: its child flow run and its jobs."""

    flow_run_id: Any  # UUID
    name: str
    jobs: list[CellJob]
    state_name: str = "SCHEDULED"
    state_message: str | None = None
    final: bool = False
    pending_since: float | None = None
    worker: str | None = None  # the worker running it (its ``tlbench.worker`` label)


class CellTable:
    """One row per cell of a pool-mode grid, in the parent flow run's table artifact
    ``grid-cells``: the cell, its state (``FINISHED``/``FAILED`` once its leaderboard row says so,
    else its child run's state), the worker and host that ran it, its child run and MASE.
    Republished when a row changes, reading the ledger at most every ``ledger_s`` seconds (and
    whenever a child run's state changes); never fails a grid."""

    key = "grid-cells"

    def __init__(self, ledger_s: float = 15.0):
        self.ledger_s = ledger_s
        self._rows: list[dict] | None = None
        self._recorded: dict[str, CellOutcome] = {}
        self._read_at = -float("inf")
        self._states: list[str] = []

    def rows(self, children: Sequence[_Child]) -> list[dict]:
        rows = []
        for child in children:
            for job in child.jobs:
                outcome = self._recorded.get(job.cell_key)
                mase = (outcome.metrics or {}).get("mase") if outcome else None
                rows.append({"cell": job.names.run_name, "target": job.names.target,
                             "state": outcome.status.upper() if outcome else child.state_name,
                             "worker": child.worker or "", "host": (outcome and outcome.worker_host) or "",
                             "child run": child.name,
                             "mase": round(float(mase), 4) if mase is not None and mase == mase else None})
        return rows

    def publish(self, children: Sequence[_Child], settings: Settings) -> None:
        from prefect.context import FlowRunContext

        if FlowRunContext.get() is None:
            return
        try:
            states = [child.state_name for child in children]
            started = [job for child in children if child.state_name != "SCHEDULED" for job in child.jobs]
            if started and (states != self._states or time.monotonic() - self._read_at >= self.ledger_s):
                self._recorded, self._read_at = ledger_outcomes(started, settings), time.monotonic()
            self._states = states
            rows = self.rows(children)
            if rows != self._rows:
                done = sum(row["state"] in ("FINISHED", "FAILED") for row in rows)
                create_table_artifact(rows, key=self.key, description=f"cells: {done}/{len(rows)} recorded")
                self._rows = rows
        except Exception:  # noqa: BLE001 - a table is presentation; the ledger has the outcomes
            _log().warning("could not publish the cell table", exc_info=True)


#: The shortest silence that makes a worker lost, whatever its interval: a 30 s stall of the Prefect
#: server's SQLite writes silenced a live worker for 65 s (docs/orchestration.md); Prefect's OFFLINE
#: (3 late intervals) is no proof of death, and ending a live run fails cells still training.
LOST_AFTER_S = 120.0


class Heartbeats:
    """When each worker's heartbeat last moved, by this process's clock. Stale (lost): not moved for 3 of
    its intervals (30 s if it states none) and ``lost_after_s``; OFFLINE alone is never enough."""

    def __init__(self, lost_after_s: float = LOST_AFTER_S) -> None:
        self.lost_after_s = float(lost_after_s)
        self._seen: dict[str, tuple[Any, float]] = {}  # worker -> (last heartbeat, when it changed)

    def known(self, name: str) -> bool:
        return name in self._seen

    def check(self, worker, now: float) -> tuple[bool, float, str]:
        """``(stale, seconds since its heartbeat last changed, status)`` of a worker just read."""
        seen, since = self._seen.get(worker.name, (None, now))
        if worker.last_heartbeat_time != seen:
            seen, since = worker.last_heartbeat_time, now
        self._seen[worker.name] = (seen, since)
        limit = max(3 * (worker.heartbeat_interval_seconds or 30), self.lost_after_s)
        return now - since > limit, now - since, getattr(worker.status, "value", str(worker.status))


def lost_outcome(job: CellJob, where: str, message: str | None) -> CellOutcome:
    """A cell that left no leaderboard row: failed, saying where it was lost; the next trigger reruns it."""
    detail = f": {message}" if message else ""
    return CellOutcome(job.cell_key, "failed", job.names.label,
                       error=f"no leaderboard row after {where}{detail}; it runs again on the next trigger")


class RemoteCellEngine:
    """What the engines that send cells elsewhere share: ``pretrain`` and ``baselines`` run in
    this flow run (``self.local``, a :class:`PrefectEngine`), cells go to remote workers
    (:meth:`map_cells`, only ``benchmark.stages.run_cell``), and the local engine's lifecycle."""

    local: Any
    remote_name = "remote mode"

    @property
    def slots(self) -> int:
        """The workers decide how many cells run at once; this parent can always hand them more
        than one, so ``run_grid`` submits the cells that need no pretraining right away."""
        return max(2, self.local.slots)

    def start(self):
        self.local.start()
        return self

    def close(self) -> None:
        self.local.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def map(self, stage: str, fn: Callable[[Any, Settings], Any], items: Sequence[Any],
            settings: Settings) -> list[Any]:
        if stage != "cell":
            return self.local.map(stage, fn, items, settings)
        if getattr(fn, "__wrapped__", fn) is not run_cell:  # an instrumented run_cell is fine
            raise TlbenchError(f"{self.remote_name} runs benchmark.stages.run_cell on its workers; it "
                               f"cannot run {fn.__module__}.{fn.__qualname__}")
        jobs = list(items)
        return self.map_cells(jobs, settings) if jobs else []

    def map_cells(self, jobs: list, settings: Settings) -> list[Any]:
        raise NotImplementedError


class PoolEngine(RemoteCellEngine):
    """Cells as child flow runs of the ``train-cell`` deployment, ``batch_size`` cells each.

    ``timeout_s`` bounds the whole wait; ``poll_s`` is the state-poll interval; a child run stuck
    PENDING (claimed by a worker, never started) for ``pending_timeout_s`` is marked CRASHED; a
    RUNNING child whose worker (the ``tlbench.worker`` label it sets on itself) has sent no
    heartbeat for ``3 x`` its heartbeat interval and at least ``lost_after_s`` is marked CRASHED.
    """

    def __init__(self, batch_size: int = 4, timeout_s: float = 24 * 3600, poll_s: float = 5.0,
                 pending_timeout_s: float = 900.0, concurrency: int = 1,
                 deployment: str = CELL_DEPLOYMENT, lost_after_s: float = LOST_AFTER_S):
        if int(batch_size) < 1:
            raise TlbenchError(f"batch_size must be at least 1, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.timeout_s = float(timeout_s)
        self.poll_s = float(poll_s)
        self.pending_timeout_s = float(pending_timeout_s)
        self.deployment = deployment
        self.progress = _Progress()
        self.local = PrefectEngine(concurrency, self.progress)
        self._heartbeats = Heartbeats(lost_after_s)
        self._batches_submitted = 0
        self._lock = threading.Lock()
        self.table = CellTable()
        self.remote_name = f"pool mode (the {deployment!r} deployment)"

    def map_cells(self, jobs: list, settings: Settings) -> list[Any]:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            pool = self._check_deployment(client)
            close_orphan_task_runs(client)  # left by children of an earlier trigger that crashed
            batches = [jobs[i:i + self.batch_size] for i in range(0, len(jobs), self.batch_size)]
            self.progress.start("cell", len(jobs))
            children = self._submit(batches, settings)
            _log().info("pool mode: %d cell(s) in %d child run(s) of %s (pool %r)", len(jobs),
                        len(children), self.deployment, pool)
            self._wait(client, children, pool, len(jobs), settings)
            for child in children:
                if child.state_name != "COMPLETED":
                    close_orphan_task_runs(client, child.flow_run_id, f"its flow run {child.name} ended "
                                           f"{child.state_name}: {child.state_message or 'no message'}")
        return self._outcomes(children, settings)

    # ------------------------------------------------------------------ steps

    def _check_deployment(self, client) -> str:
        """The deployment's work pool; a clear error when there is no server or no deployment."""
        from prefect.exceptions import ObjectNotFound
        from prefect.settings import get_current_settings

        api_url = get_current_settings().api.url
        if not api_url:
            raise TlbenchError("execution='pool' needs a Prefect server that workers poll: set "
                               "PREFECT_API_URL (see deployments/README.md), or use execution='local'")
        try:
            deployment = client.read_deployment_by_name(self.deployment)
        except ObjectNotFound:
            raise TlbenchError(f"execution='pool' needs the deployment {self.deployment!r} on "
                               f"{api_url}: run `prefect --no-prompt deploy --all` in the checkout "
                               "(deployments/README.md)") from None
        return deployment.work_pool_name

    def _submit(self, batches: list[list[CellJob]], settings: Settings) -> list[_Child]:
        """Every batch at once, as a child flow run (returns as soon as each run is scheduled)."""
        from prefect.deployments import run_deployment

        run_id = batches[0][0].context.run_id
        with self._lock:  # run_grid may submit two sets of batches at once
            first = self._batches_submitted
            self._batches_submitted += len(batches)
        children = []
        for i, batch in enumerate(batches, start=first + 1):
            name = f"cells-{run_id}-{i:03d}"
            keys = [job.cell_key for job in batch]
            flow_run = run_deployment(
                self.deployment, timeout=0, flow_run_name=name,
                # a location holding a credential is not sent (Prefect stores and shows
                # parameters): the worker takes it from its own environment
                parameters={"jobs": jobs_to_plain(batch), "results": settings.shareable(settings.results),
                            "tracking_uri": settings.shareable(settings.tracking_uri)},
                tags=["tlbench", f"grid:{batch[0].cell.grid}", f"grid-run:{run_id}"],
                # a resubmission of the same batch in this grid run returns the same child run
                idempotency_key=f"tlbench:{run_id}:{spec_hash(keys)}")
            children.append(_Child(flow_run.id, name, batch))
        return children

    def _wait(self, client, children: list[_Child], pool: str, total_cells: int,
              settings: Settings | None = None) -> None:
        """Poll the children's states until all are final or the deadline passes. Children left
        RUNNING or PENDING at the deadline are marked CRASHED, SCHEDULED ones CANCELLED (so they
        never start later and race a rerun). API errors are retried until the deadline: a server
        hiccup must not fail a parent whose children are still training."""
        deadline = time.monotonic() + self.timeout_s
        last_note, reported = time.monotonic(), 0
        while True:
            try:
                self._poll(client, children, pool)
            except Exception as exc:  # noqa: BLE001 - transient; the deadline bounds the retries
                _log().warning("polling the child runs failed (%s: %s); retrying in %.0f s",
                               type(exc).__name__, exc, self.poll_s)
            if settings is not None:
                self.table.publish(children, settings)
            # a child that did not complete is counted from the ledger at the end (done or failed)
            done = sum(len(c.jobs) for c in children if c.final and c.state_name == "COMPLETED")
            if done > reported:
                self.progress.advance("cell", done - reported)
                reported = done
            if all(c.final for c in children):
                return
            if time.monotonic() >= deadline:
                for child in children:
                    if not child.final:
                        scheduled = child.state_name == "SCHEDULED"
                        self._end(client, child, "CANCELLED" if scheduled else "CRASHED",
                                  f"tlbench pool mode gave up waiting after {self.timeout_s:.0f} s "
                                  f"(state was {child.state_name})")
                return
            if time.monotonic() - last_note > 300:
                last_note = time.monotonic()
                waiting = [c for c in children if c.state_name == "SCHEDULED"]
                if waiting:
                    _log().info("%d child run(s) still SCHEDULED: is a worker polling pool %r?",
                                len(waiting), pool)
            time.sleep(self.poll_s)

    def _poll(self, client, children: list[_Child], pool: str) -> None:
        """One look at every open child (one API call per 200), ending the ones that cannot end."""
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        by_id = {child.flow_run_id: child for child in children if not child.final}
        ids = list(by_id)
        runs = []
        for start in range(0, len(ids), 200):
            runs += client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids[start:start + 200])),
                limit=200)
        running = []
        for run in runs:
            child, state = by_id[run.id], run.state
            if state is None:
                continue
            child.state_name, child.state_message = state.type.value, state.message
            child.worker = (run.labels or {}).get(WORKER_LABEL) or child.worker
            if state.is_final():
                child.final = True
            elif state.is_running():
                running.append((child, run))
            elif state.is_pending():
                child.pending_since = child.pending_since or time.monotonic()
                if time.monotonic() - child.pending_since > self.pending_timeout_s:
                    self._end(client, child, "CRASHED",
                              f"PENDING for more than {self.pending_timeout_s:.0f} s: its worker "
                              "claimed it and never started it")
        if running:
            self._check_workers(client, pool, running)

    def _check_workers(self, client, pool: str, running: list) -> None:
        """Mark RUNNING children whose worker is gone as CRASHED (their worker cannot do it)."""
        workers = {w.name: w for w in client.read_workers_for_work_pool(pool, limit=200)}
        now = time.monotonic()
        for child, run in running:
            name = (run.labels or {}).get(WORKER_LABEL)
            if not name:
                continue  # not labelled yet (just started): the deadlines still apply
            worker = workers.get(name)
            if worker is None:
                self._end(client, child, "CRASHED", f"its worker {name!r} is no longer in pool {pool!r}")
                continue
            stale, silent, status = self._heartbeats.check(worker, now)
            if stale:
                self._end(client, child, "CRASHED",
                          f"its worker {name!r} stopped heartbeating (status {status}, no heartbeat "
                          f"for {silent:.0f} s): the worker or its machine died")

    def _end(self, client, child: _Child, state: str, message: str) -> None:
        from prefect.states import Cancelled, Crashed

        new_state = Cancelled(message=message) if state == "CANCELLED" else Crashed(message=message)
        try:  # a child that ended since the poll that condemned it keeps its own final state
            current = client.read_flow_run(child.flow_run_id).state
            if current is not None and current.is_final():
                child.final, child.state_name, child.state_message = True, current.type.value, current.message
                return
            client.set_flow_run_state(child.flow_run_id, new_state, force=True)
        except Exception:  # noqa: BLE001 - the outcome below says the same either way
            _log().warning("could not mark child run %s %s", child.name, state, exc_info=True)
        _log().warning("child run %s marked %s: %s", child.name, state, message)
        child.final, child.state_name, child.state_message = True, state, message

    def _outcomes(self, children: list[_Child], settings: Settings) -> list[CellOutcome]:
        """Every cell's outcome, from the leaderboard ledger (rows and failure rows); a cell with
        neither failed with its child run's state, and its MLflow runs are closed."""
        recorded = ledger_outcomes([job for child in children for job in child.jobs], settings)
        outcomes = []
        for child in children:
            if child.state_name != "COMPLETED":
                mine = [recorded.get(job.cell_key) for job in child.jobs]
                done = sum(1 for o in mine if o is not None and o.status == "finished")
                self.progress.advance("cell", done=done, failed=len(mine) - done)
            where = f"child run {child.name} ended {child.state_name}"
            lost = []
            for job in child.jobs:
                outcome = recorded.get(job.cell_key)
                if outcome is not None and outcome.status == "failed":
                    outcome = replace(outcome, error=f"{outcome.error} ({where})")
                elif outcome is None:
                    lost.append(job)
                    outcome = lost_outcome(job, where, child.state_message)
                outcomes.append(outcome)
            self._close_stale_runs(lost, settings)
        return outcomes  # in the order of the jobs: batches are consecutive slices

    @staticmethod
    def _close_stale_runs(jobs: list[CellJob], settings: Settings) -> None:
        """MLflow runs a crashed child left RUNNING are closed as KILLED now (the rerun would)."""
        close_lost_runs(jobs, settings)


def close_orphan_task_runs(client, flow_run_id: Any = None, reason: str | None = None) -> int:
    """Task runs left RUNNING, PENDING or SCHEDULED inside a flow run that ended (its worker was
    killed: nobody is left to end them) are set CRASHED with the reason, so the UI shows no task
    running forever. ``flow_run_id``: that flow run only; ``None``: every train-cell flow run in a
    final state other than COMPLETED (what the next trigger sweeps). Returns how many were ended;
    never raises."""
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterId, FlowRunFilterName,
                                                FlowRunFilterState, FlowRunFilterStateType,
                                                TaskRunFilter, TaskRunFilterState,
                                                TaskRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    if flow_run_id is not None:
        flows = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    else:
        flows = FlowRunFilter(name=FlowRunFilterName(like_="cells-"), state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.CRASHED, StateType.FAILED, StateType.CANCELLED])))
    open_states = TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(
        any_=[StateType.RUNNING, StateType.PENDING, StateType.SCHEDULED])))
    ended = 0
    try:
        runs = client.read_task_runs(flow_run_filter=flows, task_run_filter=open_states, limit=200)
        for run in runs:
            if flow_run_id is None:
                parent = client.read_flow_run(run.flow_run_id)
                why = (f"its flow run {parent.name} ended {parent.state.type.value}: "
                       f"{parent.state.message or 'no message'}")
            else:
                why = reason or "its flow run ended"
            client.set_task_run_state(run.id, Crashed(message=f"{why}; closed by tlbench"), force=True)
            _log().warning("task run %s left %s: marked CRASHED (%s)", run.name, run.state.type.value, why)
            ended += 1
    except Exception:  # noqa: BLE001 - display only: the ledger already says what happened
        _log().warning("could not close task runs left open", exc_info=True)
    return ended


def make_engine(execution: str, concurrency: int = 1, batch_size: int = 4,
                timeout_s: float = 24 * 3600, poll_s: float = 5.0):
    """The engine for ``benchmark_grid``'s ``execution`` parameter."""
    if execution == "local":
        return PrefectEngine(concurrency)
    if execution == "pool":
        return PoolEngine(batch_size, timeout_s=timeout_s, poll_s=poll_s, concurrency=concurrency)
    if execution == "served":  # long-lived cell workers (flows/served.py)
        from flows.served import ServedEngine

        return ServedEngine(PrefectEngine(concurrency), timeout_s=timeout_s)
    raise TlbenchError(f"Unknown execution {execution!r}. Known: local, pool, served.")
