"""Pool mode: cells as child flow runs of the ``train-cell`` deployment on a work pool.

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

import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings
from prefect.states import Cancelled, Crashed

from benchmark.run.jobs import CellJob, CellOutcome
from benchmark.run.ledger import close_lost_runs, ledger_outcomes
from benchmark.spec.errors import TlbenchError
from benchmark.spec.identity import spec_hash
from benchmark.spec.settings import Settings
from flows.cell import CELL_DEPLOYMENT, WORKER_LABEL, jobs_to_plain
from flows.engine import PrefectEngine, _Progress, run_logger
from flows.remote import LOST_AFTER_S, Heartbeats, RemoteCellEngine, close_orphan_task_runs, lost_outcome


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


def _worker_of(run) -> str | None:
    """The worker that holds a child run: its own ``tlbench.worker`` label, else the one Prefect's
    worker puts on a run before it proposes PENDING (so a worker that dies while starting the run
    is tied to it too)."""
    labels = run.labels or {}
    return labels.get(WORKER_LABEL) or labels.get(PREFECT_WORKER_LABEL)


#: The label a Prefect worker gives each flow run it submits, before it proposes PENDING.
PREFECT_WORKER_LABEL = "prefect.worker.name"


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
            run_logger().warning("could not publish the cell table", exc_info=True)


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

        with get_client(sync_client=True) as client:
            pool = self._check_deployment(client)
            close_orphan_task_runs(client)  # left by children of an earlier trigger that crashed
            batches = [jobs[i:i + self.batch_size] for i in range(0, len(jobs), self.batch_size)]
            self.progress.start("cell", len(jobs))
            children = self._submit(batches, settings)
            run_logger().info("pool mode: %d cell(s) in %d child run(s) of %s (pool %r); a worker silent for "
                              "%.0f s is lost (TLBENCH_LOST_WORKER_S); this run waits at most %.0f s in all "
                              "(pool_timeout_s)", len(jobs), len(children), self.deployment, pool,
                              self._heartbeats.lost_after_s, self.timeout_s)
            self._wait(client, children, pool, len(jobs), settings)
            for child in children:
                if child.state_name != "COMPLETED":
                    close_orphan_task_runs(client, child.flow_run_id, f"its flow run {child.name} ended "
                                           f"{child.state_name}: {child.state_message or 'no message'}")
        return self._outcomes(children, settings)

    # ------------------------------------------------------------------ steps

    def _check_deployment(self, client) -> str:
        """The deployment's work pool; a clear error when there is no server or no deployment."""

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
                run_logger().warning("polling the child runs failed (%s: %s); retrying in %.0f s",
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
                    run_logger().info("%d child run(s) still SCHEDULED: is a worker polling pool %r?",
                                len(waiting), pool)
            time.sleep(self.poll_s)

    def _poll(self, client, children: list[_Child], pool: str) -> None:
        """One look at every open child (one API call per 200), ending the ones that cannot end."""

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
            child.worker = _worker_of(run) or child.worker
            if state.is_final():
                child.final = True
            elif state.is_running():
                running.append((child, run))
            elif state.is_pending():
                if _worker_of(run):  # its worker labelled it before it went PENDING
                    running.append((child, run))
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
            name = _worker_of(run)
            if not name:
                continue  # not submitted by a worker (yet): the deadlines still apply
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

        new_state = Cancelled(message=message) if state == "CANCELLED" else Crashed(message=message)
        try:  # a child that ended since the poll that condemned it keeps its own final state
            current = client.read_flow_run(child.flow_run_id).state
            if current is not None and current.is_final():
                child.final, child.state_name, child.state_message = True, current.type.value, current.message
                return
            client.set_flow_run_state(child.flow_run_id, new_state, force=True)
        except Exception:  # noqa: BLE001 - the outcome below says the same either way
            run_logger().warning("could not mark child run %s %s", child.name, state, exc_info=True)
        run_logger().warning("child run %s marked %s: %s", child.name, state, message)
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
