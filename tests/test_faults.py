"""Faults a nightly run meets when nobody watches, caused for real: leaderboard files truncated or
replaced by garbage, an MLflow server that is stopped mid-grid and restarted, or never comes back,
or was never there. Each test checks what the user sees and that a rerun ends with every cell
exactly once (one leaderboard row, one FINISHED MLflow run, nothing left RUNNING)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from benchmark.results.leaderboard import Leaderboard
from benchmark.run.engines import LocalEngine
from benchmark.run.grid import run_grid
from benchmark.spec.profiles import load_grid
from benchmark.spec.settings import Settings, apply_mlflow_http_policy
from benchmark.tracking.tags import TAG_CELL_KEY, TAG_KIND
from benchmark.tracking.tracker import Tracker, open_client

TINY = ["target_sizes=[120]", "split.test_size=48", "model.units=8", "training.max_epochs=2",
        "modes=[scratch]", "baselines=[naive]"]
HTTP_ENV = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "MLFLOW_HTTP_REQUEST_TIMEOUT")


@pytest.fixture(autouse=True)
def restore_mlflow_http_env(monkeypatch):
    """The edges hand the retry policy to MLflow through these variables
    (``apply_mlflow_http_policy``); put them back as they were after each test."""
    for name in HTTP_ENV:
        monkeypatch.setenv(name, os.environ.get(name, "0"))
        monkeypatch.delenv(name)


def model_keys(result) -> set[str]:
    return {o.cell_key for o in result.outcomes if "baseline/" not in o.label}


# ------------------------------------------------------------------ broken leaderboard files


def test_truncated_and_garbage_leaderboard_files_are_reported_and_only_the_lost_cell_reruns(settings, capsys):
    from benchmark.cli import main

    spec = load_grid("smoke", TINY + ["seeds=[0]"])
    first = run_grid(spec, settings, LocalEngine(1))
    assert first.counts() == {"finished": 2}  # the cell and the naive baseline
    board = Leaderboard(settings.results)
    rows = board.read()
    # The grid compacted its partition into one file and archived the per-cell files it merged.
    # Put those back as the only copies (the layout while a grid runs, or in pool mode before
    # compaction; test_ledger_repair.py shows that the archive recovers every row), so that
    # truncating one file loses exactly one cell's row.
    cells_dir = Path(settings.results) / "cells"
    shutil.rmtree(cells_dir)
    (Path(settings.results) / "archive" / "cells").rename(cells_dir)
    for manifest in cells_dir.rglob("*.json"):
        manifest.unlink()
    shutil.rmtree(Path(settings.results) / "archive")
    written = sorted(cells_dir.rglob("*.parquet"))
    assert len(written) == len(rows)
    lost = rows.loc[rows["kind"] == "model", "cell_key"].item()
    victim = next(p for p in written if p.name.startswith(lost))
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # a crash or a full disk mid-copy
    garbage = victim.with_name("garbage-0badf00d.parquet")
    garbage.write_bytes(os.urandom(3000))

    after = board.read()
    assert list(after["kind"]) == ["baseline"]  # the baseline's own file is intact
    reasons = {Path(path).name: reason for path, reason in board.skipped}
    assert set(reasons) == {victim.name, garbage.name}
    assert all(reason.startswith("unreadable") for reason in reasons.values())

    assert main(["leaderboard", "--results", settings.results]) == 0
    err = capsys.readouterr().err
    assert f"skipped unreadable file {victim}" in err and f"skipped unreadable file {garbage}" in err

    second = run_grid(spec, settings, LocalEngine(1))
    assert second.counts() == {"skipped": 1, "finished": 1}
    assert [o.cell_key for o in second.outcomes if o.status == "finished"] == [lost]
    final = board.read()
    assert len(final) == 2 and final["cell_key"].is_unique
    assert set(final["cell_key"]) == {o.cell_key for o in first.outcomes}
    new_run = final.loc[final["cell_key"] == lost, "mlflow_run_id"].item()
    assert new_run == next(o.mlflow_run_id for o in second.outcomes if o.status == "finished")

    # the rerun moved the bad files out of cells/ first, kept for a post-mortem
    quarantine = Path(settings.results) / "quarantine" / "cells"
    assert {p.name for p in quarantine.rglob("*.parquet")} == {victim.name, garbage.name}
    assert not victim.exists() and not garbage.exists()
    assert len(board.read()) == 2 and board.skipped == []
    assert board.quarantine() == []  # nothing left to move
    assert run_grid(spec, settings, LocalEngine(1)).counts() == {"skipped": 2}


def test_close_stale_runs_finishes_the_committed_run_and_kills_the_others(settings):
    """The run a leaderboard row names logged everything before the row was written: left
    RUNNING (or FAILED, when only its last status update failed), it becomes FINISHED; any other
    RUNNING run of the cell is KILLED."""
    tracker = Tracker(settings, "reconcile")
    key = "cell-abc"
    committed, orphan, failed = (tracker.start_run(f"r{i}", "cell", {TAG_CELL_KEY: key}, {}) for i in range(3))
    tracker.end_run(failed, "FAILED", error="boom")
    assert tracker.close_stale_runs(key, committed_run_id=committed) == 2
    status = {r.info.run_id: r.info.status for r in tracker.runs_for_cell(key)}
    assert status == {committed: "FINISHED", orphan: "KILLED", failed: "FAILED"}
    assert "leaderboard row" in tracker.get_run(committed).data.tags["tlbench.reconciled"]
    assert tracker.close_stale_runs(key, committed_run_id=committed) == 0  # idempotent
    other = "cell-def"
    late = tracker.start_run("late", "cell", {TAG_CELL_KEY: other}, {})
    tracker.end_run(late, "FAILED", error="status update lost")
    assert tracker.close_stale_runs(other, committed_run_id=late) == 1
    assert tracker.get_run(late).info.status == "FINISHED"


# ------------------------------------------------------------------ MLflow unreachable


def test_the_retry_policy_reaches_mlflow_and_an_absent_server_fails_within_its_budget(tmp_path):
    """Nothing listens on the port: every request is refused at once, so the time a request
    takes is MLflow's backoff alone, which shows the policy from Settings is the one applied."""
    from mlflow.exceptions import MlflowException

    from tests._services import free_port

    url = f"http://127.0.0.1:{free_port()}"
    timings = {}
    for retries in (0, 3):
        settings = Settings(results=str(tmp_path / "results"), tracking_uri=url, mlflow_dir=tmp_path / "mlflow",
                            mlflow_max_retries=retries, mlflow_backoff_factor=1, mlflow_timeout=5).resolved()
        started = time.monotonic()
        with pytest.raises(MlflowException, match="127.0.0.1") as info:
            apply_mlflow_http_policy(settings)  # what the edge (CLI, flow) does once
            open_client(settings.tracking_uri).get_experiment_by_name("unreachable")  # one request
        timings[retries] = time.monotonic() - started
        assert timings[retries] < settings.mlflow_retry_budget_seconds()
        assert "Max retries exceeded" in str(info.value)
    print(f"refused request: {timings[0]:.1f} s without retries, {timings[3]:.1f} s with 3 (factor 1)")
    assert timings[0] < 2.0
    assert timings[3] >= 5.5  # waits 0 + 2 + 4 s (+ jitter): the backoff really ran


def test_a_server_that_accepts_but_never_answers_fails_within_its_budget(tmp_path):
    """A hung server (a real loopback socket that takes connections and never replies): each
    attempt ends at ``mlflow_timeout``, so the request fails within the budget, never hangs."""
    import socket

    from mlflow.exceptions import MlflowException

    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)  # the kernel completes the handshakes; nobody ever reads or answers
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        settings = Settings(results=str(tmp_path / "results"), tracking_uri=url, mlflow_dir=tmp_path / "mlflow",
                            mlflow_max_retries=1, mlflow_backoff_factor=1, mlflow_timeout=2).resolved()
        started = time.monotonic()
        with pytest.raises(MlflowException, match="127.0.0.1"):
            apply_mlflow_http_policy(settings)
            open_client(settings.tracking_uri).get_experiment_by_name("hung")  # one request
        elapsed = time.monotonic() - started
    print(f"hung server: failed after {elapsed:.1f} s (budget {settings.mlflow_retry_budget_seconds():.0f} s)")
    assert 3.5 <= elapsed <= settings.mlflow_retry_budget_seconds()  # two attempts of 2 s each


def test_a_tracker_waits_for_an_absent_server_up_to_its_bound_then_says_so_in_one_line(tmp_path):
    """``tracking_wait_seconds``: the tracker tries again until the server has been silent that
    long, then raises one line (which server, how long, the setting, what to do); later calls of
    the process fail at once, until a new grid run forgets the outage."""
    from benchmark.tracking.outage import TrackingUnavailable
    from tests._services import free_port

    settings = Settings(results=str(tmp_path / "results"), tracking_uri=f"http://127.0.0.1:{free_port()}",
                        mlflow_dir=tmp_path / "mlflow", mlflow_max_retries=0, tracking_wait_seconds=3).resolved()
    apply_mlflow_http_policy(settings)
    tracker = Tracker(settings, "absent")
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable) as info:
        tracker.ensure_store()
    waited = time.monotonic() - started
    assert 3 <= waited < 3 + 2 and "\n" not in str(info.value)
    assert settings.tracking_uri in str(info.value) and "TLBENCH_TRACKING_WAIT_S=3" in str(info.value)
    assert "Start it again" in str(info.value)
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable):
        Tracker(settings, "absent").ensure_store()  # a cell after the first: no second wait
    assert time.monotonic() - started < 0.5
    tracker.forget_outage()  # a new run of a grid tries again
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable):
        tracker.ensure_store()
    assert time.monotonic() - started >= 3


def test_settings_read_and_export_the_retry_policy():
    settings = Settings.from_env({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"})
    assert (settings.mlflow_max_retries, settings.mlflow_backoff_factor, settings.mlflow_timeout) == (4, 1, 30)
    assert settings.to_env()["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "4"
    # waits 0, 2, 4, 8 s (+1 s jitter each) and 5 attempts of at most 30 s
    assert settings.mlflow_retry_budget_seconds() == pytest.approx(14 + 4 + 5 * 30)
    defaults = Settings()
    assert (defaults.mlflow_max_retries, defaults.mlflow_backoff_factor) == (7, 2)  # MLflow's own defaults


# ------------------------------------------------------------------ MLflow server stopped mid-grid


def _grid_in_thread(spec, settings) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def target():
        try:
            box["result"] = run_grid(spec, settings, LocalEngine(1))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc
        box["ended"] = time.monotonic()

    thread = threading.Thread(target=target, name="grid-under-fault", daemon=True)
    thread.start()
    return thread, box


def _wait_for_model_rows(results: str, baseline_rows: int, thread: threading.Thread, timeout: float) -> None:
    """Until at least one model cell has its row (the baseline row comes first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(Leaderboard(results).finished_keys()) > baseline_rows:
            return
        if not thread.is_alive():
            raise AssertionError("the grid ended before any cell finished")
        time.sleep(0.2)
    raise AssertionError(f"no cell finished within {timeout} s")


def _assert_each_cell_exactly_once(settings: Settings, experiment: str, result, stale_grid_runs: int = 0) -> None:
    """One leaderboard row per cell and baseline of ``result``; one FINISHED MLflow run per model
    cell (baselines have no run); no run left RUNNING but ``stale_grid_runs`` parent runs of grids
    that crashed; every row's run complete."""
    from mlflow.tracking import MlflowClient

    rows = Leaderboard(settings.results).read()
    assert rows["cell_key"].is_unique and set(rows["cell_key"]) == {o.cell_key for o in result.outcomes}
    expected_keys = model_keys(result)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    running = [r for r in runs if r.info.status == "RUNNING"]
    assert [(r.info.run_name, r.data.tags.get(TAG_KIND)) for r in running if r.data.tags.get(TAG_KIND) != "grid"] == []
    assert len(running) == stale_grid_runs, [r.info.run_name for r in running]
    cell_runs = [r for r in runs if r.data.tags.get(TAG_KIND) == "cell"]
    for key in expected_keys:
        finished = [r for r in cell_runs if r.data.tags.get(TAG_CELL_KEY) == key and r.info.status == "FINISHED"]
        assert len(finished) == 1, f"cell {key}: {len(finished)} FINISHED runs"
    # nothing half-logged counts as done: every row's run is FINISHED with its metrics and model
    for row in rows.loc[rows["kind"] == "model"].itertuples():
        run = client.get_run(row.mlflow_run_id)
        assert run.info.status == "FINISHED" and "mase" in run.data.metrics
        assert [o.model_id for o in run.outputs.model_outputs] == [row.model_uri.removeprefix("models:/")]


@pytest.mark.e2e
def test_mlflow_server_restarted_mid_grid_is_waited_out_and_every_cell_ends_exactly_once(tmp_path, data_dir):
    from tests._services import MlflowServer

    server = MlflowServer(tmp_path / "server").start()
    try:
        settings = Settings(data_dir=data_dir, results=str(tmp_path / "results"), tracking_uri=server.url,
                            mlflow_dir=tmp_path / "mlflow", experiment="faults-restart", allow_download=False,
                            mlflow_max_retries=7, mlflow_backoff_factor=1, mlflow_timeout=30).resolved()
        apply_mlflow_http_policy(settings)
        spec = load_grid("smoke", TINY + ["seeds=[0, 1, 2, 3]"])
        t0 = time.monotonic()
        thread, box = _grid_in_thread(spec, settings)
        _wait_for_model_rows(settings.results, 1, thread, timeout=240)
        stopped_at = time.monotonic()
        server.stop()  # SIGTERM, by process group id
        assert not server.is_up()
        time.sleep(3)
        server.start()  # same port, same store
        back_at = time.monotonic()
        assert thread.is_alive(), "the grid finished during the outage: the fault hit nothing"
        thread.join(300)
        assert not thread.is_alive(), "the grid hung after the server came back"
        print(f"\noutage {back_at - stopped_at:.1f} s; grid {box['ended'] - t0:.1f} s in all, "
              f"{box['ended'] - back_at:.1f} s after the restart")
        assert "error" not in box, f"the grid failed: {box.get('error')!r}"
        result = box["result"]
        assert result.counts() == {"finished": 5}, [(o.label, o.status, o.error) for o in result.outcomes]
        rerun = run_grid(spec, settings, LocalEngine(1))
        assert rerun.counts() == {"skipped": 5}
        _assert_each_cell_exactly_once(settings, "faults-restart", rerun)
    finally:
        server.stop()


@pytest.mark.e2e
def test_mlflow_server_that_never_comes_back_stops_the_grid_clearly_and_a_rerun_recovers(tmp_path, data_dir):
    """Issue 38 item 5: the grid stops within ``tracking_wait_seconds`` (plus one request's own
    retries and the cell in flight) with one line that names the server, the setting and what to
    do; the rerun, once the server is back, closes the grid's MLflow run and trains only the rest."""
    from benchmark.tracking.outage import TrackingUnavailable
    from tests._services import MlflowServer

    server = MlflowServer(tmp_path / "server").start()
    try:
        impatient = Settings(data_dir=data_dir, results=str(tmp_path / "results"), tracking_uri=server.url,
                             mlflow_dir=tmp_path / "mlflow", experiment="faults-gone", allow_download=False,
                             mlflow_max_retries=2, mlflow_backoff_factor=1, mlflow_timeout=10,
                             tracking_wait_seconds=20).resolved()
        apply_mlflow_http_policy(impatient)
        spec = load_grid("smoke", TINY + ["seeds=[0, 1, 2, 3]"])
        thread, box = _grid_in_thread(spec, impatient)
        _wait_for_model_rows(impatient.results, 1, thread, timeout=240)
        server.stop()
        stopped_at = time.monotonic()
        bound = impatient.tracking_wait_seconds + impatient.mlflow_retry_budget_seconds() + 30  # + a tiny cell
        thread.join(bound + 60)
        assert not thread.is_alive(), "the grid hangs on a server that is gone"
        waited = box["ended"] - stopped_at
        print(f"\nserver gone: the grid stopped {waited:.1f} s later (bound {bound:.0f} s): {box.get('error')}")
        assert "result" not in box, "the grid reported success without its tracking server"
        error = box["error"]
        assert isinstance(error, TrackingUnavailable) and waited <= bound
        assert "\n" not in str(error) and server.url.split("//")[1] in str(error)
        assert "did not answer for" in str(error) and "TLBENCH_TRACKING_WAIT_S=20" in str(error)
        done = Leaderboard(impatient.results).finished_keys()
        assert 2 <= len(done) < 5  # the baseline and at least one cell; not all

        server.start()  # the next night: the server is back
        patient = replace(impatient, mlflow_max_retries=7, mlflow_backoff_factor=2, mlflow_timeout=120,
                          tracking_wait_seconds=120)
        rerun = run_grid(spec, patient, LocalEngine(1))
        counts = rerun.counts()
        assert counts.get("failed", 0) == 0 and counts["skipped"] == len(done)
        assert counts["finished"] == 5 - len(done)  # exactly the cells without a row ran again
        _assert_each_cell_exactly_once(patient, "faults-gone", rerun)  # the gone grid's run is closed
    finally:
        server.stop()


# ------------------------------------------------------------------ a grid process killed outright


def test_a_grid_process_killed_mid_cell_leaves_nothing_running_after_the_rerun(settings, tmp_path):
    """SIGKILL to a whole `tlbench run --engine local` mid-cell: nothing can clean up in that
    process, so the rerun must. Its parent run and the half-trained cell's run end KILLED, the
    finished cells are not trained again, and every cell ends with one row and one FINISHED run."""
    import signal
    import subprocess
    import sys

    sets = TINY + ["seeds=[0, 1, 2]", "training.max_epochs=40", "training.patience=40"]
    env = {**os.environ, **settings.to_env(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "benchmark.cli", "run", "--engine", "local", "--profile", "smoke"]
    for item in sets:
        command += ["--set", item]
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    board = Leaderboard(settings.results)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and not len(board.read(kind="model")):
            time.sleep(0.3)
        assert proc.poll() is None, "the grid ended before it could be killed:\n" + (tmp_path / "killed.log").read_text()[-2000:]
        time.sleep(1.0)  # into the next cell
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        log.close()
    done_before = set(board.read(kind="model")["cell_key"])
    assert 1 <= len(done_before) < 3
    tracker = Tracker(settings, "tlbench-smoke")
    runs = tracker.client.search_runs([tracker.experiment_id])
    assert "RUNNING" in {r.info.status for r in runs}  # the killed process could not close them

    spec = load_grid("smoke", sets)
    result = run_grid(spec, settings, LocalEngine(1))
    assert {o.cell_key for o in result.outcomes if o.status == "skipped"} >= done_before
    rows = board.read(kind="model")
    assert rows["cell_key"].is_unique and len(rows) == 3
    runs = tracker.client.search_runs([tracker.experiment_id])
    assert "RUNNING" not in {r.info.status for r in runs}
    grids = [r for r in runs if r.data.tags.get(TAG_KIND) == "grid"]
    assert sorted(r.info.status for r in grids) == ["FINISHED", "KILLED"]
    cells = [r for r in runs if r.data.tags.get(TAG_KIND) == "cell"]
    finished = [r for r in cells if r.info.status == "FINISHED"]
    assert sorted(r.data.tags[TAG_CELL_KEY] for r in finished) == sorted(rows["cell_key"])
    assert {r.info.status for r in cells} <= {"FINISHED", "KILLED"}
