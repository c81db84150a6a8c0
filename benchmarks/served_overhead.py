"""Dispatch overhead of served mode (long-lived cell workers, flows/served.py) on this machine.

Starts a throwaway Prefect server on 127.0.0.1 and ``--workers`` cell workers
(deployments/start_cell_workers.sh, CPU: one TF thread each), runs ``benchmark_grid(execution=
"served")`` on a grid of ``--cells`` cells, and reads back from the server:

* ``latency_s``: per cell, the dispatch latency: from the moment the cell could start (its task run
  exists *and* its worker has finished its previous cell) to the moment it started (median, p90,
  max). ``queued_s`` is task run created -> started, which also counts the wait behind the cell
  the worker is running (the parent keeps one cell queued per worker);
* ``cell_s``: the cells' own time on the workers (task run start -> end: data, model, training,
  MLflow logging, the leaderboard row); ``wall_s``: first task run created -> last one ended;
* ``overhead = wall_s * workers / sum(cell_s) - 1`` (what orchestration costs on top of the cells).

Grids (``--grid``): ``standard`` (default) is the ``standard`` profile's scratch cells at its
smallest size, 240 points, all four architectures, ``--cells / 4`` seeds: the shortest cells of
that profile, so the worst case for overhead; ``tiny`` is the 8-unit, 120-point smoke cell of
tests/test_served.py. Scratch only: no pretraining inside the measured window.

Not a test. Reuses the stack of tests/test_served.py. ``python benchmarks/served_overhead.py
--cells 200`` with TLBENCH_DATA_DIR set; writes benchmarks/out/served_overhead_<grid>.json.
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
OUT = ROOT / "benchmarks" / "out"
ARCHITECTURES = ["lstm", "gru", "stacked_lstm", "conv1d_lstm"]


def grid(name: str, cells: int, epochs: int) -> tuple[str, list[str]]:
    """The profile and overrides of ``cells`` scratch cells (no pretraining, no baselines)."""
    if name == "tiny":
        return "smoke", ["target_sizes=[120]", "split.test_size=96", "model.units=8",
                         f"training.max_epochs={epochs}", "modes=[scratch]", "baselines=[]",
                         f"seeds={list(range(cells))}"]
    if cells % len(ARCHITECTURES):
        raise SystemExit(f"--cells must be a multiple of {len(ARCHITECTURES)} for --grid standard")
    return "standard", ["target_sizes=[240]", "modes=[scratch]", "baselines=[]",
                        f"seeds={list(range(cells // len(ARCHITECTURES)))}"]


def dispatch_latencies(runs: list, names: list[str]) -> tuple[list[float], list[float]]:
    """Per cell: start - max(created, the same worker's previous end); and the workers' idle gaps."""
    latency, gaps = [], []
    for name in names:
        mine = sorted((r for r in runs if r.name.endswith(name)), key=lambda r: r.start_time)
        previous_end = None
        for run in mine:
            ready = run.created if previous_end is None else max(run.created, previous_end)
            latency.append((run.start_time - ready).total_seconds())
            if previous_end is not None:
                gaps.append((run.start_time - previous_end).total_seconds())
            previous_end = run.end_time
    return latency, gaps


def _spread(values: list[float]) -> dict:
    values = sorted(values)
    return {"median": round(statistics.median(values), 3), "p90": round(values[int(0.9 * (len(values) - 1))], 3),
            "max": round(values[-1], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of the tiny grid")
    parser.add_argument("--grid", choices=["standard", "tiny"], default="standard")
    args = parser.parse_args()
    import tests.test_served as served

    data_dir = Path(os.environ.get("TLBENCH_DATA_DIR", ROOT.parent / "shared" / "data"))
    profile, overrides = grid(args.grid, args.cells, args.epochs)
    root = Path(tempfile.mkdtemp(prefix="tlbench-served-bench-"))
    stack = served.ServedStack(root, data_dir)
    try:
        stack.start()
        names = sorted(stack.start_workers(args.workers))
        stack.wait_ready(names)
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        out = served._finish(stack.parent(profile, overrides, timeout_s=4 * 3600), timeout=4 * 3600 + 60)
        command_s = time.monotonic() - t0
        counts = served._counts(out)
        runs = stack.claimed_runs()
    finally:
        stack.stop()
    assert len(runs) == args.cells, f"{len(runs)} served task runs for {args.cells} cells; grid counts {counts}"
    queued = [(r.start_time - r.created).total_seconds() for r in runs]
    latency, gaps = dispatch_latencies(runs, names)
    cell = [(r.end_time - r.start_time).total_seconds() for r in runs]
    wall = (max(r.end_time for r in runs) - min(r.created for r in runs)).total_seconds()
    result = {
        "grid": args.grid, "profile": profile, "overrides": overrides, "cells": args.cells,
        "workers": args.workers, "load_1min_at_start": round(load, 2),
        "load_1min_at_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
        "latency_s": _spread(latency), "queued_s": _spread(queued),
        "gap_s_median": round(statistics.median(gaps), 3) if gaps else None,
        "cell_s_sum": round(sum(cell), 2), "cell_s_median": round(statistics.median(cell), 2),
        "wall_s": round(wall, 2), "grid_command_s": round(command_s, 2),
        "overhead": round(wall * args.workers / sum(cell) - 1, 3),
        "grid_counts": counts, "per_worker_cells": {n: sum(1 for r in runs if r.name.endswith(n)) for n in names},
    }
    OUT.mkdir(exist_ok=True)
    (OUT / f"served_overhead_{args.grid}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
