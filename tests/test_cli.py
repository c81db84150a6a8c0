"""The command line: clear errors before anything trains, exit codes, listings."""

from __future__ import annotations

import pytest

from benchmark.cli import main


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_unknown_profile_lists_the_known_ones(capsys, tmp_path):
    code, _, err = run(capsys, "run", "--engine", "local", "--profile", "smok",
                       "--results", str(tmp_path))
    assert code == 2
    assert "Unknown profile 'smok'. Known: ett-standard, ett-standard-h96, etth1-onestep, nightly, notebook, smoke, standard" in err
    assert "Traceback" not in err


def test_missing_data_file_names_the_path_and_the_setting(capsys, tmp_path):
    empty = tmp_path / "nodata"
    empty.mkdir()
    code, _, err = run(capsys, "validate", "--profile", "smoke", "--data-dir", str(empty))
    assert code == 2
    assert str(empty / "ett" / "ETTh1.csv") in err
    assert "TLBENCH_DATA_DIR" in err or "--data-dir" in err
    assert "Traceback" not in err


def test_target_shorter_than_the_size_says_both_numbers(capsys, data_dir, tmp_path):
    code, _, err = run(capsys, "run", "--engine", "local", "--profile", "smoke", "--data-dir", str(data_dir),
                       "--results", str(tmp_path / "r"), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}",
                       "--set", "target_sizes=[240, 20000]")
    assert code == 2
    assert "17420" in err and "20000" in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("*.parquet"))


def test_spec_problems_are_listed_together_and_nothing_starts(capsys, data_dir, tmp_path):
    code, _, err = run(capsys, "run", "--engine", "local", "--profile", "smoke", "--data-dir", str(data_dir),
                       "--results", str(tmp_path / "r"), "--set", "architectures=[lsmt]",
                       "--set", "modes=[scratch, frozn]", "--set", "training.batch_size=-1")
    assert code == 2
    assert "3 problem(s)" in err
    assert "grid.architectures[0]" in err and "grid.modes[1]" in err and "grid.training.batch_size" in err
    assert not (tmp_path / "r").exists()


def test_validate_counts_cells(capsys, data_dir):
    code, out, _ = run(capsys, "validate", "--profile", "smoke", "--data-dir", str(data_dir))
    assert code == 0 and "6 cells" in out


def test_subgrid_picks_part_of_a_profile_and_a_bad_pick_says_which_exist(capsys, data_dir):
    code, out, _ = run(capsys, "validate", "--profile", "ett-standard", "--subgrid", "3", "--data-dir", str(data_dir))
    assert code == 0 and "80 cells" in out
    code, _, err = run(capsys, "validate", "--profile", "ett-standard", "--subgrid", "9", "--data-dir", str(data_dir))
    assert code == 2 and "--subgrid 9: profile 'ett-standard' has sub-grids 1 to 7" in err and "Traceback" not in err


def test_profiles_and_evaluate_source(capsys, data_dir):
    code, out, _ = run(capsys, "profiles")
    assert code == 0 and out.split() == ["ett-standard", "ett-standard-h96", "etth1-onestep", "nightly", "notebook", "smoke",
                                         "standard"]
    code, out, _ = run(capsys, "evaluate-source", "--source", "m4-hourly", "--method", "seasonal_naive",
                       "--data-dir", str(data_dir))
    assert code == 0
    assert "sMAPE 13.912" in out and "MASE 1.193" in out


def test_unknown_engine_lists_the_known_ones(capsys, tmp_path):
    code, _, err = run(capsys, "run", "--engine", "dask", "--results", str(tmp_path))
    assert code == 2 and "Unknown engine 'dask'. Known: local, prefect." in err


def test_leaderboard_on_an_empty_results_folder(capsys, tmp_path):
    code, out, _ = run(capsys, "leaderboard", "--results", str(tmp_path))
    assert code == 0 and "no leaderboard rows" in out
    code, out, _ = run(capsys, "leaderboard", "--results", str(tmp_path), "--json")
    assert code == 0 and out.strip() == "[]"


def test_evaluate_source_model_that_is_not_there(capsys, data_dir, tmp_path):
    base = ["evaluate-source", "--data-dir", str(data_dir), "--results", str(tmp_path / "results"),
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"]
    code, out, err = run(capsys, *base, "--model", str(tmp_path / "absent" / "model.keras"))
    assert code == 2 and out == ""
    assert f"--model {tmp_path / 'absent' / 'model.keras'}: no such file" in err
    code, _, err = run(capsys, *base, "--model", "lstm-latest")
    assert code == 2
    assert ("--model 'lstm-latest' is neither an existing file nor a registry reference. Pass a .keras file"
            in err and "models:/NAME@ALIAS, models:/NAME/VERSION or NAME@ALIAS" in err)
    code, _, err = run(capsys, *base, "--model", "models:/pretrained-lstm-m4-hourly@current")
    assert code == 2
    assert f"there is no MLflow store at {tmp_path / 'mlflow' / 'mlflow.db'}" in err
    assert not (tmp_path / "mlflow").exists()  # looking did not create a store
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, *base, "--model", str(tmp_path / "empty"))
    assert code == 2 and "the folder has no model.keras" in err


def test_log_lines_name_the_prefect_run_they_come_from():
    import logging

    from benchmark.cli import _RunNameFormatter

    formatter = _RunNameFormatter("%(levelname)s %(name)s: %(message)s")
    record = logging.LogRecord("prefect.task_runs", logging.INFO, __file__, 1, "Finished in state Completed()",
                               None, None)
    record.task_run_name = "cell-lstm-finetune-n960-s0"
    assert formatter.format(record) == "INFO prefect.task_runs [cell-lstm-finetune-n960-s0]: Finished in state Completed()"
    plain = logging.LogRecord("tlbench", logging.INFO, __file__, 1, "hello", None, None)
    assert formatter.format(plain) == "INFO tlbench: hello"


def test_help_opens_with_whole_sentences(capsys):
    """``tlbench --help`` says what the tool does in sentences that end (it once stopped at the
    module docstring's first line, mid-sentence)."""
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    description = " ".join(out.split("\n\n", 1)[1].split("positional arguments", 1)[0].split())
    assert description.startswith("tlbench benchmarks transfer learning") and description.endswith(".")
    assert description.count("(") == description.count(")")
    assert not description.endswith((",", ":", "the", "a", "and"))


def test_help_profiles_and_protocols_load_neither_pandas_nor_the_library():
    """``tlbench --help`` took half a second once cli.py imported every command's modules at its
    top (pandas and pyarrow alone); the commands that use the library are loaded when one runs."""
    import subprocess
    import sys

    probe = ("import sys, contextlib, io\n"
             "from benchmark.cli import main\n"
             "for argv in (['profiles'], ['protocols']):\n"
             "    with contextlib.redirect_stdout(io.StringIO()):\n"
             "        assert main(argv) == 0\n"
             "try:\n"
             "    with contextlib.redirect_stdout(io.StringIO()):\n"
             "        main(['--help'])\n"
             "except SystemExit:\n"
             "    pass\n"
             "print(sorted(m for m in ('pandas', 'pyarrow', 'benchmark.commands', 'tensorflow') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


#: A Ctrl-C that lands in a weakref callback (as the garbage collector runs them: SQLAlchemy's,
#: under MLflow's SQLite store, dropped one in CI and the grid trained on to exit 0).
DROPPED_CTRL_C = """
import os, signal, sys, time, weakref
from benchmark.cli import keep_ctrl_c
if sys.argv[1] == "kept":
    keep_ctrl_c()
class Thing:
    pass
def callback(ref):
    os.kill(os.getpid(), signal.SIGINT)  # the signal arrives while the callback runs,
    time.sleep(0.05)                     # so KeyboardInterrupt is raised here, where Python drops it
thing = Thing()
ref = weakref.ref(thing, callback)
try:
    del thing
    for _ in range(100):
        time.sleep(0.01)
    print("went on")
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.parametrize("kept, said", [("kept", "interrupted"), ("plain", "went on")])
def test_a_ctrl_c_python_drops_in_a_callback_is_raised_again(kept, said):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", DROPPED_CTRL_C, kept], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == said, out.stdout + out.stderr
    if kept == "plain":  # where Python dropped it; the hook sends it again instead of printing it
        assert "Exception ignored in: <function callback" in out.stderr, out.stderr
