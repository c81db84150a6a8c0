"""Bad input met in one round, and one clear line where a run cannot go on (issue 38, items 6
and 7): a CSV with every kind of data problem at once; seeds outside 0..2**32-1; a results
location that cannot be written; Ctrl-C in the middle of a real run; a damaged ledger file
repaired in one line, counted on the start line. The real CLI runs in a fresh process where the
behaviour is the command's; visible synthetic data, real ETTh1 for the plans."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmark.results.leaderboard import Leaderboard
from benchmark.run.plan import load_and_plan
from benchmark.run.validation import grid_problems
from benchmark.spec.profiles import load_grid

#: One scratch cell of ETTh1 at n=120: planning reads ETTh1 only, training takes seconds.
TINY = ["target_sizes=[120]", "split.test_size=48", "model.units=8", "training.max_epochs=1",
        "modes=[scratch]", "baselines=[]", "seeds=[0]"]


def tlbench(args: list[str], tmp_path: Path, data_dir: Path, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("TLBENCH_", "MLFLOW_"))}
    environment.update({"TLBENCH_DATA_DIR": str(data_dir), "TLBENCH_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
                        "TLBENCH_RESULTS": str(tmp_path / "results"),
                        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", **env})
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *args], env=environment,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


def with_sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


# ------------------------------------------------------------------ item 6: bad input, one round


def test_a_csv_with_every_kind_of_problem_is_reported_in_one_validate(tmp_path, data_dir):
    """A duplicate timestamp, a non-numeric value, an empty value and 11 missing timestamps: one
    call names all four (the gap and the missing hours used to wait for a second call)."""
    stamps = pd.date_range("2024-01-01", periods=311, freq="h")
    keep = [i for i in range(311) if not 100 <= i < 111]  # 11 hours left out of the file
    frame = pd.DataFrame({"date": stamps[keep].astype(str), "load": [str(float(i % 24)) for i in keep]})
    frame = pd.concat([frame[:10], frame[9:]], ignore_index=True)  # row 9 twice: a duplicated timestamp
    frame.loc[20, "load"] = "12,5 kW"  # a non-numeric value
    frame.loc[50, "load"] = ""  # a gap
    csv = tmp_path / "target.csv"
    frame.to_csv(csv, index=False)
    spec = tmp_path / "grid.yaml"
    spec.write_text(f"""
name: every-problem
targets:
  - source: csv
    options: {{path: {csv}, date_column: date, value_column: load}}
target_sizes: [100]
architectures: [lstm]
modes: [scratch]
""")
    out = tlbench(["validate", "--grid", str(spec)], tmp_path, data_dir)
    assert out.returncode == 2, out.stdout + out.stderr
    err = out.stderr
    assert "duplicate timestamps in column 'date' at rows 9 (2024-01-01 09:00:00), 10" in err
    assert "1 non-numeric value(s) in column 'load' at row 20" in err and "'12,5 kW'" in err
    assert "1 missing value(s) in column 'load', first at row 50" in err
    assert "11 missing timestamp(s) in column 'date' (expected a step of 1 hour), first at " \
           "2024-01-05 04:00:00" in err
    assert "4 problem(s)" in err and "Traceback" not in err


def test_with_fill_gaps_duplicates_disorder_and_a_gap_too_long_come_together():
    """``fill_gaps: interpolate``: the gap check runs on the sorted, de-duplicated rows too."""
    from benchmark.data.validation import validate_frame
    from benchmark.spec.errors import DataError

    stamps = pd.date_range("2024-01-01", periods=40, freq="h")
    kept = stamps[[i for i in range(40) if not 10 <= i < 15]]  # hours 10-14: 5 > max_gap
    frame = pd.DataFrame({"unique_id": "s", "ds": kept.append(stamps[[20]]), "y": 1.0})  # hour 20 again, last
    with pytest.raises(DataError) as caught:
        validate_frame(frame, "visible", fill_gaps="interpolate", max_gap=3)
    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert "duplicate timestamps in column 'ds' at rows 15 (2024-01-01 20:00:00), 35" in problems[0]
    assert "not in increasing order, first at rows 34 (2024-01-02 15:00:00), 35" in problems[1]
    assert "a run of 5 missing point(s) in column 'y' from 2024-01-01 10:00:00 to 2024-01-01 14:00:00 " \
           "cannot be interpolated (longer than max_gap=3)" in problems[2]


def test_negative_and_too_large_seeds_are_refused_by_validation():
    spec = load_grid("smoke", ["seeds=[0, -1]", "pretrain.seeds=[4294967296]"])
    problems = grid_problems(spec)
    assert "grid.seeds[1]: -1 is not a valid seed; use a whole number from 0 to 4294967295 " \
           "(2**32 - 1)" in problems
    assert "grid.pretrain.seeds[0]: 4294967296 is not a valid seed; use a whole number from 0 to " \
           "4294967295 (2**32 - 1)" in problems
    assert not [p for p in grid_problems(load_grid("smoke", ["seeds=[0, 4294967295]"])) if "seed" in p]


def test_a_refused_run_names_its_seeds_and_leaves_no_log_or_folder_anywhere(tmp_path, data_dir):
    """``tlbench run`` of a bad grid: every problem (the seeds among them) before anything trains,
    and no log file, neither under the results nor in the temporary folder."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    out = tlbench(["run", "--engine", "local", "--profile", "smoke",
                   *with_sets(TINY + ["seeds=[-1]", "architectures=[lstmm]"])],
                  tmp_path, data_dir, TMPDIR=str(temporary))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "grid.seeds[0]: -1 is not a valid seed" in out.stderr
    assert "Unknown architecture 'lstmm'" in out.stderr
    assert not (tmp_path / "results").exists()
    assert list(temporary.iterdir()) == []  # the log is not moved to /tmp either
    assert "log:" not in out.stdout + out.stderr


# ------------------------------------------------------------------ item 7: messages


def test_a_results_location_that_cannot_be_written_is_one_line_before_anything_runs(tmp_path, data_dir):
    """Tests run as root, which ignores file modes: the location is made unwritable by putting it
    under a regular file (the error a read-only mount gives takes the same path)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = tlbench(["run", "--engine", "local", "--profile", "smoke", "--results", str(blocker / "results"),
                   *with_sets(TINY)], tmp_path, data_dir)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert lines[0].startswith(f"error: cannot write the results location {blocker / 'results'}: "
                               f"{blocker} is a file, not a folder. Fix: ")
    assert "--results" in lines[0] and not (tmp_path / "mlflow.db").exists()


def test_a_results_location_without_free_space_is_refused_with_the_fix():
    from benchmark.spec.settings import Settings

    settings = Settings(results="/tmp")
    assert settings.results_problem() is None
    problem = settings.results_problem(min_free_bytes=2**62)  # more than any disk here has
    assert problem.startswith("cannot write the results location /tmp: its disk is full (")
    assert "free space there or choose another folder" in problem


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_ctrl_c_mid_run_is_one_line_exit_130_and_leaves_nothing_half_written(tmp_path, data_dir):
    command = [sys.executable, "-m", "benchmark.cli", "run", "--engine", "local", "--profile", "smoke",
               *with_sets(TINY + ["training.max_epochs=50"])]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("TLBENCH_", "MLFLOW_"))}
    environment.update({"TLBENCH_DATA_DIR": str(data_dir), "TLBENCH_RESULTS": str(tmp_path / "results"),
                        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "TLBENCH_OFFLINE": "1"})
    proc = subprocess.Popen(command, env=environment, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:  # through a pipe: one plain line per stage
        seen.append(line)
        if line.startswith("stage: cells"):
            break
    time.sleep(1.0)  # the cell is starting (TensorFlow's import) or training: mid-run
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=120)
    finally:  # an interrupt that was lost must not leave the run training after the test
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    said = "".join(seen) + out + err
    assert proc.returncode == 130, said
    assert "Traceback" not in said and "KeyboardInterrupt" not in said, said
    interrupted = [line for line in said.splitlines() if "interrupted" in line]
    assert len(interrupted) == 1 and interrupted[0].startswith("interrupted; run it again to resume"), said
    assert "stage: report" not in said  # the stage that was cut short did not finish
    results = tmp_path / "results"
    board = Leaderboard(str(results))
    assert len(board.read()) == 0 and len(board.failures()) == 0  # no row, no failure row
    assert not [p for p in results.rglob(".tmp*")]  # nothing half-written: no hidden temporary file
    (log,) = (results / "logs").glob("*.log")
    assert "interrupted (Ctrl-C)" in log.read_text()  # where it stopped: in the log, not on the terminal


def test_a_repaired_ledger_is_one_line_and_the_start_line_counts_what_it_recovered(settings, capfd, caplog):
    """A compacted ledger file truncated: the console's start line counts the rows the repair
    restores from the archive, and the terminal shows one line for the whole repair."""
    from benchmark.console import RunConsole
    from benchmark.run.repair import repair
    from tests.test_leaderboard import make_row

    plan = load_and_plan("smoke", TINY[:-1] + ["seeds=[0, 1, 2]"], settings)
    keys = [job.cell_key for job in plan.cell_jobs(None)]
    board = Leaderboard(settings.results)
    start = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    board.append([make_row(cell_key=key, seed=i, grid="smoke", finished_at=start) for i, key in enumerate(keys)])
    board.compact()
    (compacted,) = Path(settings.results, "cells").rglob("compacted-*.parquet")
    compacted.write_bytes(compacted.read_bytes()[:100])  # a crash or a full disk mid-copy

    caplog.set_level(logging.INFO, logger="benchmark")
    with RunConsole(settings, "smoke") as console:
        console.watch(plan)
        repair(Leaderboard(settings.results), full=False)
    shown = [line for line in capfd.readouterr().out.splitlines() if line.strip()]
    assert shown[0].startswith("tlbench run smoke: 3 cells, 3 already finished (3 restored from the "
                               "ledger archive: 1 damaged ledger file is repaired first)"), shown
    assert shown[1:] == ["warning: ledger repaired: 1 unreadable file quarantined, 3 rows recovered "
                         "from the archive, nothing to retrain"], shown
    assert Leaderboard(settings.results).finished_keys() == set(keys)
    details = [r.getMessage() for r in caplog.records]  # what the log file gets, file by file
    assert [m for m in details if m.startswith("leaderboard: skipping")]
    assert len([m for m in details if m.startswith("leaderboard repair: recovered 1 row(s) from")]) == 3


def test_a_repair_that_recovers_nothing_says_which_cells_run_again(settings, caplog):
    from benchmark.run.repair import repair
    from tests.test_leaderboard import make_row

    board = Leaderboard(settings.results)
    (path,) = board.append([make_row(cell_key="c0")])  # a per-cell file: no archived copy yet
    Path(path).write_bytes(b"garbage")
    with caplog.at_level(logging.INFO, logger="benchmark"):
        repair(Leaderboard(settings.results), full=False)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
              and r.name == "benchmark.run.repair"]
    assert warned == [f"ledger repaired: 1 unreadable file quarantined, 0 rows recovered from the archive; "
                      f"1 file had no archived copy, its cells run again: {path}"]
