"""GPU check (issue #8, item 6): seconds per epoch of pretraining on all M4 Hourly training windows
for each architecture, and evidence that the cuDNN kernels are used.

Not a test; meant for a machine with a GPU and ``tensorflow[and-cuda]`` (``pip install -e '.[gpu]'``).
For every architecture it builds tlbench's own network (``benchmark.models.build_model``, 2 x 64
units), compiles it through ``benchmark.models.compile.compile_model`` and times ``model.fit`` over the
windows of ``benchmark.data.splits.source_arrays`` (all 414 series, every window: 343,564 at
lookback 24), at the nightly profile's pretraining batch size, with and without tlbench's op
determinism (``seed_everything``), since deterministic cuDNN RNN kernels are not guaranteed.

cuDNN evidence, per recurrent architecture: the same network with ``recurrent_dropout=0.1`` (which
Keras documents as leaving the cuDNN path) is timed the same way; a cuDNN run is several times
faster. The script prints the ratio and whether the op names recorded by TensorFlow's profiler
include ``CudnnRNN`` (``--profile``).

    TLBENCH_DATA_DIR=../shared/data python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --max-series 16 --epochs 2      # a quick look (also runs on a CPU)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "gpu_check.json"


def timed_fit(architecture: str, arrays, batch_size: int, epochs: int, deterministic: bool,
              recurrent_dropout: float = 0.0) -> dict:
    import keras

    from benchmark.models import build_model
    from benchmark.models.compile import compile_model
    from benchmark.models.runtime import seed_everything
    from benchmark.spec.sections import ModelSpec, TrainingSpec

    if deterministic:
        seed_everything(0)
    else:
        keras.utils.set_random_seed(0)
    spec = ModelSpec(architecture=architecture, recurrent_dropout=recurrent_dropout)
    model = build_model(spec, arrays.x_train.shape[1], arrays.x_train.shape[2], arrays.y_train.shape[1])
    compile_model(model, TrainingSpec(batch_size=batch_size, learning_rate=2e-3))
    epoch_seconds: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.started)

    try:
        model.fit(arrays.x_train, arrays.y_train, batch_size=batch_size, epochs=epochs, shuffle=True,
                  verbose=0, callbacks=[Clock()])
    except Exception as exc:  # noqa: BLE001 - a kernel without a deterministic version, say
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}
    steady = epoch_seconds[1:] or epoch_seconds
    return {"epoch_s": epoch_seconds, "steady_epoch_s": sum(steady) / len(steady),
            "windows_per_s": len(arrays.x_train) / (sum(steady) / len(steady))}


def profiled_ops(architecture: str, arrays, batch_size: int, logdir: Path) -> list[str]:
    """Names of the ops TensorFlow's profiler saw in a few training steps that mention cuDNN."""
    import tensorflow as tf

    tf.profiler.experimental.start(str(logdir))
    few = dataclasses.replace(arrays, x_train=arrays.x_train[:batch_size * 4],
                              y_train=arrays.y_train[:batch_size * 4])
    timed_fit(architecture, few, batch_size, 1, deterministic=False)
    tf.profiler.experimental.stop()
    names = set()
    for trace in logdir.rglob("*.trace.json.gz"):
        import gzip

        for event in json.loads(gzip.decompress(trace.read_bytes())).get("traceEvents", []):
            name = str(event.get("name", ""))
            if "cudnn" in name.lower():
                names.add(name)
    return sorted(names)[:20]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("TLBENCH_DATA_DIR", "data")))
    parser.add_argument("--architectures", default="lstm,gru,stacked_lstm,conv1d_lstm")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first includes tracing")
    parser.add_argument("--max-series", type=int, default=None, help="default: all 414")
    parser.add_argument("--profile", action="store_true", help="also list cuDNN ops seen by the profiler")
    parser.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) / "gpu_check.json"
                        if os.environ.get("OUT") else OUT)
    args = parser.parse_args()

    import tensorflow as tf

    from benchmark.data.sources import load_source
    from benchmark.data.splits import source_arrays
    from benchmark.spec.sections import DataSpec, PretrainSpec

    gpus = tf.config.list_physical_devices("GPU")
    frame = load_source(DataSpec("m4", {"group": "Hourly"}), args.data_dir, allow_download=False)
    arrays = source_arrays(frame, PretrainSpec(max_series=args.max_series), 24, 1)
    result = {"machine": platform.node(), "tensorflow": tf.__version__, "gpus": [g.name for g in gpus],
              "gpu_details": [tf.config.experimental.get_device_details(g) for g in gpus],
              "n_train_windows": int(len(arrays.x_train)), "batch_size": args.batch_size, "runs": {}}
    print(f"TensorFlow {tf.__version__}, GPUs: {result['gpus'] or 'none'}; {len(arrays.x_train):,} windows, "
          f"batch {args.batch_size}")
    for architecture in args.architectures.split(","):
        runs = {"default": timed_fit(architecture, arrays, args.batch_size, args.epochs, False),
                "op_determinism": timed_fit(architecture, arrays, args.batch_size, args.epochs, True)}
        # every architecture has recurrent layers, conv1d_lstm too
        runs["recurrent_dropout_0.1 (no cuDNN)"] = timed_fit(architecture, arrays, args.batch_size,
                                                             args.epochs, False, recurrent_dropout=0.1)
        if args.profile:
            runs["cudnn_ops"] = profiled_ops(architecture, arrays, args.batch_size,
                                             args.out.parent / f"profile-{architecture}")
        result["runs"][architecture] = runs
        base, slow = runs["default"], runs["recurrent_dropout_0.1 (no cuDNN)"]
        ratio = (slow["steady_epoch_s"] / base["steady_epoch_s"]
                 if "steady_epoch_s" in base and "steady_epoch_s" in slow else float("nan"))
        det = runs["op_determinism"]
        print(f"{architecture:>13}: {base.get('steady_epoch_s', float('nan')):8.2f} s/epoch "
              f"({base.get('windows_per_s', 0):,.0f} windows/s); with op determinism "
              f"{det.get('steady_epoch_s', float('nan')):.2f} s {det.get('error', '')}; without cuDNN "
              f"{slow.get('steady_epoch_s', float('nan')):.2f} s (x{ratio:.1f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
