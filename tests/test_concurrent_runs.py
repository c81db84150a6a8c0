"""Two runs at once on one results folder and one MLflow store, in real processes.

Two processes opening one new SQLite store at once both get a working store (MLflow creates its
schema without a lock: ``table runs already exists`` before ``tracker.open_client``'s lock). Two
identical ``tlbench run --engine local`` commands started at the same moment, on a fresh store and
on an existing one, train and record every cell once: one leaderboard row per key, one FINISHED
MLflow run per cell key, nothing left RUNNING, no lease left behind; the command that did not run
the grid either found it finished or said that it was already running (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from benchmark.results.leaderboard import Leaderboard

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "tlbench-smoke"
GRID = ["target_sizes=[240]", "modes=[scratch]", "training.max_epochs=1", "baselines=[naive]",
        "split.test_size=48", "model.units=8"]
#: A process that waits for ``<root>/go`` (after its imports), then opens the store and uses it.
OPEN_STORE = """
import pathlib, sys, time
from benchmark.spec.settings import Settings
from benchmark.tracking.tracker import Tracker
root = pathlib.Path(sys.argv[1]); (root / f"ready-{sys.argv[2]}").touch()
while not (root / "go").exists():
    time.sleep(0.005)
tracker = Tracker(Settings(results=str(root / "results"), mlflow_dir=root / "mlflow").resolved(), "tlbench-race")
tracker.end_run(tracker.start_run(f"opened-by-{sys.argv[2]}", "probe", {}, {}))
"""


def start_together(commands: list[list[str]], root: Path, env: dict | None = None) -> list[subprocess.CompletedProcess]:
    """Run ``commands`` as processes that start their work at the same moment (each waits for
    ``root/go`` once its imports are done), and wait for all of them."""
    procs = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for c in commands]
    deadline = time.monotonic() + 120
    while len(list(root.glob("ready-*"))) < len(procs) and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.01)
    (root / "go").touch()
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    return [subprocess.CompletedProcess(p.args, p.returncode, out) for p, out in zip(procs, outputs)]


def test_processes_creating_one_new_sqlite_store_at_once_all_get_a_working_store(tmp_path):
    from mlflow.tracking import MlflowClient

    done = start_together([[sys.executable, "-c", OPEN_STORE, str(tmp_path), str(i)] for i in range(2)], tmp_path)
    assert [d.returncode for d in done] == [0, 0], "\n".join(d.stdout[-2000:] for d in done)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tlbench-race")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["opened-by-0", "opened-by-1"]


#: ``tlbench run`` once its imports are done: waits for ``<root>/go``, then runs the CLI.
TLBENCH_RUN = """
import pathlib, sys, time
import benchmark.cli, benchmark.run.grid
root = pathlib.Path(sys.argv[1]); (root / f"ready-{sys.argv[2]}").touch()
while not (root / "go").exists():
    time.sleep(0.005)
sys.exit(benchmark.cli.main(sys.argv[3:]))
"""


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_the_same_grid_run_twice_at_once_trains_and_records_every_cell_once(settings, tmp_path):
    """Round 1 on a fresh store (the store and the grid race), round 2 on the store round 1 left
    (a grid with another seed: only the grids race)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "TLBENCH_"))}
    env.update(settings.to_env(), TF_CPP_MIN_LOG_LEVEL="2")
    for round_, seed in enumerate([0, 1]):
        folder = tmp_path / f"round-{round_}"
        folder.mkdir()
        command = ["run", "--engine", "local", "--profile", "smoke"]
        command += [a for item in [*GRID, f"seeds=[{seed}]"] for a in ("--set", item)]
        t0 = time.monotonic()
        done = start_together([[sys.executable, "-c", TLBENCH_RUN, str(folder), str(i), *command] for i in range(2)],
                              folder, env)
        logs = "\n---\n".join(d.stdout[-3000:] for d in done)
        assert sorted(d.returncode for d in done) in ([0, 0], [0, 2]), logs
        refused = [d.stdout for d in done if d.returncode == 2]
        for out in refused:  # the second command said who runs the grid
            assert "is already running on this results folder" in out, out[-3000:]
            assert "since " in out and "started by " in out and "Wait for it to finish" in out, out[-3000:]
        assert_every_cell_once(settings, cells=round_ + 1)
        print(f"\n{'existing' if round_ else 'fresh'} store: the second command "
              f"{'was refused' if refused else 'found the grid done'}; both commands {time.monotonic() - t0:.1f} s")


def assert_every_cell_once(settings, cells: int) -> None:
    """One leaderboard row per key, one FINISHED MLflow run per cell key (none superseded),
    nothing RUNNING, no lease left."""
    from mlflow.tracking import MlflowClient

    rows = Leaderboard(settings.results).read()
    assert rows["cell_key"].is_unique and Counter(rows["kind"]) == {"model": cells, "baseline": 1}
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id], max_results=100)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    finished = Counter(r.data.tags.get("tlbench.cell_key") for r in runs
                       if r.data.tags.get("tlbench.kind") == "cell" and r.info.status == "FINISHED")
    assert finished == Counter(rows.loc[rows["kind"] == "model", "cell_key"]), finished
    assert not [r.info.run_name for r in runs if r.data.tags.get("tlbench.superseded")]
    assert {r.info.status for r in runs if r.data.tags.get("tlbench.kind") == "grid"} == {"FINISHED"}
    assert list((Path(settings.results) / "leases").iterdir()) == []  # given back
