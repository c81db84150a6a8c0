"""The ``nightly`` flow (``flows/nightly.py``) end to end, two nights on one results folder: a tiny
grid YAML on a real ETTh1 slice, run through the real flow (its ``benchmark_grid`` subflow, MLflow
in SQLite, the Parquet leaderboard) on a real Prefect API (the test harness's own server, a
subprocess on 127.0.0.1 with a throwaway database).

Night 1 is the first run of the grid: nothing to compare, the flow run COMPLETES. Night 2 plants
a regression through a grid override (the same cells trained with a learning rate 10,000 times
smaller for one epoch: same group, new cell keys, so they train again): the flow run ends FAILED
naming the regression, and its table and markdown artifacts flag exactly that group."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

GRID_YAML = """\
name: nightly-tiny
targets:
  - source: ett
    options: {file: ETTh1, column: OT}
target_sizes: [240]
architectures: [lstm]
modes: [scratch]
seeds: [0]
baselines: [naive]
split: {lookback: 24, horizon: 1, test_size: 96, val_fraction: 0.2, season_length: 24}
model: {units: 8, layers: 1, head: dense, normalisation: global}  # untrained = far from naive
training: {optimizer: adam, learning_rate: 0.01, batch_size: 32, max_epochs: 12, patience: 12}
"""
# night 2: the planted regression (a model that barely moved from its random start)
REGRESSION = ["training.learning_rate=0.000001", "training.max_epochs=1"]
GROUP = {"target": "ett/ETTh1:OT", "target_size": 240, "architecture": "lstm · global", "mode": "scratch"}


@pytest.fixture(scope="module")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def artifacts_of(flow_run_id) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in found}


@pytest.mark.timeout(900)
def test_two_nights_the_second_with_a_planted_regression_fails_with_the_alert(prefect_api, settings, tmp_path,
                                                                             monkeypatch):
    from benchmark.results.leaderboard import Leaderboard
    from flows.nightly import nightly

    for name, value in settings.to_env().items():  # the flow reads its settings from the environment
        monkeypatch.setenv(name, value)
    grid = tmp_path / "nightly-tiny.yaml"
    grid.write_text(GRID_YAML)

    # ---- night 1: the first run of the grid, nothing to compare with
    first = nightly(grid=str(grid), return_state=True)
    assert first.type.value == "COMPLETED" and first.name == "Completed", first.message
    summary = first.result()
    assert summary["counts"] == {"finished": 2} and summary["compared_with"] is None
    assert summary["regressions"] == 0
    night1 = artifacts_of(first.state_details.flow_run_id)
    assert "**no comparison**" in night1["regression-summary"].data and "no earlier run" in night1["regression-summary"].data
    assert json.loads(night1["regression-check"].data) == []

    # ---- night 2: the same grid with the planted regression
    second = nightly(grid=str(grid), overrides=REGRESSION, return_state=True)
    board = Leaderboard(settings.results).read(grid="nightly-tiny", kind="model")
    assert board["run_id"].nunique() == 2 and len(board) == 2
    before, after = (board.sort_values("started_at")["mase"]).tolist()
    print(f"\nnight 1 mase {before:.4f}, night 2 (planted regression) {after:.4f}")
    assert after > 1.05 * before, f"the planted regression did not make the model worse: {before} -> {after}"

    assert second.type.value == "FAILED", (second.type, second.message)
    assert "1 regression(s) in mase" in second.message
    assert "ett/ETTh1:OT n=240 lstm · global/scratch" in second.message
    night2 = artifacts_of(second.state_details.flow_run_id)
    assert {"regression-check", "regression-summary"} <= set(night2)
    table = json.loads(night2["regression-check"].data)
    assert len(table) == 1 and table[0]["regressed"] is True
    assert {k: table[0][k] for k in GROUP} == GROUP
    assert table[0]["previous"] == pytest.approx(before, rel=1e-5)
    assert table[0]["current"] == pytest.approx(after, rel=1e-5)
    assert table[0]["change_pct"] > 5
    markdown = night2["regression-summary"].data
    assert "**1 regression(s)**" in markdown and "| ett/ETTh1:OT | 240 | lstm · global | scratch |" in markdown
    night1_run = summary["run_id"]
    assert f"compared with run `{night1_run}`" in markdown


@pytest.mark.timeout(300)
def test_a_grid_already_running_ends_its_flow_runs_cancelled_naming_the_holder(prefect_api, settings, tmp_path,
                                                                               monkeypatch):
    """A second trigger of a running grid (its lease held) ends Cancelled at once with the message,
    as ``benchmark_grid`` and as ``nightly`` (not a silent success, not a red failure), and
    ``tlbench run --engine prefect`` (``launch``) raises the error the CLI prints."""
    from benchmark.run.lease import GridAlreadyRunning, acquire
    from benchmark.run.plan import plan_grid
    from benchmark.spec.profiles import load_grid
    from flows.grid import benchmark_grid, launch
    from flows.nightly import nightly

    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    grid = tmp_path / "nightly-tiny.yaml"
    grid.write_text(GRID_YAML)
    plan = plan_grid(load_grid(str(grid), []), settings)
    with acquire(settings, plan.spec.name, plan.grid_id):
        alone = benchmark_grid(grid=str(grid), settings=settings.to_plain(), return_state=True)
        night = nightly(grid=str(grid), return_state=True)
        with pytest.raises(GridAlreadyRunning, match="is already running on this results folder"):
            launch(str(grid), [], settings)
    for state in (alone, night):
        assert state.type.value == "CANCELLED", (state.type, state.message)
        assert state.message.startswith("grid 'nightly-tiny' (id ") and "started by " in state.message
    assert not (settings.mlflow_dir / "mlflow.db").exists()  # refused before MLflow was opened
