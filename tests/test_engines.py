"""``ProcessEngine``: a grid's jobs in worker processes, stages overlapped, a dead worker a clear
error and a rerun that resumes; and the TensorFlow thread split per concurrency."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from benchmark.results.leaderboard import Leaderboard
from benchmark.run.engines import LocalEngine, ProcessEngine, engine_slots, thread_settings
from benchmark.run.grid import run_grid
from benchmark.run.jobs import expand
from benchmark.spec.errors import TlbenchError
from benchmark.spec.profiles import load_grid
from benchmark.tracking.tracker import Tracker

TINY = ["target_sizes=[120]", "split.test_size=48", "model.units=8", "training.max_epochs=2",
        "pretrain.max_series=6", "pretrain.windows_per_series=40", "pretrain.training.max_epochs=2",
        "baselines=[naive]"]


def test_thread_settings_split_the_cores_between_the_jobs():
    assert thread_settings(1, cores=2) == (2, 1)
    assert thread_settings(2, cores=2) == (1, 1)
    assert thread_settings(4, cores=2) == (1, 1)  # never zero threads
    assert thread_settings(2, cores=16) == (8, 1)


def test_engines_say_how_many_jobs_they_run_at_once():
    assert engine_slots(LocalEngine(1)) == 1
    assert engine_slots(ProcessEngine(2)) == 2
    assert engine_slots(object()) == 1  # an engine without `slots` runs one job at a time


def test_fork_is_refused_with_the_reason():
    with pytest.raises(TlbenchError, match="fork.*deadlock"):
        ProcessEngine(2, start_method="fork")


def _started(seconds: float, settings) -> float:
    """A job of the engine tests: when it started (epoch seconds), after sleeping ``seconds``."""
    start = time.time()
    time.sleep(seconds)
    return start


def test_a_map_started_while_another_runs_gets_the_next_free_worker():
    # A grid's pretraining is mapped while its scratch cells already fill the workers; the pool
    # runs jobs first in, first out, so the cells must not all be queued ahead of it.
    from concurrent.futures import ThreadPoolExecutor

    with ProcessEngine(2) as engine, ThreadPoolExecutor(1) as side:
        cells = side.submit(engine.map, "cell", _started, [0.5] * 8, None)
        time.sleep(0.3)  # the cells' map is under way
        [pretraining] = engine.map("pretrain", _started, [0.0], None)
        cell_starts = sorted(cells.result())
    assert len(cell_starts) == 8
    assert pretraining < cell_starts[3], "the pretraining waited behind the cells queued after it"


def _workers(pid: int, expected: int = 2, timeout: float = 60) -> list[int]:
    """The engine's worker processes: children of ``pid`` started by multiprocessing's spawn
    (not its resource tracker). Polled until ``expected`` are seen or ``timeout`` passes: a child
    shows ``spawn_main`` only once it has exec'd, which on a loaded machine takes a while after
    the fork (seen in CI: one of the two workers still bore pytest's command line)."""
    deadline = time.monotonic() + timeout
    while True:
        found = _spawned_children(pid)
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _spawned_children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid and b"spawn_main" in command:
                out.append(int(entry.name))
    return out


def test_a_grid_on_two_worker_processes_overlaps_scratch_cells_with_pretraining(settings):
    spec = load_grid("smoke", TINY + ["modes=[scratch, frozen]", "seeds=[0, 1]"])
    with ProcessEngine(2) as engine:
        workers = _workers(os.getpid())
        result = run_grid(spec, settings, engine)
    assert len(workers) == 2, "the engine should have started its worker processes on entry"
    assert result.counts() == {"finished": 5}  # 4 cells + 1 baseline
    rows = Leaderboard(settings.results).read(kind="model")
    assert set(rows["cell_key"]) == {o.cell_key for o in result.outcomes if "baseline/" not in o.label}
    assert rows["cell_key"].is_unique and len(rows) == 4
    tracker = Tracker(settings, "tlbench-smoke")
    pretrain = tracker.client.search_runs([tracker.experiment_id], "tags.`tlbench.kind` = 'pretrain'")
    assert len(pretrain) == 1
    pretrain_end = pretrain[0].info.end_time / 1000.0
    scratch_starts = [ts.timestamp() for ts in rows.loc[rows["mode"] == "scratch", "started_at"]]
    assert min(scratch_starts) < pretrain_end, "scratch cells should start while the pretraining runs"
    frozen_starts = [ts.timestamp() for ts in rows.loc[rows["mode"] == "frozen", "started_at"]]
    assert min(frozen_starts) >= pretrain_end - 1.0  # they need its model
    runs = tracker.client.search_runs([tracker.experiment_id], "tags.`tlbench.kind` = 'cell'")
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}


def test_a_killed_worker_fails_the_stage_clearly_and_the_rerun_resumes(settings):
    spec = load_grid("smoke", TINY + ["modes=[scratch]", "seeds=[0, 1, 2, 3]", "training.max_epochs=60",
                                      "training.patience=60", "target_sizes=[480]"])
    board = Leaderboard(settings.results)
    engine = ProcessEngine(2).start()
    workers = _workers(os.getpid())
    assert len(workers) == 2

    def kill_one_when_a_cell_is_done():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not len(board.read(kind="model")):
            time.sleep(0.5)
        os.kill(workers[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_one_when_a_cell_is_done, daemon=True)
    killer.start()
    try:
        with pytest.raises(TlbenchError, match="worker process died.*Run the grid again to resume"):
            run_grid(spec, settings, engine)
    finally:
        engine.close(wait=False)
        killer.join(5)
    done_before = board.finished_keys()
    assert 1 <= len(done_before) < 5  # the baseline and at least one cell survived, not all

    result = run_grid(spec, settings, LocalEngine(1))
    assert result.counts().get("failed", 0) == 0
    rows = board.read()
    assert rows["cell_key"].is_unique and len(rows) == len(expand(spec)) + 1
    tracker = Tracker(settings, "tlbench-smoke")
    runs = tracker.client.search_runs([tracker.experiment_id], "tags.`tlbench.kind` = 'cell'")
    assert "RUNNING" not in {r.info.status for r in runs}
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == len(expand(spec))
