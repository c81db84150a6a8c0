"""What the engines that send cells to other workers share: the lost-worker rule and the base class.

Pool mode (:mod:`flows.pool`) and served mode (:mod:`flows.served`) both keep ``pretrain`` and
``baselines`` in the parent's flow run and send ``run_cell`` elsewhere; both tell a dead worker
from a slow one by its heartbeats (:class:`Heartbeats`, :data:`LOST_AFTER_S`), report a cell that
left no leaderboard row as failed (:func:`lost_outcome`), and end the task runs a dead run left
open (:func:`close_orphan_task_runs`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterName,
    FlowRunFilterState,
    FlowRunFilterStateType,
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.states import Crashed

from benchmark.run.cells import run_cell
from benchmark.run.jobs import CellJob, CellOutcome
from benchmark.spec.errors import TlbenchError
from benchmark.spec.settings import Settings
from flows.engine import run_logger

#: The shortest silence that makes a worker lost, whatever its interval, by default: a 30 s stall of
#: the Prefect server's SQLite writes silenced a live worker for 65 s (docs/orchestration.md);
#: Prefect's OFFLINE (3 late intervals) is no proof of death, and ending a live run fails cells
#: still training. ``benchmark_grid`` passes ``Settings.lost_worker_seconds`` (``TLBENCH_LOST_WORKER_S``).
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
    (:meth:`map_cells`, only ``benchmark.run.cells.run_cell``), and the local engine's lifecycle."""

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
            raise TlbenchError(f"{self.remote_name} runs benchmark.run.cells.run_cell on its workers; it "
                               f"cannot run {fn.__module__}.{fn.__qualname__}")
        jobs = list(items)
        return self.map_cells(jobs, settings) if jobs else []

    def map_cells(self, jobs: list, settings: Settings) -> list[Any]:
        raise NotImplementedError


def close_orphan_task_runs(client, flow_run_id: Any = None, reason: str | None = None) -> int:
    """Task runs left RUNNING, PENDING or SCHEDULED inside a flow run that ended (its worker was
    killed: nobody is left to end them) are set CRASHED with the reason, so the UI shows no task
    running forever. ``flow_run_id``: that flow run only; ``None``: every train-cell flow run in a
    final state other than COMPLETED (what the next trigger sweeps). Returns how many were ended;
    never raises."""
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
            run_logger().warning("task run %s left %s: marked CRASHED (%s)", run.name, run.state.type.value, why)
            ended += 1
    except Exception:  # noqa: BLE001 - display only: the ledger already says what happened
        run_logger().warning("could not close task runs left open", exc_info=True)
    return ended
