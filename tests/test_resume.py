"""Nothing to do costs nothing: a rerun of a finished grid is answered from the ledger, before
Prefect's server starts or TensorFlow is imported (benchmark.run.resume, ``tlbench run``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmark.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["target_sizes=[120]", "split.test_size=96", "model.units=8", "training.max_epochs=2",
        "pretrain.max_series=8", "pretrain.windows_per_series=50", "pretrain.training.max_epochs=1",
        "modes=[scratch,frozen]", "baselines=[naive]"]
#: Runs ``tlbench run`` (default engine: Prefect, in-process) and reports what it imported.
PROBE = """
import json, sys
from benchmark.cli import main
code = main(sys.argv[1:])
print("PROBE " + json.dumps({"code": code, "modules": {m: m in sys.modules for m in
      ("tensorflow", "keras", "prefect", "prefect.server.api.server")}}))
"""


def _args(data_dir: Path, tmp_path: Path) -> list[str]:
    args = ["run", "--profile", "smoke", "--data-dir", str(data_dir), "--results", str(tmp_path / "results"),
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    return args + [item for s in TINY for item in ("--set", s)]


def test_a_finished_grid_reruns_from_the_ledger_without_prefect_or_tensorflow(data_dir, tmp_path, capsys):
    from benchmark.results.leaderboard import Leaderboard

    assert main(_args(data_dir, tmp_path) + ["--engine", "local"]) == 0
    first = capsys.readouterr().out
    rows = Leaderboard(str(tmp_path / "results")).read()
    assert len(rows) == 3  # 2 cells + 1 baseline

    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "TLBENCH_OFFLINE": "1"}
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", PROBE, *_args(data_dir, tmp_path)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - t0
    assert out.returncode == 0, out.stderr[-3000:]
    probe = json.loads(out.stdout.split("PROBE ", 1)[1])
    assert probe["code"] == 0
    assert probe["modules"] == {"tensorflow": False, "keras": False, "prefect": False,
                                "prefect.server.api.server": False}
    assert "2 skipped" in out.stdout  # the console's summary (everything else went to the run's log)
    # the same summary as the run that trained: the leaderboard and the verdict lines
    verdicts = [line for line in first.splitlines() if line.startswith("verdict:")]
    assert verdicts and all(line in out.stdout for line in verdicts)
    assert "report: " in out.stdout and "leaderboard: " in out.stdout
    after = Leaderboard(str(tmp_path / "results")).read()
    assert sorted(after["cell_key"]) == sorted(rows["cell_key"])  # nothing trained
    # a run that crashed after its last row and before its report: the full path must run
    from benchmark.run.plan import plan_grid
    from benchmark.run.resume import finished_result
    from benchmark.spec.profiles import load_grid
    from benchmark.spec.settings import Settings

    settings = Settings(data_dir=data_dir, results=str(tmp_path / "results"),
                        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", allow_download=False)
    plan = plan_grid(load_grid("smoke", TINY), settings)
    assert finished_result(plan, settings) is not None
    report = Path(out.stdout.split("report: ", 1)[1].split()[0])
    os.utime(report, (0, 0))
    assert finished_result(plan, settings) is None
    print(f"rerun of a finished tiny grid: {wall:.1f} s wall (subprocess, imports included; "
          f"load {os.getloadavg()[0]:.1f})")


def test_a_grid_with_one_cell_left_is_not_answered_from_the_ledger(data_dir, tmp_path, settings):
    from benchmark.results.leaderboard import Leaderboard
    from benchmark.run.plan import plan_grid
    from benchmark.run.resume import finished_result, pending_keys
    from benchmark.spec.profiles import load_grid

    plan = plan_grid(load_grid("smoke", TINY), settings)
    assert len(pending_keys(plan, settings)) == 3  # 2 cells + 1 baseline, none finished
    assert finished_result(plan, settings) is None
    assert not Leaderboard(settings.results).finished_keys()


def counts(out: str) -> str:
    """The ``grid NAME run ID: <counts> in N s`` line of a run's output."""
    return next(line for line in out.splitlines() if line.startswith("grid "))


def test_a_grid_run_in_subgrid_parts_is_answered_whole_and_reported_whole(data_dir, tmp_path, capsys):
    """A profile run as ``--subgrid`` commands (docs/protocols.md): the whole grid afterwards trains
    nothing, and its report and result hold every part's cells (rows are the grid's by key, not by
    the grid id of the command that wrote them); the report a part left is not taken for the whole
    grid's, so the first whole run draws it, and the next one is answered from the ledger."""
    from benchmark.results.leaderboard import Leaderboard

    parts = [*_args(data_dir, tmp_path), "--engine", "local",
             "--set", "subgrids=[{modes: [scratch]}, {modes: [frozen]}]"]
    for part in ("1", "2"):
        assert main([*parts, "--subgrid", part]) == 0
    capsys.readouterr()
    trained = Leaderboard(str(tmp_path / "results")).read(kind="model")
    assert sorted(trained["mode"]) == ["frozen", "scratch"] and trained["grid_id"].nunique() == 2

    assert main(parts) == 0  # the whole grid: a report to draw, nothing to train
    whole = capsys.readouterr().out
    assert "skipped" in counts(whole) and "finished" not in counts(whole)
    assert "frozen" in whole and "scratch" in whole
    report = Path(whole.split("report: ", 1)[1].split()[0]).read_text()
    assert "frozen" in report and "scratch" in report
    assert main(parts) == 0  # now answered from the ledger, with both parts' cells
    again = capsys.readouterr().out
    assert "skipped" in counts(again) and "finished" not in counts(again)
    assert "frozen" in again and "scratch" in again
    assert len(Leaderboard(str(tmp_path / "results")).read(kind="model")) == 2
    # `tlbench report` redraws the grid as last reported: both parts, though each row has its part's grid id
    out = tmp_path / "redrawn"
    assert main(["report", "--results", str(tmp_path / "results"), "--no-forecasts", "--out", str(out)]) == 0
    redrawn = (out / "report.html").read_text()
    assert "lstm/frozen" in redrawn and "lstm/scratch" in redrawn
