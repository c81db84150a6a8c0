"""Served mode end to end on loopback: a real ``prefect server``, two long-lived cell workers
from ``deployments/start_cell_workers.sh``, and ``benchmark_grid(execution="served")`` on a tiny
grid in its own process. One worker is SIGKILLed mid-cell: the grid ends FAILED on its own (the
dead worker's heartbeats stop), a rerun with a replacement worker trains exactly the lost cells,
and every cell is in the leaderboard once, with no MLflow or Prefect run left running.

Every process the test starts is stopped by its pid or process group (workers: SIGINT, then
SIGKILL), even on failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.test_prefect_pool import (
    alive,
    descendants,
    free_port,
    kill_groups,
    run,
    start_prefect_server,
    stop_prefect_server,
    wait_for_prefect_server,
    wait_gone,
)

pytestmark = [pytest.mark.e2e]  # cited as evidence in docs: CI runs it (about 2 minutes)

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = ["target_sizes=[120]", "split.test_size=96", "model.units=8", "training.max_epochs=3",
        "pretrain.max_series=8", "pretrain.windows_per_series=50", "pretrain.training.max_epochs=1",
        "modes=[scratch,frozen]", "baselines=[naive]", "seeds=[0,1,2]"]
PARENT = """
import json, sys
from flows.grid import benchmark_grid
result = benchmark_grid(sys.argv[2], json.loads(sys.argv[1]), execution="served", concurrency=1,
                        fail_on_cell_errors=False, pool_timeout_s=float(sys.argv[3]))
print("RESULT " + json.dumps(result.counts()))
"""


class ServedStack:
    def __init__(self, root: Path, data_dir: Path):
        self.root, self.port = root, free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "TLBENCH_"))}
        env.update({
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "PYTHON": sys.executable,
            "PYTHONPATH": f"{REPO_ROOT / 'src'}{os.pathsep}{REPO_ROOT}",
            "PREFECT_HOME": str(root / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{root / 'prefect' / 'prefect.db'}",
            "PREFECT_WORKER_HEARTBEAT_SECONDS": "3",
            "TLBENCH_DATA_DIR": str(data_dir), "TLBENCH_RESULTS": str(root / "results"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "TLBENCH_ARTIFACTS": (root / "artifacts").as_uri(), "TLBENCH_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
        })
        self.env = {**env, "PREFECT_API_URL": self.api_url}
        self.server_env = env
        self.server = None
        self.workers: dict[str, int] = {}

    def start(self) -> "ServedStack":
        self.server, self.log = start_prefect_server(self.root, self.port, self.server_env)
        wait_for_prefect_server(self.server, self.root, self.api_url)
        from mlflow.tracking import MlflowClient
        from prefect.client.schemas.actions import WorkPoolCreate

        MlflowClient(self.env["MLFLOW_TRACKING_URI"]).search_experiments()  # create the store once
        with self.client() as client:
            client.create_work_pool(WorkPoolCreate(name="gpu", type="process"))
        return self

    def client(self):
        from prefect.client.orchestration import SyncPrefectClient

        return SyncPrefectClient(self.api_url)

    def claimed_runs(self) -> list:
        """Every task run a cell worker has claimed (named ``<cell> @ <worker>``), all pages."""
        from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
        from prefect.client.schemas.sorting import TaskRunSort

        from flows.served import CLAIM

        claimed, runs = TaskRunFilter(name=TaskRunFilterName(like_=CLAIM)), []
        with self.client() as client:
            while True:
                page = client.read_task_runs(task_run_filter=claimed, sort=TaskRunSort.ID_DESC, limit=200,
                                             offset=len(runs))
                runs += page
                if len(page) < 200:
                    return runs

    def start_workers(self, count: int) -> dict[str, int]:
        out = run([str(REPO_ROOT / "deployments" / "start_cell_workers.sh"), "--count", str(count), "--cpu",
                   "--run-dir", str(self.root / "workers")], self.env, 120)
        started = {line.split()[0]: int(line.split()[1]) for line in out.stdout.splitlines()}
        self.workers.update(started)
        return started

    def wait_ready(self, names, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while True:
            logs = {n: (self.root / "workers" / f"{n}.log").read_text() for n in names}
            if all("ready" in text for text in logs.values()):
                return
            dead = [n for n in names if not alive(self.workers[n])]
            assert not dead, f"workers died: {[logs[n][-3000:] for n in dead]}"
            assert time.monotonic() < deadline, f"workers not ready: {logs}"
            time.sleep(0.5)

    def parent(self, profile: str = "smoke", overrides: list[str] | None = None,
               timeout_s: float = 600) -> subprocess.Popen:
        overrides = TINY if overrides is None else overrides
        return subprocess.Popen([sys.executable, "-c", PARENT, json.dumps(overrides), profile, str(timeout_s)],
                                env=self.env,
                                cwd=self.root,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    def stop(self) -> None:
        tree = {pid: [pid, *descendants(pid)] for pid in self.workers.values() if alive(pid)}
        for pid in tree:
            os.kill(pid, signal.SIGINT)
        if not wait_gone(list(tree), 20):
            kill_groups(list(tree))
        if self.server is not None:
            stop_prefect_server(self.server, self.log)


def _mlflow_cells(stack: ServedStack) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(stack.env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("tlbench-smoke")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], filter_string="tags.`tlbench.kind` = 'cell'",
                              max_results=1000)


def _rows(stack: ServedStack):
    from benchmark.results.leaderboard import Leaderboard

    return Leaderboard(stack.env["TLBENCH_RESULTS"]).read(kind="model")


def _counts(out: str) -> dict[str, int]:
    """The grid's outcome counts from the parent's ``RESULT {...}`` line."""
    assert "RESULT" in out, out[-4000:]
    return json.loads(out.split("RESULT ", 1)[1].splitlines()[0])


def _finish(parent: subprocess.Popen, timeout: float = 600) -> str:
    try:
        out, _ = parent.communicate(timeout=timeout)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    return out


@pytest.mark.timeout(1200)
def test_a_killed_cell_worker_loses_nothing_and_the_rerun_trains_each_lost_cell_once(tmp_path, data_dir):
    from flows.served import CLAIM

    stack = ServedStack(tmp_path, data_dir)
    timings = {}
    try:
        t0 = time.monotonic()
        stack.start()
        timings["server_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        names = sorted(stack.start_workers(2))
        stack.wait_ready(names)
        timings["workers_ready_s"] = time.monotonic() - t0

        t0 = time.monotonic()
        parent = stack.parent()
        deadline, victim = time.monotonic() + 600, None
        while victim is None:  # a cell training on a worker: kill that worker
            assert parent.poll() is None, _finish(parent)[-4000:]
            assert time.monotonic() < deadline, "no cell started training"
            runs = stack.claimed_runs()
            running = [r for r in runs if r.state and r.state.type.value == "RUNNING"]
            victim = running[0] if running else None
            time.sleep(0.2)
        worker = victim.name.rsplit(CLAIM, 1)[1]
        pid = stack.workers[worker]
        kill_groups([pid, *descendants(pid)])
        assert wait_gone([pid], 15)
        out = _finish(parent)
        timings["first_grid_s"] = time.monotonic() - t0
        counts = _counts(out)
        assert counts.get("failed", 0) >= 1, counts  # the killed worker's cell, reported, not waited on
        with stack.client() as client:
            state = client.read_task_run(victim.id).state
        assert state.type.value == "CRASHED" and worker in state.message
        before = set(_rows(stack)["cell_key"])
        assert len(before) < 6

        stack.start_workers(2)  # replaces the killed worker; the live one is left alone
        t0 = time.monotonic()
        out = _finish(stack.parent())
        timings["rerun_s"] = time.monotonic() - t0
        counts = _counts(out)
        assert "failed" not in counts, out[-4000:]
        rows = _rows(stack)
        assert len(rows) == 6 and rows["cell_key"].is_unique  # 2 modes x 3 seeds, each once
        runs = _mlflow_cells(stack)
        finished = Counter(r.data.tags["tlbench.cell_key"] for r in runs if r.info.status == "FINISHED")
        assert set(finished) == set(rows["cell_key"]) and set(finished.values()) == {1}
        assert not [r for r in runs if r.info.status == "RUNNING"]
        with stack.client() as client:
            task_runs = client.read_task_runs(limit=200)
        assert not [r.name for r in task_runs if r.state.type.value in ("RUNNING", "PENDING", "SCHEDULED")]
        served = [r for r in task_runs if CLAIM in r.name]
        assert {r.name.rsplit(CLAIM, 1)[1] for r in served} >= set(names)  # both workers took cells
    finally:
        stack.stop()
        print(f"served stack timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
