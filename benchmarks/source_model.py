"""Which pretraining settings give a source model that beats seasonal naive on M4 Hourly?

Pretrains one body per setting through tlbench's own path (``source_arrays`` with the
setting's normalisation and sampling, ``pretrain_model`` with early stopping on held-out windows
of every series), then scores it on the M4 Hourly 48-step test of all 414 series with
``evaluate_source`` and ``ModelForecaster`` (what ``tlbench evaluate-source --model`` runs).
Each setting's row (sMAPE, MASE, OWA, pretraining seconds, epochs, windows) is appended to
``benchmarks/out/source_model.jsonl``; docs/models.md quotes the table.

    TLBENCH_DATA_DIR=../shared/data .venv/bin/python benchmarks/source_model.py \\
        --setting window-168-48 --setting global-168-48

Settings are ``NORMALISATION-LOOKBACK-HORIZON`` plus the shared options below. One process uses
one TF thread per ``--threads`` (1 by default: run two settings side by side on two cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

OUT = Path(__file__).parent / "out" / "source_model.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", action="append", required=True,
                        help="NORMALISATION-LOOKBACK-HORIZON, e.g. window-168-48")
    parser.add_argument("--windows-per-series", type=int, default=150, help="0: every window")
    parser.add_argument("--sampling", default="spread")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--loss", default="mae")
    parser.add_argument("--lr-schedule", default="constant")
    parser.add_argument("--architecture", default="lstm")
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--head-units", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from benchmark.models.runtime import configure_threads

    configure_threads(args.threads, args.threads)
    from benchmark.data.sources import load_source
    from benchmark.data.splits import source_arrays
    from benchmark.forecasters.source import evaluate_source
    from benchmark.forecasters.trained import ModelForecaster
    from benchmark.models.pretrain import pretrain_model
    from benchmark.spec.sections import DataSpec, ModelSpec, PretrainSpec, TrainingSpec

    data_dir = Path(os.environ.get("TLBENCH_DATA_DIR", "data"))
    source = DataSpec("m4", {"group": "Hourly"})
    frame = load_source(source, data_dir, allow_download=False)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    for setting in args.setting:
        normalisation, lookback, horizon = setting.rsplit("-", 2)
        lookback, horizon = int(lookback), int(horizon)
        training = TrainingSpec(batch_size=args.batch_size, learning_rate=args.learning_rate,
                                max_epochs=args.epochs, patience=args.patience, loss=args.loss,
                                lr_schedule=args.lr_schedule, deterministic=False)
        pretrain = PretrainSpec(source=source, windows_per_series=args.windows_per_series or None,
                                sampling=args.sampling, val_fraction=0.1, training=training)
        spec = ModelSpec(architecture=args.architecture, normalisation=normalisation, units=args.units,
                         head_units=args.head_units)
        started = time.perf_counter()
        arrays = source_arrays(frame, pretrain, lookback, horizon, normalisation)
        model, fit = pretrain_model(spec, training, (arrays.x_train, arrays.y_train),
                                    (arrays.x_val, arrays.y_val), (lookback, horizon), args.seed)
        seconds = time.perf_counter() - started
        forecaster = ModelForecaster(model, normalisation=normalisation)
        scores = evaluate_source(source, setting, data_dir, forecaster=forecaster, allow_download=False)
        row = {"setting": setting, "architecture": args.architecture, "normalisation": normalisation,
               "lookback": lookback, "horizon": horizon, "loss": args.loss, "units": args.units,
               "head_units": args.head_units,
               "windows_per_series": args.windows_per_series, "sampling": args.sampling,
               "n_train_windows": int(len(arrays.x_train)), "epochs_run": fit.epochs_run,
               "best_epoch": fit.best_epoch, "batch_size": args.batch_size,
               "learning_rate": args.learning_rate, "lr_schedule": args.lr_schedule,
               "pretrain_seconds": round(seconds, 1), "smape": scores["smape"], "mase": scores["mase"],
               "owa": scores["owa"], "strategy": forecaster.strategy(48), "threads": args.threads,
               "machine": f"{platform.machine()} {os.cpu_count()} cores", "load": os.getloadavg()[0],
               "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv)}
        with OUT.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
