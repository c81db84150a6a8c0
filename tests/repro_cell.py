"""Helper of ``test_reproducibility.py`` (run as a script, never collected): one tiny grid on the
production path, in a fresh process, printed as JSON for the test to compare across processes.

The path is the one a worker takes: ``run_grid`` on ``LocalEngine(1)`` in a plain process, Keras'
default graph mode (nothing calls ``run_functions_eagerly``) and TensorFlow's default thread pools
(nothing calls ``configure_threads``). Usage: ``python tests/repro_cell.py OUT_DIR``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

# M4 pretraining on a handful of series, then scratch and frozen cells on 120 ETTh1 points, two seeds
GRID = ["target_sizes=[120]", "split.test_size=48", "model.units=8", "training.max_epochs=3",
        "training.patience=3", "pretrain.max_series=6", "pretrain.windows_per_series=40",
        "pretrain.training.max_epochs=2", "modes=[scratch, frozen]", "seeds=[0, 1]", "baselines=[naive]"]
METRICS = ("mse", "rmse", "mae", "mape", "smape", "mase")


def main(out: Path) -> dict:
    import mlflow
    import numpy as np
    import tensorflow as tf

    from benchmark.results.leaderboard import Leaderboard
    from benchmark.run.engines import LocalEngine
    from benchmark.run.grid import run_grid
    from benchmark.spec.profiles import load_grid
    from benchmark.spec.settings import Settings

    settings = Settings(data_dir=Path(os.environ["TLBENCH_DATA_DIR"]), results=str(out / "results"),
                        mlflow_dir=out / "mlflow", allow_download=False).resolved()
    result = run_grid(load_grid("smoke", GRID), settings, LocalEngine(1))
    facts: dict = {
        "counts": result.counts(),
        "graph_mode": not tf.config.functions_run_eagerly(),
        # 0 means TF chose the pool sizes itself (its defaults: as many threads as cores)
        "threads": [tf.config.threading.get_intra_op_parallelism_threads(),
                    tf.config.threading.get_inter_op_parallelism_threads()],
        "cells": {},
    }
    mlflow.set_tracking_uri(settings.tracking_uri)
    rows = Leaderboard(settings.results).read(kind="model").sort_values(["mode", "seed"])
    for row in rows.itertuples():
        local = mlflow.artifacts.download_artifacts(run_id=row.mlflow_run_id, artifact_path="predictions.parquet",
                                                    dst_path=str(out / "downloads" / row.mlflow_run_id))
        import pandas as pd

        y_pred = pd.read_parquet(local)["y_pred"].to_numpy(np.float64)
        facts["cells"][f"{row.mode}-s{row.seed}"] = {
            "cell_key": row.cell_key,
            # float.hex: exact bits, no rounding in the JSON
            "metrics": {m: float(getattr(row, m)).hex() for m in METRICS},
            "predictions_sha256": hashlib.sha256(y_pred.tobytes()).hexdigest(),
            "predictions_head": [float(v).hex() for v in y_pred[:5]],
            "model_uri": row.model_uri,
            "epochs": int(row.epochs),
        }

    # The frozen cell's model as logged after its graph-mode fit, against the pretrained file
    import keras
    import mlflow.keras

    frozen = rows.loc[rows["mode"] == "frozen"].iloc[0]
    trained = mlflow.keras.load_model(frozen["model_uri"])
    pretrained_file = next((Path(settings.results) / "pretrained").rglob("model.keras"))
    source = keras.saving.load_model(pretrained_file, safe_mode=True)
    body = sorted(layer.name for layer in trained.layers if layer.name.startswith("body_") and layer.weights)
    facts["frozen_body_layers"] = body
    facts["frozen_body_identical"] = {
        name: all(np.array_equal(a, b) for a, b in zip(trained.get_layer(name).get_weights(),
                                                       source.get_layer(name).get_weights()))
        for name in body}
    facts["frozen_body_trainable"] = {name: trained.get_layer(name).trainable for name in body}
    facts["pretrained_weights_sha256"] = hashlib.sha256(
        b"".join(np.asarray(w).tobytes() for w in source.get_weights())).hexdigest()
    facts["frozen_params"] = int(frozen["frozen_params"])
    facts["frozen_epochs"] = int(frozen["epochs"])
    return facts


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    facts = main(target)
    (target / "facts.json").write_text(json.dumps(facts, indent=1, sort_keys=True))
    print(json.dumps(facts, sort_keys=True))
