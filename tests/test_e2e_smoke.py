"""End to end: the smoke grid on a tiny slice of the real data, through the installed ``tlbench``
command as ``make run`` calls it (Prefect in-process on its ephemeral API, two worker processes),
MLflow in SQLite and the Parquet leaderboard. Then the same grid again: nothing retrains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TINY = ["--set", "target_sizes=[120, 240]", "--set", "split.test_size=96",
        "--set", "model.units=8", "--set", "training.max_epochs=2",
        "--set", "pretrain.max_series=8", "--set", "pretrain.windows_per_series=50",
        "--set", "pretrain.training.max_epochs=1"]


def _tlbench(args, env, timeout=600):
    exe = Path(sys.executable).with_name("tlbench")
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("smoke")
    env = {**os.environ, "TLBENCH_DATA_DIR": str(data_dir), "TLBENCH_RESULTS": str(root / "results"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
           "TLBENCH_ARTIFACTS": (root / "artifacts").as_uri(), "TLBENCH_OFFLINE": "1",
           "PREFECT_HOME": str(root / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("PREFECT_API_URL", None)
    # the first run as `make run` runs it (two worker processes), the rerun one job at a time
    first = _tlbench(["run", "--profile", "smoke", "--concurrency", "2", *TINY], env)
    second = _tlbench(["run", "--profile", "smoke", *TINY], env)
    return root, env, first, second


def test_smoke_grid_runs_through_prefect_and_prints_the_leaderboard(smoke_run):
    root, env, first, _ = smoke_run
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]
    assert "20 finished" in first.stdout  # 6 cells + 2 sizes x 7 baselines
    # the summary names the baselines in its verdict, one line per size, and where things are
    verdicts = [line for line in first.stdout.splitlines() if line.startswith("verdict: ")]
    named = ("naive", "seasonal_naive", "naive2", "mean", "ets", "theta", "mstl")  # the smoke profile's baselines
    assert len(verdicts) == 2 and all(any(f" {name} " in line for name in named) for line in verdicts), first.stdout
    assert "report: " in first.stdout and "tlbench ui" in first.stdout
    log = Path(first.stdout.split("log: ", 1)[1].split()[0].rstrip(";"))
    text = log.read_text()
    # it ran as a Prefect flow (ephemeral API), not around it; the full table is in the run's log
    assert "benchmark-grid" in text and "seasonal_naive" in text and "finetune" in text


def test_the_reports_verdict_carries_the_test_of_the_best_model_against_the_best_baseline(smoke_run):
    root, env, first, _ = smoke_run
    report = Path(first.stdout.split("report: ", 1)[1].split()[0])
    verdict = report.read_text(encoding="utf-8").split("<ul class='verdict'>", 1)[1].split("</ul>", 1)[0]
    items = verdict.split("<li>")[1:]
    # one seed per cell in the smoke grid: the test is that seed's, against the baseline the sentence names
    assert len(items) == 2, verdict
    for item in items:
        named = item.split("Diebold-Mariano against ", 1)[1].split(",", 1)[0]
        assert f" {named} " in item.split(";", 1)[0] and "seed 0: Holm p " in item, item
        # a verdict against another baseline is tested against the naive forecast too, in the same sentence
        assert (named == "naive") != ("; Diebold-Mariano against naive (MASE " in item), item


def test_leaderboard_holds_one_row_per_cell_plus_baselines(smoke_run):
    from benchmark.results.leaderboard import Leaderboard

    root, env, _, _ = smoke_run
    rows = Leaderboard(str(root / "results")).read()
    models = rows[rows["kind"] == "model"]
    baselines = rows[rows["kind"] == "baseline"]
    assert len(models) == 6 and models["cell_key"].is_unique
    assert set(models["mode"]) == {"scratch", "frozen", "finetune"}
    assert set(models["target_size"]) == {120, 240}
    assert set(models["architecture"]) == {"lstm"}
    assert len(baselines) == 14
    assert set(baselines["mode"]) == {"naive", "seasonal_naive", "naive2", "mean", "ets", "theta", "mstl"}
    for column in ("mse", "mae", "mape", "mase", "smape", "rmse"):
        assert np.isfinite(rows[column]).all(), column
    assert (models["train_seconds"] > 0).all()
    assert models["mlflow_run_id"].notna().all()
    # the same network in every mode: equal total parameter counts, only trainability differs
    totals = models["trainable_params"] + models["frozen_params"]
    assert totals.nunique() == 1
    frozen = models[models["mode"] == "frozen"]
    assert (frozen["frozen_params"] > 0).all()
    assert (models[models["mode"] != "frozen"]["frozen_params"] == 0).all()
    assert (root / "results" / "leaderboard.parquet").is_file()


def test_mlflow_holds_the_run_tree_and_models_that_round_trip(smoke_run):
    import mlflow
    import mlflow.keras
    from mlflow.tracking import MlflowClient

    from benchmark.results.leaderboard import Leaderboard

    root, env, _, _ = smoke_run
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("tlbench-smoke")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    kinds = {}
    for run in runs:
        kinds.setdefault(run.data.tags["tlbench.kind"], []).append(run)
    assert len(kinds["grid"]) == 1  # the rerun of the finished grid is answered from the ledger
    assert len(kinds["pretrain"]) == 1  # reused by the rerun, never trained twice
    assert len(kinds["cell"]) == 6  # the rerun trained nothing
    assert all(r.info.status == "FINISHED" for r in runs)
    first_parent = [r for r in kinds["grid"] if r.info.run_id == kinds["cell"][0].data.tags["mlflow.parentRunId"]]
    assert first_parent, "cells are children of the grid run"
    cell = kinds["cell"][0]
    assert {"architecture", "mode", "target", "target_size", "seed", "tlbench.cell_key",
            "tlbench.grid_id", "package_version", "worker_host", "device"} <= set(cell.data.tags)
    assert len(client.get_metric_history(cell.info.run_id, "val_loss")) >= 1
    artifacts = {a.path for a in client.list_artifacts(cell.info.run_id)}
    assert {"forecast.png", "learning_curve.png", "predictions.parquet"} <= artifacts
    assert [client.get_logged_model(o.model_id).name for o in cell.outputs.model_outputs] == ["model"]

    # the logged model reproduces the logged predictions
    import pandas as pd

    from benchmark.data.loading import load_data
    from benchmark.data.splits import make_cell_data
    from benchmark.spec.profiles import load_grid
    from benchmark.spec.settings import Settings

    rows = Leaderboard(str(root / "results")).read(kind="model")
    row = rows.iloc[0]
    import benchmark.models  # noqa: F401 - registers tlbench's custom layers (WindowNorm) with Keras

    model = mlflow.keras.load_model(row["model_uri"])
    spec = load_grid("smoke", [TINY[i + 1] for i in range(0, len(TINY), 2)])
    settings = Settings(data_dir=Path(env["TLBENCH_DATA_DIR"]))
    data = make_cell_data(load_data(spec.targets[0], settings), int(row["target_size"]), spec.split,
                          "ett/ETTh1:OT")
    local = client.download_artifacts(row["mlflow_run_id"], "predictions.parquet", str(root))
    logged = pd.read_parquet(local)["y_pred"].to_numpy()
    again = data.scaler.inverse_transform(model.predict(data.x_test, verbose=0)).reshape(-1)
    np.testing.assert_allclose(again, logged, rtol=1e-5, atol=1e-5)


def test_rerun_retrains_nothing(smoke_run):
    _, _, _, second = smoke_run
    assert second.returncode == 0, second.stderr[-5000:]
    assert "6 cells, 6 already finished" in second.stdout  # answered from the ledger, nothing started
    summary = second.stdout.split("grid smoke run", 1)[1].split("\n")[0]
    assert "6 skipped" in summary and "finished" not in summary


def test_leaderboard_json_lists_rows(smoke_run):
    root, env, _, _ = smoke_run
    out = _tlbench(["leaderboard", "--json"], env, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 20  # 6 cells + 2 sizes x 7 baselines
    assert {"mode", "mlflow_run_id", "target_size", "architecture", "mase"} <= set(rows[0])


def test_leaderboard_opens_with_the_verdict_that_names_the_baselines(smoke_run):
    root, env, first, _ = smoke_run
    out = _tlbench(["leaderboard"], env, timeout=120)
    assert out.returncode == 0, out.stderr
    verdicts = [line for line in out.stdout.splitlines() if line.startswith("verdict: ")]
    assert len(verdicts) == 2 and all(line in first.stdout for line in verdicts)
    assert out.stdout.index("verdict: ") < out.stdout.index("baseline")  # before the table
