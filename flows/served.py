"""Served execution (``benchmark_grid(execution="served")``): long-lived cell workers.

Pool mode pays a flow-run start per batch (worker poll, a new process, imports of Prefect, MLflow
and TensorFlow: about 16 s here, docs/orchestration.md). Here each worker is one long-lived
process per GPU (or core) that has TensorFlow loaded and its device configured once, and takes
cell after cell through Prefect's background tasks (``Task.delay`` on the parent,
``prefect.task_worker`` on the workers): every cell is its own ``train-cell`` task run, nested
under the grid's flow run in the UI, with its state and its logs.

Three things differ from Prefect's stock task worker, each for the killed-worker guarantee:

* **One task run per subscription.** A stock task worker acknowledges the next scheduled run
  while it is still busy (it holds one run ahead); if it dies, that run is lost to the server's
  queue and no other worker ever gets it. :class:`CellWorker` subscribes, takes one run, closes
  the connection (the server puts back anything it had not had acknowledged), trains, and only
  then subscribes again. An idle worker is never starved by a busy one holding the next cell.
* **Heartbeats.** Each worker sends Prefect worker heartbeats to the work pool (``gpu`` by
  default) under its own name, so it appears in the UI beside the pool's workers, and the parent
  can tell a dead worker (no heartbeat for 3 intervals and at least ``lost_worker_seconds``,
  ``TLBENCH_LOST_WORKER_S``, 120 s by default) from a slow cell or a loaded server.
* **Claim before the ack.** A worker renames the task run it receives ``<cell> @ <worker>`` on the
  server *before* it acknowledges it (:meth:`CellWorker._claim_next`): a worker killed before the
  ack leaves the run to the server, which hands it to another worker; one killed after it has its
  name on the run, also at its very first cell. The parent marks a run claimed by a worker that
  stopped heartbeating (or never heartbeated, for ``lost_worker_seconds``) CRASHED, reports its
  cell failed (no row) and closes its MLflow run: the next trigger trains it, once. A run a worker
  deleted ("failed to submit") ends its cell as failed at once.

The parent (:class:`ServedEngine`) keeps at most two cells in flight per live worker (the
grid-level concurrency limit: one training, one waiting in the server's queue, where no worker
holds it, so a worker that finishes starts its next cell without waiting for the parent's poll),
hands them out longest first (``run_grid``), and takes every outcome from the leaderboard ledger,
as pool mode does.

Start workers with ``deployments/start_cell_workers.sh`` (one per GPU, or per core without GPUs)
on any number of machines; they need ``PREFECT_API_URL`` and, across machines, a shared
``PREFECT_TASKS_SCHEDULING_DEFAULT_STORAGE_BLOCK`` (task parameters are stored there; the default
is a folder under ``PREFECT_HOME``, enough on one machine).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import websockets
from prefect import tags, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterId
from prefect.client.schemas.objects import TaskRun
from prefect.client.subscriptions import Subscription
from prefect.runtime import task_run
from prefect.settings import get_current_settings
from prefect.states import Cancelled, Crashed
from prefect.task_worker import TaskWorker

from benchmark.run.cells import run_cell
from benchmark.run.engines import configure_worker_device, warm_worker
from benchmark.run.jobs import CellJob, CellOutcome
from benchmark.run.ledger import close_lost_runs, ledger_outcomes, tag_run
from benchmark.spec.convert import from_dict
from benchmark.spec.errors import TlbenchError
from benchmark.spec.identity import to_plain
from benchmark.spec.settings import Settings, apply_mlflow_http_policy
from flows.cell import TAG_WORKER
from flows.engine import run_logger
from flows.labels import CELL_TAG, CLAIM
from flows.remote import LOST_AFTER_S, Heartbeats, RemoteCellEngine, lost_outcome

TAG_TASK_RUN = "prefect_task_run_id"
_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the worker side


def worker_name() -> str:
    """This process's worker name (``TLBENCH_WORKER_NAME``, else ``<host>-<pid>``)."""
    return os.environ.get("TLBENCH_WORKER_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def claimed_name(name: str, worker: str) -> str:
    """A task run's name once ``worker`` holds it: ``<cell> @ <worker>`` (an earlier claim replaced)."""
    return f"{name.split(CLAIM, 1)[0]}{CLAIM}{worker}"


@task(name="train-cell", retries=0, log_prints=True)
def served_cell(name: str, job: dict[str, Any], results: str | None = None,
                tracking_uri: str | None = None) -> dict[str, Any]:
    """Train one cell (``benchmark.run.cells.run_cell``) on this worker; FAILED when the cell failed
    (its failure row and FAILED MLflow run are written first)."""
    worker = worker_name()
    task_run_id = task_run.get_id()
    settings = Settings.from_environment(results=results, tracking_uri=tracking_uri)
    apply_mlflow_http_policy(settings)
    cell_job = from_dict(CellJob, job, "job")
    outcome = run_cell(cell_job, settings)
    tag_run(settings, cell_job.context.experiment, outcome.mlflow_run_id,
            {TAG_WORKER: worker, TAG_TASK_RUN: str(task_run_id or "")})
    if outcome.status == "failed":
        raise RuntimeError(f"{outcome.label}: {outcome.error}")
    return to_plain(outcome)


# The task key names what workers subscribe to. Prefect's default hashes the code object, file
# path included: machines with their checkouts at different paths would never meet. The source
# text alone keeps the key equal wherever the same code runs, and apart across code versions.
served_cell.task_key = "tlbench-train-cell-" + hashlib.md5(inspect.getsource(served_cell.fn).encode()).hexdigest()[:12]


class CellWorker(TaskWorker):
    """A task worker that takes one task run at a time and holds none ahead (see the module)."""

    def __init__(self, *tasks: Any, name: str):
        super().__init__(*tasks, limit=1)
        for original, copy in zip(tasks, self.tasks):  # with_options() recomputed the key
            copy.task_key = original.task_key
            copy.task_run_name = None  # the engine keeps the name the claim gave the run
        self.name = name

    @property
    def client_id(self) -> str:
        return self.name

    async def _subscribe_to_task_scheduling(self) -> None:

        base_url = get_current_settings().api.url
        if base_url is None:
            raise TlbenchError("a cell worker needs PREFECT_API_URL (a Prefect server, not the ephemeral API)")
        _log.info("cell worker %s: waiting for train-cell task runs on %s", self.name, base_url)
        while not self.stopping:
            subscription = Subscription(TaskRun, "/task_runs/subscriptions/scheduled", self.task_keys,
                                        client_id=self.client_id, base_url=base_url)
            try:
                task_run = await self._claim_next(subscription)
            finally:  # close before working: the server re-queues a run it could not deliver
                if subscription._websocket is not None:
                    await subscription._connect.__aexit__(None, None, None)
            if task_run is not None:
                await self._safe_submit_scheduled_task_run(task_run)

    async def _claim_next(self, subscription: Subscription) -> TaskRun | None:
        """The next scheduled run, claimed before it is acknowledged: renamed ``<cell> @ <worker>``
        on the server, then acked. A worker that dies before the ack leaves the run to the server,
        which hands it to another worker; one that dies after it has its name on the run, so the
        parent notices its silence (``Subscription.__anext__`` acks first, then returns). ``None``
        when the claim could not be written (the run is not acked: the server hands it out again)."""
        while True:
            try:
                await subscription._ensure_connected()
                task_run = TaskRun.model_validate_json(await subscription.websocket.recv())
                break
            except (ConnectionRefusedError, websockets.exceptions.ConnectionClosedError):
                subscription._websocket = None
                if hasattr(subscription._connect, "protocol"):
                    await subscription._connect.__aexit__(None, None, None)
                await asyncio.sleep(0.5)
        cell = next((tag.removeprefix(CELL_TAG) for tag in task_run.tags if tag.startswith(CELL_TAG)), task_run.name)
        task_run.name = claimed_name(cell, self.name)  # the engine's copy too: its state events carry it
        try:
            await self._client._client.patch(f"/task_runs/{task_run.id}", json={"name": task_run.name})
        except Exception:  # noqa: BLE001 - unclaimed, unacked: another worker (or this one) takes it
            _log.warning("could not claim task run %s; leaving it to the server", task_run.id, exc_info=True)
            await asyncio.sleep(1.0)
            return None
        await subscription.websocket.send(json.dumps({"type": "ack"}))
        return task_run


def _heartbeats(pool: str, name: str, seconds: float, stop: threading.Event) -> None:

    while not stop.is_set():
        try:
            with get_client(sync_client=True) as client:
                client.send_worker_heartbeat(pool, name, heartbeat_interval_seconds=seconds)
        except Exception:  # noqa: BLE001 - a missed beat is retried; three make the parent give up
            _log.warning("heartbeat to pool %r failed", pool, exc_info=True)
        stop.wait(seconds)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m flows.served``: one long-lived cell worker (deployments/start_cell_workers.sh)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--name", default=None, help="worker name (default <host>-<pid>)")
    parser.add_argument("--pool", default="gpu", help="work pool its heartbeats go to (default gpu)")
    parser.add_argument("--heartbeat-s", type=float,
                        default=float(os.environ.get("PREFECT_WORKER_HEARTBEAT_SECONDS", 30)))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib", "alembic", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    name = args.name or worker_name()
    os.environ["TLBENCH_WORKER_NAME"] = name  # the cells' claims use the same name

    device = configure_worker_device()  # before TensorFlow's first op
    warm_worker()  # TensorFlow, Keras, MLflow: once for the life of the worker, not per cell
    stop = threading.Event()
    threading.Thread(target=_heartbeats, args=(args.pool, name, args.heartbeat_s, stop), daemon=True,
                     name="tlbench-heartbeat").start()
    print(f"cell worker {name} ({device}) ready", flush=True)  # start scripts and tests wait for it
    try:
        asyncio.run(_serve(name))
    finally:
        stop.set()


async def _serve(name: str) -> None:
    worker = CellWorker(served_cell, name=name)  # a TaskWorker is made inside its event loop
    await worker.astart()


# --------------------------------------------------------------------------- the parent side


@dataclass
class _Cell:
    job: CellJob
    task_run_id: Any = None
    name: str = ""
    state_name: str = "SCHEDULED"
    state_message: str | None = None
    final: bool = False
    claimed_at: float | None = None  # when this parent first saw the run claimed (its clock)


class ServedEngine(RemoteCellEngine):
    """Cells as ``train-cell`` background task runs for long-lived :class:`CellWorker` processes;
    ``pretrain`` and ``baselines`` run in this flow run (``local``, a ``PrefectEngine``).

    At most two cells per live worker are in flight (workers heartbeating to ``pool``; at least
    one), so the order ``run_grid`` hands cells in is the order they start. ``timeout_s`` bounds
    the whole wait; cells still open then are ended (CANCELLED if never started, else CRASHED).
    A worker is lost after ``lost_after_s`` (and 3 intervals) without a heartbeat (:class:`Heartbeats`)."""

    def __init__(self, local, pool: str = "gpu", timeout_s: float = 24 * 3600, poll_s: float = 1.0,
                 lost_after_s: float = LOST_AFTER_S):
        self.local, self.pool = local, pool
        self.timeout_s, self.poll_s = float(timeout_s), float(poll_s)
        self._in_flight = 0
        self._lock = threading.Lock()
        self._heartbeats = Heartbeats(lost_after_s)  # lost: silent for 3 intervals and lost_after_s
        self.lost_after_s = float(lost_after_s)

    remote_name = "served mode"

    def map_cells(self, jobs: list, settings: Settings) -> list[Any]:
        cells = [_Cell(job) for job in jobs]

        if not get_current_settings().api.url:
            raise TlbenchError("execution='served' needs a Prefect server that cell workers subscribe to: "
                               "set PREFECT_API_URL (deployments/README.md), or use execution='local'")
        self.local.progress.start("cell", len(cells))
        run_logger().info("served mode: %d cell(s) for the cell workers of pool %r; a worker silent for "
                          "%.0f s is lost (its cell failed, TLBENCH_LOST_WORKER_S); this run waits at most "
                          "%.0f s in all (pool_timeout_s)", len(cells), self.pool, self.lost_after_s, self.timeout_s)
        with get_client(sync_client=True) as client:
            self._run(client, cells, settings)
        return self._outcomes(cells, settings)

    def _run(self, client, cells: list[_Cell], settings: Settings) -> None:
        deadline, todo, open_ = time.monotonic() + self.timeout_s, list(cells), []
        noted = time.monotonic()
        shared = {"results": settings.shareable(settings.results),
                  "tracking_uri": settings.shareable(settings.tracking_uri)}
        live: set[str] = set()
        while todo or open_:
            read = self._live_workers(client)  # None: not readable this round, judge nobody
            live = live if read is None else read
            with self._lock:  # two maps at once (early cells beside pretraining) share the limit
                room = 2 * max(1, len(live)) - self._in_flight  # one running + one queued per worker
                batch, todo = todo[:max(room, 0)], todo[max(room, 0):]
                self._in_flight += len(batch)
            for cell in batch:
                with tags(f"{CELL_TAG}{cell.job.task_name}"):  # the name its worker gives it
                    future = served_cell.delay(cell.job.task_name, to_plain(cell.job), **shared)
                cell.task_run_id = future.task_run_id
                open_.append(cell)
            time.sleep(self.poll_s)
            ended = self._poll(client, open_, read, time.monotonic() >= deadline)
            for cell in ended:
                open_.remove(cell)
                self.local.progress.record("cell", CellOutcome(cell.job.cell_key, "finished" if
                                           cell.state_name == "COMPLETED" else "failed", cell.name))
            with self._lock:
                self._in_flight -= len(ended)
            if not live and open_ and time.monotonic() - noted > 120:
                noted = time.monotonic()
                run_logger().warning("%d cell(s) waiting and no live cell worker on pool %r: start "
                                     "deployments/start_cell_workers.sh (this run gives up after %.0f s)",
                                     len(open_) + len(todo), self.pool, self.timeout_s)
            if time.monotonic() >= deadline and todo:
                for cell in todo:
                    cell.final, cell.state_name = True, "NOT SUBMITTED"
                todo = []

    def _live_workers(self, client) -> set[str] | None:
        """Workers of the pool whose heartbeat moved within 3 of their intervals and
        ``lost_after_s``; ``None`` when the pool could not be read."""
        now, live = time.monotonic(), set()
        try:
            workers = client.read_workers_for_work_pool(self.pool, limit=200)
        except Exception:  # noqa: BLE001 - a missing pool or a hiccup: nobody is judged this round
            _log.debug("reading the workers of pool %r failed", self.pool, exc_info=True)
            return None
        for worker in workers:
            if not self._heartbeats.check(worker, now)[0]:
                live.add(worker.name)
        return live

    def _poll(self, client, open_: list[_Cell], live: set[str] | None, give_up: bool) -> list[_Cell]:
        """Read the open cells' task runs; end the ones whose worker died (``live``: the workers
        heartbeating now, ``None`` when unknown). The cells now final."""

        if not open_:
            return []
        by_id = {cell.task_run_id: cell for cell in open_}
        try:
            runs = client.read_task_runs(task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=list(by_id))),
                                         limit=len(by_id))
        except Exception as exc:  # noqa: BLE001 - a server hiccup: read again next round
            run_logger().warning("reading the cells' task runs failed (%s: %s); retrying", type(exc).__name__, exc)
            return []
        ended = []
        for cell in [c for c in open_ if c.task_run_id not in {run.id for run in runs}]:
            # a worker that could not start it deletes it ("failed to submit"): nothing runs it
            cell.final, cell.state_name = True, "DELETED"
            cell.state_message = "deleted by a cell worker that could not start it: see the cell workers' logs"
            run_logger().warning("task run %s: %s", cell.job.task_name, cell.state_message)
            ended.append(cell)
        for run in runs:
            cell, state = by_id[run.id], run.state
            cell.name = run.name
            if state is None:
                continue
            cell.state_name, cell.state_message = state.type.value, state.message
            worker = run.name.rsplit(CLAIM, 1)[1] if CLAIM in run.name else None
            if worker and cell.claimed_at is None:
                cell.claimed_at = time.monotonic()
            why = None
            if state.is_final():
                cell.final = True
            elif worker and live is not None and worker not in live and (self._heartbeats.known(worker) or
                                                    time.monotonic() - cell.claimed_at > self.lost_after_s):
                why = ("CRASHED", f"its worker {worker!r} stopped heartbeating (silent for more than "
                                  f"{self.lost_after_s:.0f} s): the worker or its machine died")
            elif give_up:
                why = ("CANCELLED" if state.is_scheduled() else "CRASHED",
                       f"tlbench served mode gave up waiting after {self.timeout_s:.0f} s")
            if why:
                new = Cancelled(message=why[1]) if why[0] == "CANCELLED" else Crashed(message=why[1])
                client.set_task_run_state(run.id, new, force=True)
                run_logger().warning("task run %s marked %s: %s", run.name, why[0], why[1])
                cell.final, cell.state_name, cell.state_message = True, why[0], why[1]
            if cell.final:
                ended.append(cell)
        return ended

    def _outcomes(self, cells: list[_Cell], settings: Settings) -> list[CellOutcome]:
        """Every cell's outcome from the ledger; a cell without a row failed with its task run's
        state (its MLflow run is closed)."""
        recorded = ledger_outcomes([cell.job for cell in cells], settings)
        outcomes, lost = [], []
        for cell in cells:
            outcome = recorded.get(cell.job.cell_key)
            if outcome is None:
                lost.append(cell.job)
                outcome = lost_outcome(cell.job, f"task run {cell.name or cell.job.task_name} ended "
                                                 f"{cell.state_name}", cell.state_message)
            outcomes.append(outcome)
        close_lost_runs(lost, settings)
        return outcomes


if __name__ == "__main__":
    from flows.served import main as _main  # the module the parent imports, not a __main__ copy

    _main()
