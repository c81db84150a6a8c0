"""Pool mode without a server: cell jobs as flow-run parameters, the parent's bounded wait on its
child runs (a dead worker's run is marked CRASHED, a run nobody picks up is CANCELLED at the
deadline), outcomes taken from the leaderboard ledger, and the flows' parameter forms.
The real server, workers and kills are in ``test_prefect_pool.py``."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest
from prefect.states import Completed, Running, Scheduled

from benchmark.run.jobs import CellJob, RunContext, expand
from benchmark.spec.errors import SpecError, TlbenchError
from benchmark.spec.profiles import load_grid
from flows.cell import WORKER_LABEL, jobs_from_plain, jobs_to_plain
from flows.executions import make_engine
from flows.pool import PoolEngine, _Child
from flows.remote import LOST_AFTER_S, Heartbeats

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTEXT = RunContext("smoke", "gid", "20240501T000000-abcdef", "2024-05-01", "tlbench-smoke", None, None)


def cell_jobs(n: int) -> list[CellJob]:
    cells = expand(load_grid("smoke", ["seeds=[0,1,2,3]"]))[:n]
    return [CellJob(cell, f"key{i}", "fp", CONTEXT) for i, cell in enumerate(cells)]


# ------------------------------------------------------------------ jobs as parameters


def test_cell_jobs_round_trip_through_json():
    jobs = cell_jobs(3)
    plain = json.loads(json.dumps(jobs_to_plain(jobs)))  # what a flow-run parameter carries
    assert jobs_from_plain(plain) == jobs


def test_a_malformed_job_names_its_path():
    plain = jobs_to_plain(cell_jobs(2))
    plain[1]["cell"]["target_size"] = "big"
    with pytest.raises(SpecError, match=r"jobs\[1\]\.cell\.target_size: expected an integer"):
        jobs_from_plain(plain)


# ------------------------------------------------------------------ the bounded wait


class FakeClient:
    """The few Prefect client calls PoolEngine._wait makes, over scripted flow runs.

    Kept only for the edge cases a real server cannot produce on demand: a worker heartbeat frozen
    at a known time with a known interval (the exact staleness rule, in milliseconds instead of
    three missed real heartbeats), a RUNNING child whose worker is missing from the pool's worker
    list, a RUNNING child with no worker label (a worker that died before labelling its run), and
    an API error on exactly the first poll. The common crash, a SIGKILLed worker whose child run is
    marked CRASHED, its MLflow run KILLED and the parent FAILED, runs on a real server with real
    workers in ``test_prefect_pool.py::test_a_worker_killed_mid_cell_...`` (in ``make test``)."""

    def __init__(self, runs: dict, workers: list):
        self.runs = runs  # id -> SimpleNamespace(id, state, labels) or a callable(poll) -> that
        self.workers = workers
        self.set_states: list[tuple] = []
        self.polls = 0

    def read_flow_runs(self, flow_run_filter, limit):
        self.polls += 1
        wanted = flow_run_filter.id.any_
        out = []
        for run_id in wanted:
            run = self.runs[run_id]
            out.append(run(self.polls) if callable(run) else run)
        return out

    def read_workers_for_work_pool(self, pool, limit):
        return [w(self.polls) if callable(w) else w for w in self.workers]

    def read_flow_run(self, run_id):  # the fresh look the parent takes before ending a child
        run = self.runs[run_id]
        return run(self.polls) if callable(run) else run

    def set_flow_run_state(self, run_id, state, force=False):
        self.set_states.append((run_id, state.type.value, force, state.message))
        self.runs[run_id] = SimpleNamespace(id=run_id, state=state, labels={})


def child(jobs=None) -> _Child:
    return _Child(uuid.uuid4(), f"cells-{uuid.uuid4().hex[:4]}", jobs or [])


def worker(name: str, interval: float = 0.05) -> SimpleNamespace:
    frozen_heartbeat = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    return SimpleNamespace(name=name, last_heartbeat_time=frozen_heartbeat,
                           heartbeat_interval_seconds=interval, status=SimpleNamespace(value="ONLINE"))


def test_a_running_child_whose_worker_stopped_heartbeating_is_marked_crashed_long_before_the_deadline():
    dead, done = child(), child()
    client = FakeClient({
        dead.flow_run_id: SimpleNamespace(id=dead.flow_run_id, state=Running(), labels={WORKER_LABEL: "w1"}),
        done.flow_run_id: lambda poll: SimpleNamespace(
            id=done.flow_run_id, state=Completed() if poll > 2 else Running(), labels={WORKER_LABEL: "w2"}),
    }, [worker("w1"), SimpleNamespace(**{**vars(worker("w2")), "heartbeat_interval_seconds": 60})])
    engine = PoolEngine(batch_size=1, timeout_s=30, poll_s=0.02, lost_after_s=0.1)
    t0 = time.monotonic()
    engine._wait(client, [dead, done], "gpu", 2)
    assert time.monotonic() - t0 < 5
    assert [(s[0], s[1], s[2]) for s in client.set_states] == [(dead.flow_run_id, "CRASHED", True)]
    assert "w1" in client.set_states[0][3] and "stopped heartbeating" in client.set_states[0][3]
    assert dead.final and dead.state_name == "CRASHED"
    assert done.final and done.state_name == "COMPLETED"


def test_a_live_worker_late_by_many_intervals_or_marked_offline_is_not_lost_before_lost_after_s():
    """Under load a live worker's heartbeat can be a minute late and Prefect's foreman marks it
    OFFLINE after 3 late intervals: neither may end its run (its cells would fail while training).
    Lost means silent for 3 intervals *and* ``lost_after_s`` (120 s by default: a 30 s stall of the server's writes silenced a live worker
    for 65 s)."""
    beats = Heartbeats()
    assert beats.lost_after_s == LOST_AFTER_S == 120.0

    def seen(heartbeat_at: float, status: str = "ONLINE") -> SimpleNamespace:  # interval 5 s
        return SimpleNamespace(name="w1", last_heartbeat_time=heartbeat_at, heartbeat_interval_seconds=5,
                               status=SimpleNamespace(value=status))

    assert beats.check(seen(0), now=1000.0) == (False, 0.0, "ONLINE")
    assert beats.check(seen(0, "OFFLINE"), now=1020.0) == (False, 20.0, "OFFLINE")  # 4 intervals late
    assert beats.check(seen(0, "OFFLINE"), now=1119.0)[0] is False  # 65 s: what a stalled server did
    assert beats.check(seen(65), now=1119.5)[:2] == (False, 0.0)  # it was alive: the clock restarts
    assert beats.check(seen(65), now=1239.0)[0] is False
    assert beats.check(seen(65, "OFFLINE"), now=1240.0) == (True, 120.5, "OFFLINE")  # dead: silent > 120 s
    # a worker that states a longer interval gets 3 of them
    slow = Heartbeats(lost_after_s=10)
    slow.check(SimpleNamespace(**{**vars(seen(0)), "heartbeat_interval_seconds": 60}), now=0.0)
    assert slow.check(SimpleNamespace(**{**vars(seen(0)), "heartbeat_interval_seconds": 60}), now=179.0)[0] is False
    assert slow.check(SimpleNamespace(**{**vars(seen(0)), "heartbeat_interval_seconds": 60}), now=181.0)[0] is True


def test_a_child_on_a_slow_but_live_worker_is_waited_for_not_crashed():
    """The pool engine end to end over the staleness rule: the worker's heartbeat moves only every
    ~0.3 s (6 of its 0.05 s intervals) and the server calls it OFFLINE, yet it completes its run."""
    slow = child()
    client = FakeClient({slow.flow_run_id: lambda poll: SimpleNamespace(
        id=slow.flow_run_id, state=Completed() if poll > 40 else Running(), labels={WORKER_LABEL: "w1"})},
        [lambda poll: SimpleNamespace(name="w1", last_heartbeat_time=poll // 15, heartbeat_interval_seconds=0.05,
                                      status=SimpleNamespace(value="OFFLINE"))])
    PoolEngine(timeout_s=30, poll_s=0.02, lost_after_s=1.0)._wait(client, [slow], "gpu", 1)
    assert client.set_states == [] and slow.state_name == "COMPLETED"


def test_a_child_that_completed_after_the_poll_that_condemned_it_keeps_its_state():
    """Its worker looked lost, but the run completed before the parent ended it: no forced CRASHED
    overwrites a final state."""
    late = child()
    client = FakeClient({late.flow_run_id: SimpleNamespace(id=late.flow_run_id, state=Running(),
                                                           labels={WORKER_LABEL: "w1"})}, [worker("w1")])
    done = SimpleNamespace(id=late.flow_run_id, state=Completed(), labels={WORKER_LABEL: "w1"})
    client.read_flow_run = lambda run_id: done
    PoolEngine(timeout_s=30, poll_s=0.02, lost_after_s=0.1)._wait(client, [late], "gpu", 1)
    assert client.set_states == [] and late.final and late.state_name == "COMPLETED"


def test_a_running_child_whose_worker_left_the_pool_is_marked_crashed():
    lost = child()
    client = FakeClient({lost.flow_run_id: SimpleNamespace(id=lost.flow_run_id, state=Running(),
                                                           labels={WORKER_LABEL: "gone"})}, [])
    PoolEngine(timeout_s=30, poll_s=0.01)._wait(client, [lost], "gpu", 1)
    assert client.set_states[0][1] == "CRASHED" and "no longer in pool 'gpu'" in client.set_states[0][3]


def test_children_still_open_at_the_deadline_are_ended_never_waited_on_forever():
    never_picked, stuck = child(), child()
    client = FakeClient({
        never_picked.flow_run_id: SimpleNamespace(id=never_picked.flow_run_id, state=Scheduled(), labels={}),
        # RUNNING without a worker label (died before labelling itself): only the deadline applies
        stuck.flow_run_id: SimpleNamespace(id=stuck.flow_run_id, state=Running(), labels={}),
    }, [])
    t0 = time.monotonic()
    PoolEngine(timeout_s=0.3, poll_s=0.02)._wait(client, [never_picked, stuck], "gpu", 2)
    assert time.monotonic() - t0 < 5
    assert {(s[0], s[1]) for s in client.set_states} == {(never_picked.flow_run_id, "CANCELLED"),
                                                         (stuck.flow_run_id, "CRASHED")}
    assert all("gave up waiting after 0 s" in s[3] for s in client.set_states)


def test_an_api_error_while_waiting_is_retried_not_fatal():
    done = child()
    client = FakeClient({done.flow_run_id: SimpleNamespace(id=done.flow_run_id, state=Completed(), labels={})}, [])
    real_read = client.read_flow_runs

    def flaky(flow_run_filter, limit):
        if client.polls == 0:
            client.polls += 1
            raise ConnectionError("server restarting")
        return real_read(flow_run_filter, limit)

    client.read_flow_runs = flaky
    PoolEngine(timeout_s=30, poll_s=0.01)._wait(client, [done], "gpu", 1)
    assert done.final and done.state_name == "COMPLETED" and client.set_states == []


# ------------------------------------------------------------------ outcomes from the ledger


def leaderboard_row(cell_key: str, **overrides) -> dict:
    """A valid leaderboard row built from the schema itself, whatever its columns are."""
    from benchmark.results.schema import COLUMNS

    now = dt.datetime.now(dt.timezone.utc)
    by_type = {pa.string(): "x", pa.int64(): 1, pa.float64(): 0.5}
    row = {c.name: (now if pa.types.is_timestamp(c.type) else by_type[c.type]) for c in COLUMNS}
    row.update(grid="smoke", run_id=CONTEXT.run_id, run_date="2024-05-01", cell_key=cell_key,
               kind="model", architecture="lstm", mode="scratch", mase=0.75, train_seconds=3.0,
               mlflow_run_id=f"run-{cell_key}")
    row.update(overrides)
    return row


def test_outcomes_come_from_the_leaderboard_with_the_child_state_for_lost_cells(tmp_path, monkeypatch):
    from benchmark.results.leaderboard import Leaderboard
    from benchmark.spec.settings import Settings

    settings = Settings(results=str(tmp_path / "results"), mlflow_dir=tmp_path / "mlflow").resolved()
    board = Leaderboard(settings.results)
    board.append([leaderboard_row("key0")])
    board.record_failure({"grid_id": "gid", "grid": "smoke", "run_id": CONTEXT.run_id,
                          "run_date": "2024-05-01", "cell_key": "key1", "target": "ett/ETTh1:OT",
                          "target_size": 240, "architecture": "lstm", "mode": "frozen", "seed": 0,
                          "error": "CellFailed: loss is NaN at epoch 2",
                          "failed_at": dt.datetime.now(dt.timezone.utc)})
    jobs = cell_jobs(3)
    completed = _Child(uuid.uuid4(), "cells-a", jobs[:2], "FAILED", None, True)
    crashed = _Child(uuid.uuid4(), "cells-b", jobs[2:], "CRASHED", "its worker 'w1' stopped heartbeating", True)
    closed = []
    # Only which jobs get closed is checked here; the closing itself (the crashed cell's MLflow run
    # ends KILLED) runs for real in test_prefect_pool.py::test_a_worker_killed_mid_cell_...
    monkeypatch.setattr(PoolEngine, "_close_stale_runs", staticmethod(lambda jobs, s: closed.extend(jobs)))

    outcomes = PoolEngine()._outcomes([completed, crashed], settings)

    assert [o.cell_key for o in outcomes] == ["key0", "key1", "key2"]
    assert [o.status for o in outcomes] == ["finished", "failed", "failed"]
    assert outcomes[0].metrics["mase"] == 0.75 and outcomes[0].mlflow_run_id == "run-key0"
    assert outcomes[1].error.startswith("CellFailed: loss is NaN at epoch 2 (child run cells-a ended FAILED")
    assert re.search(r"no leaderboard row after child run cells-b ended CRASHED: its worker 'w1' "
                     r"stopped heartbeating; it runs again on the next trigger", outcomes[2].error)
    assert closed == [jobs[2]]  # MLflow runs a crashed child left RUNNING are closed now


def test_the_cell_table_has_a_row_per_cell_with_its_state_worker_and_host():
    from benchmark.run.jobs import CellOutcome
    from flows.pool import CellTable

    jobs = cell_jobs(3)
    done = _Child(uuid.uuid4(), "cells-a", jobs[:2], "COMPLETED", final=True, worker="gpu-0")
    waiting = _Child(uuid.uuid4(), "cells-b", jobs[2:], "SCHEDULED")
    table = CellTable()
    table._recorded = {jobs[0].cell_key: CellOutcome(jobs[0].cell_key, "finished", "x", {"mase": 0.81234},
                                                     worker_host="node-7"),
                       jobs[1].cell_key: CellOutcome(jobs[1].cell_key, "failed", "x", error="NaN")}
    rows = table.rows([done, waiting])
    assert [r["cell"] for r in rows] == [job.names.run_name for job in jobs]
    assert [r["state"] for r in rows] == ["FINISHED", "FAILED", "SCHEDULED"]
    assert [(r["worker"], r["host"], r["child run"]) for r in rows] == [
        ("gpu-0", "node-7", "cells-a"), ("gpu-0", "", "cells-a"), ("", "", "cells-b")]
    assert [r["mase"] for r in rows] == [0.8123, None, None]


# ------------------------------------------------------------------ flows and their forms


def test_benchmark_grid_parameters_render_as_a_form():
    from prefect.utilities.callables import parameter_schema

    from flows.grid import benchmark_grid

    properties = parameter_schema(benchmark_grid).model_dump()["properties"]
    assert properties["execution"]["enum"] == ["local", "pool", "served"]
    from benchmark.spec.profiles import profile_names

    choices, path = properties["grid"]["anyOf"]  # the shipped profiles as choices, or a path
    assert choices["enum"] == profile_names() and path == {"type": "string", "title": "grid YAML path"}
    assert properties["batch_size"]["type"] == "integer" and properties["batch_size"]["minimum"] == 1
    assert properties["batch_size"]["default"] == 4
    assert "cells per child flow run" in properties["batch_size"]["description"]


def test_adhoc_deployment_lists_every_parameter_of_the_flow():
    import inspect

    import yaml

    from flows.grid import benchmark_grid

    spec = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(deployments) == {"nightly-benchmark", "adhoc-benchmark", "train-cell"}
    signature = inspect.signature(benchmark_grid.fn)
    adhoc = deployments["adhoc-benchmark"]["parameters"]
    assert set(adhoc) == set(signature.parameters)
    assert adhoc["execution"] == "pool"
    assert deployments["train-cell"]["entrypoint"] == "flows/cell.py:train_cell"
    assert deployments["train-cell"]["work_pool"]["name"] == "gpu"
    assert deployments["nightly-benchmark"]["schedules"][0]["cron"] == "0 2 * * *"


def test_unknown_execution_and_bad_batch_size_are_clear_errors():
    with pytest.raises(TlbenchError, match="Unknown execution 'dask'. Known: local, pool, served."):
        make_engine("dask")
    with pytest.raises(TlbenchError, match="batch_size must be at least 1, got 0"):
        PoolEngine(batch_size=0)


def test_pool_mode_without_a_server_says_how_to_fix_it():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: None}):
        with pytest.raises(TlbenchError, match="execution='pool' needs a Prefect server .* PREFECT_API_URL"):
            PoolEngine()._check_deployment(client=None)


def test_the_library_never_imports_prefect():
    offenders = [str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "src" / "benchmark").rglob("*.py")
                 if re.search(r"^\s*(import|from)\s+prefect\b", p.read_text(), re.M)]
    assert offenders == []


def test_the_progress_artifact_counts_done_failed_and_to_go_apart():
    from benchmark.run.jobs import CellOutcome
    from flows.engine import _Progress

    progress = _Progress()
    progress.start("cell", 12)
    for i in range(10):
        progress.record("cell", CellOutcome(f"k{i}", "finished", f"cell {i}"))
    progress.record("cell", CellOutcome("k10", "failed", "cell 10", error="boom"))
    assert progress.describe("cell") == ("cell: 10 done, 1 failed, 1 to go (of 12)", 100.0 * 11 / 12)
    progress.advance("cell", done=0, failed=1)
    assert progress.describe("cell")[0] == "cell: 10 done, 2 failed, 0 to go (of 12)"
