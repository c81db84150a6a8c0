"""The default engine killed outright: ``tlbench run`` (Prefect in-process, two worker processes)
gets SIGKILL on its whole process group once at least one cell is in the leaderboard, then runs
again. Counted after the rerun: every cell exactly once in the leaderboard, one FINISHED MLflow
run per cell key, no run left RUNNING (the killed grid's parent run and the cells it had in
flight are closed by the rerun), and no process of the killed run left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from benchmark.results.leaderboard import Leaderboard

pytestmark = pytest.mark.e2e

CELLS = 6
GRID = ["target_sizes=[240]", "split.test_size=48", "model.units=8", "training.max_epochs=25",
        "training.patience=25", "modes=[scratch]", f"seeds=[{','.join(map(str, range(CELLS)))}]",
        "baselines=[naive]"]
EXPERIMENT = "tlbench-smoke"


def tlbench_run(settings, tmp_path) -> tuple[list[str], dict]:
    command = [sys.executable, "-m", "benchmark.cli", "run", "--profile", "smoke", "--concurrency", "2"]
    for item in GRID:
        command += ["--set", item]  # no --engine: the default, Prefect in this process
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "TLBENCH_"))}
    env.update(settings.to_env())
    env.update({"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120", "TF_CPP_MIN_LOG_LEVEL": "2"})
    return command, env


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def mlflow_runs(settings) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return [] if experiment is None else client.search_runs([experiment.experiment_id], max_results=1000)


@pytest.mark.timeout(1200)
def test_tlbench_run_on_the_default_engine_killed_mid_grid_then_rerun_counts_every_cell_once(settings, tmp_path):
    command, env = tlbench_run(settings, tmp_path)
    board = Leaderboard(settings.results)
    log_path = tmp_path / "killed.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None and len(board.read(kind="model")) == 0:
            time.sleep(0.3)
        assert proc.poll() is None, "the grid ended before it could be killed:\n" + log_path.read_text()[-3000:]
        assert len(board.read(kind="model")) > 0, "no cell finished in time:\n" + log_path.read_text()[-3000:]
        os.killpg(proc.pid, signal.SIGKILL)  # the process, its worker processes, its Prefect server
        proc.wait(30)
        gone_by = time.monotonic() + 15
        while group_alive(proc.pid) and time.monotonic() < gone_by:
            time.sleep(0.2)
        assert not group_alive(proc.pid), "a process of the killed run survived SIGKILL of its group"
    finally:
        if proc.poll() is None or group_alive(proc.pid):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(30)

    done_before = set(board.read(kind="model")["cell_key"])
    assert 1 <= len(done_before) < CELLS, f"{len(done_before)} cells finished before the kill: it hit nothing"
    assert "RUNNING" in {r.info.status for r in mlflow_runs(settings)}  # nothing could close them

    # the next night: the same command, to the end
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, f"rerun exited {rerun.returncode}:\n{rerun.stdout[-3000:]}\n{rerun.stderr[-3000:]}"

    rows = board.read()
    models = rows.loc[rows["kind"] == "model"]
    assert rows["cell_key"].is_unique, "a cell was recorded twice"
    assert len(models) == CELLS and (rows["kind"] == "baseline").sum() == 1
    assert done_before <= set(models["cell_key"])  # finished cells kept their rows, not trained again
    runs = mlflow_runs(settings)
    statuses = Counter(r.info.status for r in runs)
    assert statuses["RUNNING"] == 0, [(r.info.run_name, r.data.tags.get("tlbench.kind")) for r in runs
                                      if r.info.status == "RUNNING"]
    cells = [r for r in runs if r.data.tags.get("tlbench.kind") == "cell"]
    finished = Counter(r.data.tags["tlbench.cell_key"] for r in cells if r.info.status == "FINISHED")
    assert set(finished) == set(models["cell_key"]) and set(finished.values()) == {1}, finished
    assert set(models["mlflow_run_id"]) == {r.info.run_id for r in cells if r.info.status == "FINISHED"}
    assert {r.info.status for r in cells} <= {"FINISHED", "KILLED"}
    grids = sorted(r.info.status for r in runs if r.data.tags.get("tlbench.kind") == "grid")
    assert grids == ["FINISHED", "KILLED"], grids  # the killed grid's parent closed by the rerun
    print(f"\nkilled after {len(done_before)}/{CELLS} cells; rerun trained {CELLS - len(done_before)}; "
          f"MLflow runs: {dict(statuses)}")
