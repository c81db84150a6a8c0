"""What a grid's flow run that died leaves open in Prefect, closed by the next run of the grid.

A machine that is lost (its Prefect worker and the grid's flow-run process SIGKILLed, the power cut)
leaves its ``benchmark-grid`` flow run RUNNING, with its ``cells-...`` child runs and its task runs:
nobody is left to report them. The grid's lease (:mod:`benchmark.run.lease`) already knows when its
holder is dead (its process gone on this host, or silent for ``stale_grid_seconds``), and a new run
of the grid takes the lease over. So every grid flow run records itself in its lease
(:func:`on_lease`: ``Holder.owner = prefect-flow-run:<id>``), and the run that takes the lease over
from a dead holder closes that holder's Prefect runs at once, before it starts anything:

* the dead flow run: **Crashed**, its message saying why (the lease's reason) and which run closed it;
* its child flow runs (pool mode): SCHEDULED or PENDING ones **Cancelled** (they would train cells the
  new run trains too); RUNNING ones **Crashed** when provably dead (their process, labelled
  ``tlbench.host``/``tlbench.pid`` by ``flows/cell.py``, is gone on this host, or their worker has sent
  no heartbeat for ``lost_worker_seconds``), else left to finish (their rows count; the warning says so);
* the task runs left open in those flow runs: **Crashed** (served cells: SCHEDULED ones Cancelled,
  claimed RUNNING ones Crashed when their worker is silent, as above).

The grid's MLflow parent run is closed KILLED by the same new run (``Tracker.close_orphaned_grid_runs``).

A dead parent can also keep the new one from starting at all: it holds a slot of the ``cpu``
pool's concurrency limit while it looks RUNNING. So ``deployments/start_workers.sh`` first runs
``python -m flows.lost`` (:func:`sweep_host`): every RUNNING or PENDING flow run labelled with this
host (grid flow runs and ``train-cell`` batches label themselves ``tlbench.host``/``tlbench.pid``
when they start) whose process is gone is closed as above. Restarting a lost machine's workers
therefore frees its slots before the next trigger. Nothing here ever fails a grid or a worker's
start: it is bookkeeping, logged.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from datetime import datetime, timezone
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.runtime import flow_run
from prefect.states import Cancelled, Crashed

from benchmark.run.lease import GridLease, pid_alive
from benchmark.spec.settings import Settings
from flows.engine import run_logger
from flows.labels import CLAIM, HOST_LABEL, PID_LABEL, WORKER_LABEL

OWNER = "prefect-flow-run:"  # a lease's owner when a Prefect flow run holds it
_OPEN = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]


def on_lease(lease: GridLease, pool: str, lost_after_s: float) -> None:
    """``run_grid``'s ``on_lease`` for a grid flow run: record this flow run as the lease's owner;
    when the lease was taken over from a dead holder that was a flow run, close its runs. Never raises."""
    me = flow_run.get_id()
    try:
        if me is not None:
            lease.own(f"{OWNER}{me}")
        dead = lease.taken_over
        if dead is not None and dead.owner.startswith(OWNER):
            with get_client(sync_client=True) as client:
                close_dead_grid(client, dead.owner.removeprefix(OWNER),
                                f"its grid process died ({lease.why}); closed by flow run {me} of the same "
                                f"grid, which runs its unfinished cells", pool, lost_after_s)
    except Exception:  # noqa: BLE001 - bookkeeping: the new run goes on either way
        run_logger().warning("could not close the Prefect runs of the grid run that died", exc_info=True)


def close_dead_grid(client, flow_run_id: Any, reason: str, pool: str, lost_after_s: float) -> int:
    """Close the dead grid flow run ``flow_run_id``, its child runs and their task runs (see the
    module); returns how many runs were moved to a final state."""
    live = _live_workers(client, pool, lost_after_s)
    closed = _end_flow_run(client, client.read_flow_run(flow_run_id), Crashed, reason)
    children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])), limit=200)
    flows = [flow_run_id]  # the flow runs now final, whose open task runs are closed below
    for child in children:
        state = child.state
        if state is None or state.is_final():
            flows.append(child.id)
        elif not state.is_running():
            closed += _end_flow_run(client, child, Cancelled, f"its parent grid run died: {reason}")
            flows.append(child.id)
        elif _process_dead(child.labels or {}, live):
            closed += _end_flow_run(client, child, Crashed, f"its worker process is gone and its parent grid "
                                                            f"run died: {reason}")
            flows.append(child.id)
        else:
            run_logger().warning("child run %s of the grid run that died is still RUNNING on a live worker: "
                                 "left to finish (its cells' rows count)", child.name)
    return closed + _end_task_runs(client, flows, reason, live)


def _end_flow_run(client, run, state, reason: str) -> int:
    if run.state is not None and run.state.is_final():
        return 0
    client.set_flow_run_state(run.id, state(message=reason), force=True)
    run_logger().warning("flow run %s left %s: marked %s (%s)", run.name, run.state.type.value if run.state
                         else "?", state.__name__.upper(), reason)
    return 1


def _end_task_runs(client, flow_run_ids: list, reason: str, live: set[str]) -> int:
    runs = client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)),
        task_run_filter=TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=_OPEN))),
        limit=200)
    closed = 0
    for run in runs:
        worker = run.name.rsplit(CLAIM, 1)[1] if CLAIM in run.name else None
        if run.state.is_scheduled():
            new = Cancelled(message=f"its grid run died: {reason}")
        elif worker not in live:
            new = Crashed(message=f"its grid run died: {reason}")
        else:
            run_logger().warning("task run %s of the grid run that died is still RUNNING on live worker %s: "
                                 "left to finish", run.name, worker)
            continue
        client.set_task_run_state(run.id, new, force=True)
        run_logger().warning("task run %s left %s: marked %s", run.name, run.state.type.value, new.type.value)
        closed += 1
    return closed


def _live_workers(client, pool: str, lost_after_s: float) -> set[str]:
    """Workers of ``pool`` whose last heartbeat is within 3 intervals or ``lost_after_s`` (by the
    server's clock): any other worker, or one not in the pool at all, counts as dead."""
    now, live = datetime.now(timezone.utc), set()
    try:
        workers = client.read_workers_for_work_pool(pool, limit=200)
    except Exception:  # noqa: BLE001 - no pool: nothing is known alive
        return live
    for worker in workers:
        beat = worker.last_heartbeat_time
        limit = max(3 * (worker.heartbeat_interval_seconds or 30), lost_after_s)
        if beat is not None and (now - beat).total_seconds() <= limit:
            live.add(worker.name)
    return live


def _process_dead(labels: dict, live: set[str]) -> bool:
    """Whether a child run's process is provably gone: on this host its pid is not running;
    elsewhere its worker is silent (see :func:`_live_workers`)."""
    host, pid = labels.get(HOST_LABEL), str(labels.get(PID_LABEL, ""))
    if host == socket.gethostname() and pid.isdigit():
        return not pid_alive(int(pid))
    return labels.get(WORKER_LABEL) not in live


def sweep_host(client, pool: str = "gpu", lost_after_s: float = 120.0) -> int:
    """Close the flow runs of this host whose process is gone (see the module): a grid flow run
    with everything it left open, a batch with its task runs. Returns how many runs were closed."""
    here, closed = socket.gethostname(), 0
    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
        type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING]))), limit=200)
    for run in runs:
        labels = run.labels or {}
        pid = str(labels.get(PID_LABEL, ""))
        if labels.get(HOST_LABEL) != here or not pid.isdigit() or pid_alive(int(pid)):
            continue
        reason = (f"its process {labels.get(PID_LABEL)} on {here} is gone (found when the workers of {here} "
                  "started again)")
        closed += close_dead_grid(client, run.id, reason, pool, lost_after_s)
    return closed


def main() -> None:
    """``python -m flows.lost``: :func:`sweep_host` against ``PREFECT_API_URL`` (start_workers.sh)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--pool", default="gpu", help="the pool whose workers' heartbeats count (default gpu)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with get_client(sync_client=True) as client:
        closed = sweep_host(client, args.pool, Settings.from_environment().lost_worker_seconds)
    if closed:
        print(f"closed {closed} Prefect run(s) left open by processes of this host that are gone",
              file=sys.stderr)  # stdout is the script's "name pid" lines


if __name__ == "__main__":
    main()
