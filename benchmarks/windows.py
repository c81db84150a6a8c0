"""Time building every M4 Hourly training window (lookback 24, horizon 1, all 414 series).

Measures, best of ``--repeats`` runs each:

* ``load``: reading ``Hourly-train.csv`` into the validated tidy frame (``load_source``);
* ``windows``: ``make_windows`` over every series of the loaded frame (raw values);
* ``source_arrays``: per-series scaling plus windows, as pretraining builds them
  (``val_fraction=0``, so every window is a training window).

Prints a small table and writes ``benchmarks/out/windows.json``. Not a test: run it by hand,
``python benchmarks/windows.py --data-dir ../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from benchmark.data.sources import data_fingerprint, load_source
from benchmark.data.splits import source_arrays
from benchmark.data.windows import make_windows
from benchmark.spec.errors import TlbenchError
from benchmark.spec.sections import DataSpec, PretrainSpec
from benchmark.spec.settings import Settings

LOOKBACK, HORIZON = 24, 1
OUT = Path(__file__).resolve().parent / "out" / "windows.json"


def best_of(repeats: int, fn):
    """(best wall time in seconds, the last result)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def all_windows(frame) -> tuple[np.ndarray, np.ndarray]:
    rows = frame.groupby("unique_id", sort=True).indices  # id -> row positions
    values = frame["y"].to_numpy()
    pairs = [make_windows(values[positions], LOOKBACK, HORIZON) for positions in rows.values()]
    return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with m4/datasets/Hourly-train.csv "
                             "(default: $TLBENCH_DATA_DIR, else ./data)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    settings = Settings.from_env(os.environ, data_dir=args.data_dir)
    spec = DataSpec("m4", {"group": "Hourly"})
    try:
        load_source(spec, settings.data_dir, settings.allow_download)  # fetches missing files once
    except TlbenchError as exc:
        parser.exit(2, f"{exc}\n")
    load_s, frame = best_of(args.repeats, lambda: load_source(spec, settings.data_dir,
                                                              allow_download=False))
    windows_s, (x, y) = best_of(args.repeats, lambda: all_windows(frame))
    arrays_s, arrays = best_of(args.repeats, lambda: source_arrays(frame, PretrainSpec(val_fraction=0.0),
                                                                    LOOKBACK, HORIZON))
    assert x.shape == arrays.x_train.shape, (x.shape, arrays.x_train.shape)

    result = {
        "what": "all M4 Hourly training windows, lookback 24, horizon 1",
        "n_series": int(frame["unique_id"].nunique()), "n_points": int(len(frame)),
        "n_windows": int(x.shape[0]), "x_shape": list(x.shape), "x_mib": x.nbytes / 2**20,
        "data_fingerprint": data_fingerprint(frame),
        "best_of": args.repeats, "load_s": load_s, "windows_s": windows_s,
        "source_arrays_s": arrays_s, "total_s": load_s + arrays_s,
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{result['n_windows']:,} windows x ({LOOKBACK}, 1) float32 = {result['x_mib']:.1f} MiB "
          f"from {result['n_series']} series, best of {args.repeats}")
    print(f"{'step':<16}{'seconds':>10}")
    for step in ("load", "windows", "source_arrays", "total"):
        print(f"{step:<16}{result[step + '_s']:>10.3f}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
