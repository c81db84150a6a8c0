"""The ledger survives one bad file, every cell key has one counted MLflow run, and a grid run
left RUNNING on another machine is closed: real grids (tiny ETTh1 cells), real Parquet files,
real MLflow (SQLite store), faults caused by hand as an operator meets them."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

from benchmark.results.leaderboard import Leaderboard
from benchmark.run.engines import LocalEngine
from benchmark.run.grid import run_grid
from benchmark.spec.profiles import load_grid
from benchmark.tracking.tags import (
    TAG_CELL_KEY,
    TAG_CLOSED_REASON,
    TAG_HEARTBEAT,
    TAG_HOST,
    TAG_KIND,
    TAG_PID,
    TAG_SUPERSEDED,
)
from benchmark.tracking.tracker import Tracker

TINY = ["target_sizes=[120]", "split.test_size=48", "model.units=8", "training.max_epochs=1",
        "modes=[scratch]", "baselines=[naive]", "seeds=[0, 1]"]


def compacted_files(results: str) -> list[Path]:
    return sorted((Path(results) / "cells").rglob("compacted-*.parquet"))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a crash or a full disk mid-copy


def cell_runs(settings) -> list:
    tracker = Tracker(settings, "tlbench-smoke")
    return tracker.client.search_runs([tracker.experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'cell'",
                                      max_results=1000)


def test_a_damaged_compacted_file_loses_no_row_and_a_recomputed_cell_has_one_counted_run(settings, capsys):
    from benchmark.cli import main

    spec = load_grid("smoke", TINY)
    first = run_grid(spec, settings, LocalEngine(1))
    assert first.counts() == {"finished": 3}  # two cells and the naive baseline
    board = Leaderboard(settings.results)
    keys = set(board.read()["cell_key"])
    (compacted,) = compacted_files(settings.results)  # the whole partition in one file
    archived = list((Path(settings.results) / "archive" / "cells").rglob("*.parquet"))
    assert len(archived) == 3  # ...and its three sources kept aside, not deleted

    # 1. the compacted file is truncated: the rerun recovers every row, retrains nothing
    truncate(compacted)
    assert len(board.read()) == 0 and board.skipped  # what a reader sees now
    second = run_grid(spec, settings, LocalEngine(1))
    assert second.counts() == {"skipped": 3}  # 0 cells retrained
    assert set(board.read()["cell_key"]) == keys
    assert list((Path(settings.results) / "quarantine" / "cells").rglob(compacted.name))

    # tlbench repair says what it recovered and from where (here: a second damaged compacted file)
    (compacted,) = compacted_files(settings.results)
    truncate(compacted)
    assert main(["repair", "--results", settings.results]) == 0
    out = capsys.readouterr().out
    assert f"checksum mismatch: {compacted} differs from its manifest; moved to quarantine" in out
    assert "recovered 1 row(s) from" in out and str(Path(settings.results) / "archive") in out
    assert set(board.read()["cell_key"]) == keys

    # 2. no archived copy either (archive deleted by hand): only that file's own cells run again
    run_grid(spec, settings, LocalEngine(1))  # compacts the restored files again
    (compacted,) = compacted_files(settings.results)
    shutil.rmtree(Path(settings.results) / "archive")
    truncate(compacted)
    before = {r.data.tags[TAG_CELL_KEY]: r.info.run_id for r in cell_runs(settings)}
    third = run_grid(spec, settings, LocalEngine(1))
    assert third.counts() == {"finished": 3}  # exactly the cells that file alone held
    assert set(board.read()["cell_key"]) == keys

    # one counted FINISHED run per cell key: the old one is tagged superseded by the new one
    runs = cell_runs(settings)
    counted = Counter(r.data.tags[TAG_CELL_KEY] for r in runs
                      if r.info.status == "FINISHED" and TAG_SUPERSEDED not in r.data.tags)
    assert set(counted.values()) == {1} and len(counted) == 2
    rows = board.read(kind="model").set_index("cell_key")["mlflow_run_id"]
    for key, old_run in before.items():
        old = Tracker(settings, "tlbench-smoke").get_run(old_run)
        assert old.data.tags[TAG_SUPERSEDED] == rows[key]
    assert {r.info.run_id for r in runs if TAG_SUPERSEDED not in r.data.tags} == set(rows)


def test_superseded_runs_are_deleted_when_asked(settings):
    from dataclasses import replace

    tracker = Tracker(settings, "supersede")
    old, new = (tracker.start_run(f"r{i}", "cell", {TAG_CELL_KEY: "k"}, {}) for i in range(2))
    for run in (old, new):
        tracker.end_run(run, "FINISHED")
    assert tracker.close_stale_runs("k", new, replace(settings, delete_superseded=True).delete_superseded) == 1
    assert [r.info.run_id for r in tracker.runs_for_cell("k")] == [new]  # the old one is deleted
    assert tracker.client.get_run(old).info.lifecycle_stage == "deleted"


def test_a_grid_run_left_running_on_another_machine_is_closed_by_its_stale_heartbeat(settings):
    tracker = Tracker(settings, "tlbench-smoke")
    tracker.ensure_store()
    old_beat = f"{time.time() - 3600:.0f}"
    dead = tracker.start_run("grid-smoke-elsewhere", "grid", {TAG_HOST: "another-machine", TAG_PID: "4242",
                                                              TAG_HEARTBEAT: old_beat}, {})
    alive = tracker.start_run("grid-smoke-alive", "grid", {TAG_HOST: "a-third-machine", TAG_PID: "7",
                                                           TAG_HEARTBEAT: f"{time.time():.0f}"}, {})
    result = run_grid(load_grid("smoke", TINY[:-1] + ["seeds=[0]", "baselines=[]"]), settings, LocalEngine(1))
    assert result.counts() == {"finished": 1}
    closed = tracker.get_run(dead)
    assert closed.info.status == "KILLED"
    assert "no heartbeat from its grid on another-machine" in closed.data.tags[TAG_CLOSED_REASON]
    assert tracker.get_run(alive).info.status == "RUNNING"  # a live grid elsewhere is left alone
    mine = tracker.get_run(result.parent_run_id)
    assert mine.info.status == "FINISHED" and float(mine.data.tags[TAG_HEARTBEAT]) > float(old_beat)


def test_a_damaged_per_cell_file_without_a_copy_is_reported_not_recoverable(settings):
    from benchmark.run.repair import repair

    board = Leaderboard(settings.results)
    spec = load_grid("smoke", TINY[:-1] + ["seeds=[0]"])
    run_grid(spec, settings, LocalEngine(1))
    results = Path(settings.results)
    shutil.rmtree(results / "cells")  # back to the per-cell layout of a grid still running, no copy
    (results / "archive" / "cells").rename(results / "cells")
    for manifest in (results / "cells").rglob("*.json"):
        manifest.unlink()
    written = sorted((results / "cells").rglob("*.parquet"))
    assert len(written) == 2
    truncate(written[0])
    report = repair(board)
    assert [Path(p).name for p in report.unrecovered] == [written[0].name]
    assert "run again on the next run of their grid" in "\n".join(report.lines())
