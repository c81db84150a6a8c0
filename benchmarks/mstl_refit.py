"""MSTL from every test origin: how often to refit and on how much history (docs/models.md).

On ett-standard's slices (ETTh1 and ETTh2 ``OT``, protocol ``ett_standard``, target size 720:
history ``[7920, 11520)``, 24-step forecasts from test origins in ``[11520, 14377)``) it compares,
on a fixed random sample of test origins, every (refit interval ``k``, history ``W``) of
:class:`benchmark.forecasters.mstl.RollingMSTL` with the per-origin reference (a fresh MSTL on all
of the history before each origin: ``k`` 1, ``W`` all): the mean absolute gap to the reference's
forecasts and the MAE against the truth, both on the z-scale of the training rows (``mae_z``),
over the 24 steps and at step 1. ``--timing`` adds seconds per origin over every test origin of
one target for the listed settings. Not a test.

    TLBENCH_DATA_DIR=../shared/data python benchmarks/mstl_refit.py --samples 24 --timing 168:2688,72:2688
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

SETTINGS = "1:672,1:1344,24:672,24:1344,24:2688,24:all,72:2688,168:672,168:1344,168:2688,168:4032"


def parse(settings: str) -> list[tuple[int, int | None]]:
    """``"24:672,168:all"`` -> ``[(24, 672), (168, None)]``: (refit interval k, history W)."""
    return [(int(k), None if w == "all" else int(w)) for k, w in
            (part.split(":") for part in settings.split(",") if part)]


def slices(data_dir: Path, size: int):
    """``(name, series, n_history, origins, z_std)`` per target: ``series`` starts at the history."""
    import pandas as pd

    from benchmark.data.splits import split_target, test_origins
    from benchmark.spec.sections import SplitSpec

    split = SplitSpec(protocol="ett_standard", lookback=96, horizon=24)
    for name in ("ETTh1", "ETTh2"):
        values = pd.read_csv(data_dir / "ett" / f"{name}.csv")["OT"].to_numpy(float)
        cut = split_target(len(values), size, split, name)
        origins = test_origins(cut, split) - cut.history_start
        std = values[cut.history_start:cut.val_start].std()
        yield name, values[cut.history_start:cut.end], cut.test_start - cut.history_start, origins, std


def label(k: int, w: int | None) -> str:
    return f"k={k} W={'all' if w is None else w}"


def compare(series, n_history, origins, std, samples: int, seed: int, settings) -> dict:
    from benchmark.forecasters.mstl import _Refit

    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(origins, samples, replace=False))
    truth = np.stack([series[t:t + 24] for t in chosen])
    started = time.monotonic()
    reference = np.stack([_Refit.fit(series, t, None, 24).forecast_from(series, t, 24) for t in chosen])
    out = {"reference": {"mae_z": float(np.abs(reference - truth).mean() / std),
                         "mae_z_step1": float(np.abs(reference - truth)[:, 0].mean() / std),
                         "seconds_per_origin": (time.monotonic() - started) / samples}}
    for k, w in settings:
        points = n_history + (chosen - n_history) // k * k
        forecasts = np.stack([_Refit.fit(series, r, w, 24).forecast_from(series, t, 24)
                              for r, t in zip(points, chosen)])
        out[label(k, w)] = {"gap_z": float(np.abs(forecasts - reference).mean() / std),
                            "gap_z_max": float(np.abs(forecasts - reference).max() / std),
                            "mae_z": float(np.abs(forecasts - truth).mean() / std),
                            "mae_z_step1": float(np.abs(forecasts - truth)[:, 0].mean() / std)}
    return out


def timing(series, n_history, origins, std, settings: list[tuple[int, int | None]]) -> dict:
    from benchmark.forecasters.mstl import RollingMSTL

    out = {}
    truth = np.stack([series[t:t + 24] for t in origins])
    for k, w in settings:
        started = time.monotonic()
        forecaster = RollingMSTL(24, k, w, fit_seconds=3600).fit(series[:n_history])
        forecast = forecaster.forecast(series, origins, 24)
        seconds = time.monotonic() - started
        out[label(k, w)] = {"seconds": seconds, "ms_per_origin": 1000 * seconds / len(origins),
                            "n_origins": len(origins), "mae_z_all": float(np.abs(forecast - truth).mean() / std)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TLBENCH_DATA_DIR", "data"))
    parser.add_argument("--size", type=int, default=720)
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", default=SETTINGS, help="k:W,... compared with the reference")
    parser.add_argument("--timing", default="", help="k:W,... timed over every test origin of ETTh1")
    args = parser.parse_args()
    timed = parse(args.timing)
    results = {"load_1min": os.getloadavg()[0], "size": args.size, "samples": args.samples}
    for name, series, n_history, origins, std in slices(Path(args.data_dir), args.size):
        results[name] = compare(series, n_history, origins, std, args.samples, args.seed, parse(args.settings))
        if timed and name == "ETTh1":
            results[name]["timing"] = timing(series, n_history, origins, std, timed)
        print(name, json.dumps(results[name], indent=1), flush=True)
    results["load_1min_end"] = os.getloadavg()[0]
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / f"mstl_refit_{args.size}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
