"""``tlbench validate`` reports every problem of a grid in one call, grouped by file: the spec's
keys and names, the sizes, and each CSV's problems of every kind; the real command in a
subprocess, on a visible synthetic CSV. Missing data names its real cause and the fix that
applies, and a failed validation leaves no folder behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]


def tlbench(args: list[str], tmp_path: Path, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("TLBENCH_", "MLFLOW_"))}
    environment.update({"TLBENCH_RESULTS": str(tmp_path / "results"), "TF_CPP_MIN_LOG_LEVEL": "3",
                        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", **env})
    return subprocess.run([sys.executable, "-m", "benchmark.cli", "validate", *args], env=environment,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_every_problem_of_spec_and_csv_comes_in_one_validate_call(tmp_path, data_dir):
    stamps = pd.date_range("2024-01-01", periods=300, freq="h").astype(str).tolist()
    values = [str(float(i)) for i in range(300)]
    stamps[10] = stamps[9]  # a duplicated timestamp
    values[20] = "12,5 kW"  # a non-numeric value
    csv = tmp_path / "target.csv"
    pd.DataFrame({"date": stamps, "load": values}).to_csv(csv, index=False)
    spec = tmp_path / "grid.yaml"
    spec.write_text(f"""
name: one-pass
targets:
  - source: csv
    options: {{path: {csv}, date_column: date, value_column: load}}
target_sizes: [100000]
architectures: [lstmm]
modes: [scratch]
trainig: {{max_epochs: 1}}
""")
    out = tlbench(["--grid", str(spec), "--data-dir", str(data_dir)], tmp_path, TLBENCH_OFFLINE="1")
    assert out.returncode == 2, out.stdout + out.stderr
    err = out.stderr
    assert "grid.trainig: unknown key" in err  # keys
    assert "grid.architectures[0]: Unknown architecture 'lstmm'" in err  # names
    assert "grid.target_sizes[0] (100000)" in err and "points" in err  # sizes against the data
    assert "non-numeric value(s) in column 'load'" in err and "'12,5 kW'" in err  # the CSV: both kinds
    assert "duplicate timestamps in column 'date'" in err
    # grouped by file: the spec's problems under the spec, the CSV's under the CSV
    spec_at, csv_at = err.index(f"  {spec}:"), err.index(f"  {csv}:")
    assert spec_at < err.index("grid.trainig") < csv_at < err.index("duplicate timestamps")
    assert "Traceback" not in err and not (tmp_path / "results").exists()


def test_missing_targets_and_missing_source_are_reported_together_with_the_fix_that_applies(tmp_path):
    empty = tmp_path / "empty-data"
    args = ["--profile", "smoke", "--data-dir", str(empty), "--set", "modes=[scratch,frozen]"]
    offline = tlbench(args, tmp_path, TLBENCH_OFFLINE="1")
    assert offline.returncode == 2
    assert "ett/ETTh1" in offline.stderr and "grid.pretrain.source" in offline.stderr  # both at once
    assert "m4/datasets/Hourly-train.csv not found and downloads are off" in offline.stderr
    assert "unset TLBENCH_OFFLINE" in offline.stderr

    # downloads allowed, the network refuses: that cause, and no hint about a setting not set
    online = tlbench(args, tmp_path, https_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
                     http_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", no_proxy="")
    assert online.returncode == 2
    assert "connection refused" in online.stderr and "grid.pretrain.source" in online.stderr
    assert "unset TLBENCH_OFFLINE" not in online.stderr
    assert "targets do not fit" not in online.stderr
    assert not empty.exists()  # the failed validation left no data folder behind
