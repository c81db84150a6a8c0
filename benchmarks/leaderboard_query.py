"""Benchmark (not a test): how fast does the Parquet leaderboard answer a filtered query?

Writes a synthetic leaderboard (default 10,000 rows in ~200 files: 5 nightly grid runs x 5 targets
x 5 target sizes x 4 architectures x 4 transfer modes x 5 seeds, plus baselines, each run written
by 40 workers as batches), then times, best of ``--repeat``:

- ``Leaderboard.read`` with a partition filter (one run_date) and column filters (target, sizes),
- ``Leaderboard.read`` with column filters only (every file is opened),
- ``Leaderboard.finished_keys`` and a full ``read``,
- ``aggregate`` over the filtered rows and over everything.

Prints a small table and writes ``benchmarks/out/leaderboard_query.json``; exits with status 1 if
the filtered query takes longer than ``--budget`` seconds (default 1).

    .venv/bin/python benchmarks/leaderboard_query.py
    .venv/bin/python benchmarks/leaderboard_query.py --one-file-per-row --repeat 1   # the grid's layout
    .venv/bin/python benchmarks/leaderboard_query.py --one-file-per-row --compact      # then compacted
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import platform
import shutil
import sys
import tempfile
import time
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.results.leaderboard import Leaderboard
from benchmark.results.ranking import aggregate, format_table

OUT = Path(__file__).resolve().parent / "out" / "leaderboard_query.json"
TARGETS = ["ett/ETTh1:OT", "ett/ETTh2:OT", "ett/ETTm1:OT", "sunspots/monthly:y", "m4/Hourly:H413"]
SIZES = [100, 300, 1000, 3000, 10000]
ARCHITECTURES = ["lstm", "gru", "stacked_lstm", "conv1d_lstm"]
MODES = ["scratch", "fine_tune", "freeze_body", "linear_probe"]
SEEDS = range(5)
BASELINES = ["seasonal_naive", "naive"]
RUN_DATES = [(dt.date(2025, 3, 1) + dt.timedelta(days=d)).isoformat() for d in range(5)]
WORKERS_PER_RUN = 40


def synthetic_rows(rows: int, rng: np.random.Generator) -> list[dict]:
    """Plausible rows: transfer helps at small sizes and fades with size; seeds add noise."""
    out: list[dict] = []
    for run, run_date in enumerate(RUN_DATES):
        grid = "nightly" if run % 2 == 0 else "nightly_gpu"
        started = dt.datetime.fromisoformat(run_date).replace(hour=1, tzinfo=dt.timezone.utc)
        cells = [(t, s, a, m, seed) for t, s, a, m, seed in product(TARGETS, SIZES, ARCHITECTURES, MODES, SEEDS)]
        cells += [(t, s, "baseline", b, 0) for t, s, b in product(TARGETS, SIZES, BASELINES)]
        for index, (target, size, architecture, mode, seed) in enumerate(cells):
            baseline = architecture == "baseline"
            scratch = 0.8 + 1.5 / np.log10(size)
            gain = 0.0 if baseline or mode == "scratch" else 0.25 * (1000 / size) ** 0.5 - 0.05
            mase = (1.3 if mode == "seasonal_naive" else 1.6 if baseline else scratch * (1 - min(gain, 0.5)))
            mase *= 1 + (0 if baseline else rng.normal(0, 0.03))
            mae = mase * 0.4
            finished = started + dt.timedelta(seconds=30 * index)
            out.append(dict(
                grid_id=f"g{run % 2:031d}", grid=grid, run_id=f"run-{run_date}", run_date=run_date,
                cell_key=f"{run_date}-{index:05d}", kind="baseline" if baseline else "model", target=target,
                target_dataset=target.split(":")[0], target_column=target.split(":")[1], target_size=size,
                architecture=architecture, mode=mode, seed=seed, lookback=24, horizon=1,
                mse=mae ** 2 * 1.6, rmse=mae * 1.26, mae=mae, mape=mae * 12, smape=mae * 11, mase=mase,
                train_seconds=0.0 if baseline else float(size / 50 * rng.uniform(0.8, 1.2)),
                epochs=0 if baseline else int(rng.integers(5, 30)),
                trainable_params=0 if baseline else 33_000, frozen_params=0,
                mlflow_run_id=None if baseline else f"{index:032x}",
                model_uri=None if baseline else f"runs:/{index:032x}/model",
                pretrained_key=None if baseline or mode == "scratch" else "m4-hourly-lstm",
                pretrained_version=None if baseline or mode == "scratch" else "3",
                worker_host=f"worker-{index % WORKERS_PER_RUN}", device="cpu", package_version="0.1.0",
                git_commit="0123abc", data_fingerprint=f"sha256:{hash(target) & 0xFFFF:04x}",
                started_at=finished - dt.timedelta(seconds=20), finished_at=finished))
            if len(out) == rows:
                return out
    return out


def write(lb: Leaderboard, rows: list[dict], one_file_per_row: bool) -> int:
    if one_file_per_row:
        return len(lb.append(rows))
    files = 0
    by_partition: dict[tuple, list[dict]] = {}
    for row in rows:
        by_partition.setdefault((row["run_date"], row["grid"]), []).append(row)
    for part in by_partition.values():
        for chunk in np.array_split(np.arange(len(part)), WORKERS_PER_RUN):
            lb.append_batch([part[i] for i in chunk])
            files += 1
    return files


def best_of(repeat: int, call) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds allowed for the filtered query")
    parser.add_argument("--one-file-per-row", action="store_true", help="write with append(): one file per row")
    parser.add_argument("--compact", action="store_true", help="run Leaderboard.compact() before querying")
    parser.add_argument("--location", help="where to write (default: a temporary folder, removed afterwards)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON report (default {OUT})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    temporary = None if args.location else tempfile.mkdtemp(prefix="tlbench-lb-")
    location = args.location or temporary
    try:
        rows = synthetic_rows(args.rows, np.random.default_rng(0))
        lb = Leaderboard(location)
        start = time.perf_counter()
        files = write(lb, rows, args.one_file_per_row)
        write_seconds = time.perf_counter() - start
        compact_seconds, compacted = None, None
        if args.compact:
            start = time.perf_counter()
            compacted = lb.compact()
            compact_seconds = time.perf_counter() - start

        latest = RUN_DATES[-1]
        query = dict(run_date=latest, target="ett/ETTh1:OT", target_size=[100, 1000])
        t_filtered, filtered = best_of(args.repeat, lambda: lb.read(**query))
        t_columns_only, by_columns = best_of(args.repeat, lambda: lb.read(target="ett/ETTh1:OT", architecture="lstm"))
        t_keys, keys = best_of(args.repeat, lb.finished_keys)
        t_full, full = best_of(args.repeat, lb.read)
        t_agg_filtered, agg = best_of(args.repeat, lambda: aggregate(filtered))
        t_agg_full, agg_full = best_of(max(1, args.repeat // 2), lambda: aggregate(full))
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)

    timings = [
        ("write (append_batch)" if not args.one_file_per_row else "write (append, 1 file/row)",
         write_seconds, f"{len(rows)} rows, {files} files"),
        *([("compact", compact_seconds, f"{compacted['files_merged']} files -> {compacted['files_written']}")]
          if args.compact else []),
        ("read: run_date + target + 2 sizes", t_filtered, f"{len(filtered)} rows"),
        ("read: target + architecture", t_columns_only, f"{len(by_columns)} rows (all files opened)"),
        ("finished_keys", t_keys, f"{len(keys)} keys"),
        ("read: everything", t_full, f"{len(full)} rows"),
        ("aggregate (filtered rows)", t_agg_filtered, f"{len(agg)} groups"),
        ("aggregate (everything)", t_agg_full, f"{len(agg_full)} groups"),
    ]
    table = pd.DataFrame(timings, columns=["step", "seconds", "what"])
    print(format_table(table))
    print()
    print(format_table(agg, columns=["target_size", "architecture", "mode", "n_seeds", "mase_mean", "mase_ci95",
                                     "rank", "improvement_vs_scratch_pct", "p_value_vs_scratch"], max_rows=8))
    report = dict(
        rows=len(rows), files=files, one_file_per_row=args.one_file_per_row, compacted=compacted,
        repeat=args.repeat,
        budget_seconds=args.budget, filtered_query=query,
        seconds={step: round(seconds, 4) for step, seconds, _ in timings},
        details={step: what for step, _, what in timings},
        within_budget=t_filtered < args.budget, python=platform.python_version(), machine=platform.machine(),
        measured_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    verdict = "within" if report["within_budget"] else "OVER"
    print(f"\nfiltered query {t_filtered:.3f} s (best of {args.repeat}): {verdict} the {args.budget:g} s budget; "
          f"wrote {args.out}")
    return 0 if report["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
