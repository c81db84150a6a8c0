"""Dispatch overhead of served mode (long-lived cell workers, flows/served.py) on this machine.

Starts a throwaway Prefect server on 127.0.0.1 and ``--workers`` cell workers
(deployments/start_cell_workers.sh, CPU: one TF thread each), runs ``benchmark_grid(execution=
"served")`` on ``--cells`` tiny scratch cells (no pretraining), and reads back from the server:

* ``dispatch_s``: per cell, task run created -> started on a worker (median, p90, max); and the
  worker-side ``gap_s``: one cell's end -> the next cell's start on the same worker;
* ``cell_s``: the cells' own time on the workers (task run start -> end: data, model, training,
  MLflow logging, the leaderboard row); ``wall_s``: first task run created -> last one ended;
* ``overhead = wall_s * workers / sum(cell_s) - 1`` (what orchestration costs on top of the cells).

Not a test. Reuses the stack of tests/test_served.py. ``python benchmarks/served_overhead.py
--cells 20`` with TLBENCH_DATA_DIR set; writes benchmarks/out/served_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
OUT = ROOT / "benchmarks" / "out" / "served_overhead.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    import tests.test_served as served

    data_dir = Path(os.environ.get("TLBENCH_DATA_DIR", ROOT.parent / "shared" / "data"))
    served.TINY = ["target_sizes=[120]", "split.test_size=96", "model.units=8",
                   f"training.max_epochs={args.epochs}", "modes=[scratch]", "baselines=[]",
                   f"seeds={list(range(args.cells))}"]
    root = Path(tempfile.mkdtemp(prefix="tlbench-served-bench-"))
    stack = served.ServedStack(root, data_dir)
    try:
        stack.start()
        names = sorted(stack.start_workers(args.workers))
        stack.wait_ready(names)
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        out = served._finish(stack.parent(), timeout=3600)
        command_s = time.monotonic() - t0
        assert "RESULT" in out, out[-3000:]
        with stack.client() as client:
            runs = [r for r in client.read_task_runs(limit=200) if " @ " in r.name]
    finally:
        stack.stop()
    assert len(runs) == args.cells, f"{len(runs)} served task runs for {args.cells} cells"
    dispatch = sorted((r.start_time - r.created).total_seconds() for r in runs)
    cell = [(r.end_time - r.start_time).total_seconds() for r in runs]
    wall = (max(r.end_time for r in runs) - min(r.created for r in runs)).total_seconds()
    gaps = []
    for name in names:
        mine = sorted((r for r in runs if r.name.endswith(name)), key=lambda r: r.start_time)
        gaps += [(b.start_time - a.end_time).total_seconds() for a, b in zip(mine, mine[1:])]
    result = {
        "cells": args.cells, "workers": args.workers, "load_1min_at_start": round(load, 2),
        "load_1min_at_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
        "dispatch_s": {"median": round(statistics.median(dispatch), 3),
                       "p90": round(dispatch[int(0.9 * (len(dispatch) - 1))], 3), "max": round(dispatch[-1], 3)},
        "gap_s_median": round(statistics.median(gaps), 3) if gaps else None,
        "cell_s_sum": round(sum(cell), 2), "cell_s_median": round(statistics.median(cell), 2),
        "wall_s": round(wall, 2), "grid_command_s": round(command_s, 2),
        "overhead": round(wall * args.workers / sum(cell) - 1, 3),
        "per_worker_cells": {n: sum(1 for r in runs if r.name.endswith(n)) for n in names},
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
