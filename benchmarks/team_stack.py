"""Benchmark (not a test): a team's stack (``deployments/stack.sh``: PostgreSQL, Prefect and MLflow
servers on it) against the SQLite defaults, side by side in one run.

Starts the stack in a throwaway folder with no workers (timed: the stack's start), then runs the
same small grid with ``tlbench run`` (one job at a time) alternately

- ``sqlite``: the embedded defaults, as ``make run`` has them: Prefect in-process on its ephemeral
  API, MLflow in a SQLite file, results in a folder;
- ``stack``: the stack's Prefect server (``PREFECT_API_URL``) and MLflow server
  (``--tracking-uri http://...``), both on PostgreSQL;

each run with fresh results and its own experiment, ``--repeats`` rounds; then ``down`` (timed).
Prints a table and writes ``benchmarks/out/team_stack.json``.

    TLBENCH_DATA_DIR=../shared/data .venv/bin/python benchmarks/team_stack.py --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OUT = Path(__file__).resolve().parent / "out" / "team_stack.json"
GRID = ["target_sizes=[240]", "modes=[scratch]", "seeds=[0,1,2]", "training.max_epochs=2", "baselines=[naive]",
        "split.test_size=96", "model.units=8"]


def free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.add(sock.getsockname()[1])
    return sorted(ports)


def timed(command: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.monotonic()
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} exited {out.returncode}:\n"
                         f"{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return time.monotonic() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tlbench-stack-bench-"))
    folder.chmod(0o711)  # the cluster's user (postgres, when we are root) must enter it
    pg, prefect, mlflow = free_ports(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "TLBENCH_STACK"))}
    env.update({"TLBENCH_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"})
    stack = [str(ROOT / "deployments" / "stack.sh")]
    where = ["--dir", str(folder), "--pg-port", str(pg), "--prefect-port", str(prefect), "--mlflow-port", str(mlflow)]
    report: dict = {"grid": GRID, "load_before": os.getloadavg()[0], "runs": []}
    try:
        report["stack_up_s"], up = timed([*stack, "up", *where, "--workers", "0", "--parents", "0"], env)
        print(up.stdout, end="")
        for round_ in range(args.repeats):
            for config in ("sqlite", "stack"):
                work = folder / "bench" / f"{config}-{round_}"
                run_env = {**env, "TLBENCH_RESULTS": str(work / "results"), "PREFECT_HOME": str(work / "prefect")}
                if config == "sqlite":
                    run_env.update({"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
                                    "TLBENCH_ARTIFACTS": (work / "artifacts").as_uri()})
                else:
                    run_env.update({"PREFECT_API_URL": f"http://127.0.0.1:{prefect}/api",
                                    "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow}"})
                command = [str(BIN / "tlbench"), "run", "--profile", "smoke", "--experiment",
                           f"bench-{config}-{round_}", *(a for o in GRID for a in ("--set", o))]
                wall, out = timed(command, run_env)
                grid = re.search(r"(\d+) finished in ([\d.]+) s", out.stdout)
                row = {"config": config, "round": round_, "wall_s": round(wall, 1),
                       "finished": int(grid.group(1)), "grid_s": float(grid.group(2)),
                       "load": round(os.getloadavg()[0], 2)}
                report["runs"].append(row)
                print(json.dumps(row))
    finally:
        t0 = time.monotonic()
        subprocess.run([*stack, "down", *where], env=env, capture_output=True, text=True, timeout=300)
        report["stack_down_s"] = round(time.monotonic() - t0, 1)
        shutil.rmtree(folder, ignore_errors=True)
    report["stack_up_s"] = round(report["stack_up_s"], 1)
    print(f"stack up {report['stack_up_s']} s, down {report['stack_down_s']} s")
    print(f"{'config':8} {'round':>5} {'wall s':>7} {'grid s':>7} {'load':>5}")
    for row in report["runs"]:
        print(f"{row['config']:8} {row['round']:>5} {row['wall_s']:>7} {row['grid_s']:>7} {row['load']:>5}")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
