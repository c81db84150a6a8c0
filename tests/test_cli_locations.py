"""Where a user's data goes: ``tlbench run --data-dir D --results R --tracking-uri U`` reads from D
and writes only to R and U, on every engine, even when the environment and the working folder
say otherwise (issue 27: the Prefect engine's flow once replaced the CLI's values with its own
``None`` parameters and wrote to ./results and ./mlflow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

#: A grid of one scratch cell at one size plus the baselines: seconds of training.
TINY = ["--profile", "smoke", "--set", "modes=[scratch]", "--set", "target_sizes=[120]",
        "--set", "split.test_size=48", "--set", "model.units=4", "--set", "training.max_epochs=1",
        "--set", "baselines=[naive]"]


@pytest.mark.parametrize("engine", ["local", "prefect"])
def test_run_reads_and_writes_exactly_where_its_options_say(engine, data_dir, tmp_path):
    from benchmark.results.leaderboard import Leaderboard

    cwd, decoy = tmp_path / "cwd", tmp_path / "decoy"
    cwd.mkdir()
    (decoy / "data").mkdir(parents=True)  # the environment's data folder holds no data at all
    chosen_results, chosen_db = tmp_path / "chosen" / "results", tmp_path / "chosen" / "store" / "m.db"
    env = {**os.environ, "TLBENCH_DATA_DIR": str(decoy / "data"),
           "TLBENCH_RESULTS": str(decoy / "results"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{decoy / 'mlflow.db'}", "TLBENCH_OFFLINE": "1",
           "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120", "TF_CPP_MIN_LOG_LEVEL": "2"}
    for name in ("PREFECT_API_URL", "TLBENCH_ARTIFACTS", "TLBENCH_EXPERIMENT"):
        env.pop(name, None)
    exe = Path(sys.executable).with_name("tlbench")
    done = subprocess.run([str(exe), "run", "--engine", engine, *TINY, "--data-dir", str(data_dir),
                           "--results", str(chosen_results), "--tracking-uri", f"sqlite:///{chosen_db}"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # --data-dir: the decoy folder is empty and downloads are off, so only D could have served data
    # --results: the rows are in R, and nothing is in the environment's results or ./results
    rows = Leaderboard(str(chosen_results)).read()
    assert set(rows["kind"]) == {"model", "baseline"}, rows[["kind"]].value_counts()
    assert not (decoy / "results").exists() and not (cwd / "results").exists()
    # --tracking-uri: the runs are in U, whose folder also holds the artifacts; no ./mlflow, and
    # the environment's store was never created
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{chosen_db}")
    experiments = [e for e in client.search_experiments() if e.name != "Default"]
    runs = client.search_runs([e.experiment_id for e in experiments])
    assert runs and all(run.info.status == "FINISHED" for run in runs)
    assert all(e.artifact_location.startswith((chosen_db.parent / "artifacts").as_uri())
               for e in experiments), [e.artifact_location for e in experiments]
    assert not (decoy / "mlflow.db").exists() and not (cwd / "mlflow").exists()
    # what the CLI prints is where things went
    assert f"leaderboard: {chosen_results} " in done.stdout
    assert f"store sqlite:///{chosen_db}" in done.stdout
