"""Training throughput: tlbench's training path against a bare ``model.fit``, and what speeds it up.

Sections (``--sections``, default all but ``threads``' slow repeats are kept small):

* ``paths``: windows/s per architecture, tlbench's cell path (``seed_everything`` +
  ``prepare_for_mode("scratch")`` + ``train_for_mode`` with a ``TrainingSpec``) against a bare
  ``build_model`` + ``compile`` + ``model.fit`` on the same arrays, same batch size, same epochs,
  same validation data, in one process, interleaved (ABBA) and repeated. The ratio is bare time /
  tlbench time (1.0 = as fast; target >= 0.95), as wall time and as process CPU time.
* ``predict``: ``benchmark.models.regimes.predict`` against ``model.predict`` on a fresh model (first call,
  tracing included) and again (steady).
* ``options``: one architecture, bare ``model.fit`` with XLA (``jit_compile``) on/off,
  ``steps_per_execution`` 1/8, TF op determinism (what ``seed_everything`` turns on) off/on.
* ``batch``: pretraining batch size with the learning rate scaled (256 vs 1024 vs 2048 at
  lr x sqrt(k) and x k) on a fixed M4 Hourly subset: windows/s and the validation loss reached
  after each epoch, and the time to reach the batch-256 run's best validation loss.
* ``threads``: several cell-sized jobs (build + trace + fit) run one after the other or two at a
  time, as threads in one process or as separate processes, under different TF thread settings:
  aggregate windows/s. Each setting runs in fresh processes (thread pools are fixed once TF starts).

Windows/s counts training windows only (``n_train * epochs / seconds``); the seconds are the whole
fit call (validation passes and first-epoch tracing included) unless labelled ``steady`` (epochs
2.. only). Every measurement records the 1-minute load average. The machine is shared: compare
figures within one run, not across runs.

Not a test. ``.venv/bin/python benchmarks/throughput.py --data-dir ../shared/data`` (default
``$TLBENCH_DATA_DIR``); writes ``benchmarks/out/throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "throughput.json"
ARCHITECTURES = ("lstm", "gru", "stacked_lstm", "conv1d_lstm")
LOOKBACK, HORIZON = 24, 1
ALL_SECTIONS = ("paths", "predict", "options", "batch", "threads")


# --------------------------------------------------------------------------- helpers


def load() -> float:
    return round(os.getloadavg()[0], 2)


def median(values):
    return statistics.median(values) if values else math.nan


def machine_info() -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001 - not a checkout
        commit = ""
    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "cpus": os.cpu_count(), "git_commit": commit,
            "processor": platform.processor() or platform.machine()}


def m4_arrays(data_dir: Path, max_series: int | None, windows_per_series: int, val_stride: int,
              val_fraction: float = 0.1):
    """(x_train, y_train, x_val, y_val) of an M4 Hourly subset, as pretraining builds them; the
    validation windows thinned to every ``val_stride``-th so validation does not dominate."""
    from benchmark.data.sources import load_source
    from benchmark.data.splits import source_arrays
    from benchmark.spec.sections import DataSpec, PretrainSpec

    frame = load_source(DataSpec("m4", {"group": "Hourly"}), data_dir, allow_download=False)
    pretrain = PretrainSpec(val_fraction=val_fraction, windows_per_series=windows_per_series,
                            max_series=max_series, sampling="last")
    arrays = source_arrays(frame, pretrain, LOOKBACK, HORIZON)
    return (arrays.x_train, arrays.y_train, arrays.x_val[::val_stride].copy(),
            arrays.y_val[::val_stride].copy())


def set_determinism(on: bool) -> None:
    """TF op determinism on/off. ``seed_everything`` turns it on for the whole process; a bare Keras
    run has it off, and TF's public API can only turn it on, hence the internal switch."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    if on:
        tf.config.experimental.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()


class EpochClock:
    """Wall-clock time at the start and at the end of every epoch."""

    def __init__(self):
        self.marks = [time.perf_counter()]

    def tick(self, *_):
        self.marks.append(time.perf_counter())

    def steady_seconds(self) -> float:
        """Seconds of epochs 2.. (no tracing); NaN with fewer than 2 epochs."""
        return self.marks[-1] - self.marks[1] if len(self.marks) > 2 else math.nan


def run_tlbench(arch: str, arrays, batch_size: int, epochs: int, learning_rate: float = 1e-3,
                seed: int = 0, deterministic: bool = True) -> dict:
    """One cell's training as tlbench does it (train_and_evaluate's path, scratch mode)."""
    from benchmark.models import TRANSFER_MODES, prepare_for_mode
    from benchmark.models.runtime import seed_everything
    from benchmark.models.training import train_for_mode
    from benchmark.spec.sections import ModelSpec, TrainingSpec, TransferSpec

    x, y, xv, yv = arrays
    training = TrainingSpec(learning_rate=learning_rate, batch_size=batch_size, max_epochs=epochs,
                            patience=epochs + 1,  # every epoch runs, as in the bare fit
                            deterministic=deterministic)
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    seed_everything(seed, deterministic)
    model = prepare_for_mode("scratch", ModelSpec(architecture=arch), LOOKBACK, x.shape[-1], HORIZON, None)
    clock = EpochClock()
    result = train_for_mode(model, TRANSFER_MODES.get("scratch"), (x, y), (xv, yv), training,
                            TransferSpec(), on_epoch_end=clock.tick)
    return {"wall_s": time.perf_counter() - started_wall, "cpu_s": time.process_time() - started_cpu,
            "steady_s": clock.steady_seconds(), "epochs": result.epochs_run,
            "val_loss": result.history["val_loss"], "epoch_marks": clock.marks, "load": load()}


def _tf_data_fit_phase(model, arrays, run, epochs: int, phase_index: int) -> dict:
    """tlbench's ``_fit_phase`` before this benchmark (commit 5a61cae): a ``tf.data`` pipeline with a
    shuffle buffer over every window, batched and prefetched. Kept here to measure the change."""
    import numpy as np
    import tensorflow as tf

    from benchmark.models import training as tr

    (x_train, y_train), (x_val, y_val) = arrays
    train_ds = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    if run.training.shuffle:
        seed = int(np.random.randint(0, 2**31 - 1))
        train_ds = train_ds.shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
    train_ds = train_ds.batch(run.training.batch_size).prefetch(tf.data.AUTOTUNE)
    val_ds = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(run.training.batch_size)
    monitor = tr._EpochMonitor(run, phase_index)
    model.fit(train_ds, validation_data=val_ds.prefetch(tf.data.AUTOTUNE), epochs=epochs,
              callbacks=[monitor], shuffle=False, verbose=0)
    if run.best_weights is not None:
        model.set_weights(run.best_weights)
    return {"phase": phase_index, "epochs_planned": epochs, "epochs_run": run.result.epochs_run,
            "stopped_early": monitor.stopped, "seconds": 0.0}


def run_tlbench_tf_data(*args, **kwargs) -> dict:
    """:func:`run_tlbench` with the former tf.data input pipeline."""
    from benchmark.models import training as tr

    current = tr._fit_phase
    tr._fit_phase = _tf_data_fit_phase
    try:
        return run_tlbench(*args, **kwargs)
    finally:
        tr._fit_phase = current


def run_bare(arch: str, arrays, batch_size: int, epochs: int, learning_rate: float = 1e-3, seed: int = 0,
             jit_compile: bool | str = "auto", steps_per_execution: int = 1,
             determinism: bool = False) -> dict:
    """The same network trained with plain Keras: compile + fit on NumPy arrays."""
    import keras

    from benchmark.models import build_model
    from benchmark.spec.sections import ModelSpec

    x, y, xv, yv = arrays
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    set_determinism(determinism)
    keras.utils.set_random_seed(seed)
    model = build_model(ModelSpec(architecture=arch), LOOKBACK, x.shape[-1], HORIZON)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse",
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    clock = EpochClock()
    history = model.fit(x, y, validation_data=(xv, yv), batch_size=batch_size, epochs=epochs,
                        shuffle=True, verbose=0,
                        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=clock.tick)])
    return {"wall_s": time.perf_counter() - started_wall, "cpu_s": time.process_time() - started_cpu,
            "steady_s": clock.steady_seconds(), "epochs": len(history.history["loss"]),
            "val_loss": [float(v) for v in history.history["val_loss"]], "load": load()}


def rates(runs: list[dict], n_train: int, epochs: int) -> dict:
    """windows/s (median over runs) end to end and steady, plus median seconds."""
    return {"windows_per_s": median([n_train * epochs / r["wall_s"] for r in runs]),
            "steady_windows_per_s": median([n_train * (epochs - 1) / r["steady_s"] for r in runs]),
            "wall_s": median([r["wall_s"] for r in runs]), "cpu_s": median([r["cpu_s"] for r in runs]),
            "loads": [r["load"] for r in runs]}


def interleaved(variants: dict, repeats: int, warm_up: bool = False) -> dict[str, list[dict]]:
    """Run every variant ``repeats`` times, order reversed on odd repeats (ABBA); with ``warm_up``,
    the first variant runs once before, unrecorded (TF's first kernels and pipeline start-up)."""
    results: dict[str, list[dict]] = {name: [] for name in variants}
    names = list(variants)
    if warm_up:
        next(iter(variants.values()))()
    for repeat in range(repeats):
        for name in (names if repeat % 2 == 0 else names[::-1]):
            results[name].append(variants[name]())
    return results


def pair_ratios(reference: list[dict], candidate: list[dict], key: str) -> list[float]:
    """reference / candidate seconds per repeat (> 1: the candidate is faster)."""
    return [r[key] / c[key] for r, c in zip(reference, candidate)]


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(h)), *(len(fmt(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(str(h).rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(fmt(v).rjust(w) for v, w in zip(row, widths)))


def fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


# --------------------------------------------------------------------------- sections


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def section_paths(args, arrays) -> dict:
    """Five variants per (architecture, batch size): bare Keras as shipped (op determinism off),
    bare Keras with op determinism on (what ``seed_everything`` adds), tlbench's path, tlbench's
    path with ``training.deterministic: false`` ("fast"), and tlbench's path with its former
    tf.data input pipeline (``--no-tf-data`` leaves it out)."""
    n_train = len(arrays[0])
    out = {"what": "tlbench train_for_mode(scratch) vs bare model.fit, same arrays/batch/epochs",
           "n_train": n_train, "n_val": len(arrays[2]), "epochs": args.epochs, "repeats": args.repeats,
           "results": []}
    rows, first = [], True
    for batch_size in args.batch_sizes:
        for arch in args.architectures:
            runs = interleaved({
                "bare": lambda: run_bare(arch, arrays, batch_size, args.epochs),
                "bare_determinism": lambda: run_bare(arch, arrays, batch_size, args.epochs, determinism=True),
                "tlbench": lambda: run_tlbench(arch, arrays, batch_size, args.epochs),
                "tlbench_fast": lambda: run_tlbench(arch, arrays, batch_size, args.epochs, deterministic=False),
                **({} if args.no_tf_data else
                   {"tlbench_tf_data": lambda: run_tlbench_tf_data(arch, arrays, batch_size, args.epochs)}),
            }, args.repeats, warm_up=first)
            first = False
            summary = {name: rates(results, n_train, args.epochs) for name, results in runs.items()}
            ratios = {f"{key}_{ref}": pair_ratios(runs[ref], runs["tlbench"], f"{key}_s")
                      for ref in ("bare", "bare_determinism") for key in ("wall", "cpu", "steady")}
            ratios["wall_fast_bare"] = pair_ratios(runs["bare"], runs["tlbench_fast"], "wall_s")
            ratios["steady_fast_bare"] = pair_ratios(runs["bare"], runs["tlbench_fast"], "steady_s")
            if "tlbench_tf_data" in runs:
                ratios["wall_tf_data"] = pair_ratios(runs["tlbench_tf_data"], runs["tlbench"], "wall_s")
                ratios["steady_tf_data"] = pair_ratios(runs["tlbench_tf_data"], runs["tlbench"], "steady_s")
            entry = {"architecture": arch, "batch_size": batch_size, **summary,
                     "ratios": ratios, **{f"ratio_{k}": median(v) for k, v in ratios.items()}}
            out["results"].append(entry)
            loads = [v for name in runs for v in summary[name]["loads"]]
            rows.append([arch, batch_size, summary["bare"]["windows_per_s"],
                         summary["bare_determinism"]["windows_per_s"], summary["tlbench"]["windows_per_s"],
                         entry["ratio_wall_bare"], spread(ratios["wall_bare"]), entry["ratio_steady_bare"],
                         entry["ratio_wall_bare_determinism"], spread(ratios["wall_bare_determinism"]),
                         entry["ratio_steady_bare_determinism"], entry["ratio_cpu_bare_determinism"],
                         entry.get("ratio_wall_tf_data", math.nan), summary["tlbench_fast"]["windows_per_s"],
                         entry["ratio_wall_fast_bare"], spread(ratios["wall_fast_bare"]),
                         entry["ratio_steady_fast_bare"], f"{min(loads):.1f}-{max(loads):.1f}"])
            print(f"  {arch} batch {batch_size}: ratio wall vs bare {entry['ratio_wall_bare']:.3f}, vs bare "
                  f"with determinism {entry['ratio_wall_bare_determinism']:.3f}; deterministic=false vs bare "
                  f"{entry['ratio_wall_fast_bare']:.3f}", flush=True)
    print_table(f"paths: windows/s (median of {args.repeats}); ratio = reference s / tlbench s (1 = as fast, "
                "> 1 faster), median and range over repeats; 'det' = bare Keras with TF op determinism on; "
                "'vs tf.data' = tlbench's former tf.data pipeline s / tlbench s",
                ["arch", "batch", "bare w/s", "bare+det w/s", "tlbench w/s", "vs bare", "range",
                 "steady", "vs bare+det", "range", "steady", "cpu", "vs tf.data", "fast w/s", "fast vs bare",
                 "range", "steady", "load"], rows)
    return out


def section_predict(args, arrays) -> dict:
    import keras

    from benchmark.models import build_model
    from benchmark.models.regimes import predict
    from benchmark.spec.sections import ModelSpec

    x_test = arrays[2][:720]  # a cell's test segment: 720 windows (smoke)
    times: dict[str, list[float]] = {"tlbench_first": [], "keras_first": [], "tlbench_again": [],
                                     "keras_again": []}
    loads = []
    for repeat in range(args.repeats + 1):
        for who in (("tlbench", "keras") if repeat % 2 == 0 else ("keras", "tlbench")):
            keras.utils.set_random_seed(repeat)
            model = build_model(ModelSpec(architecture="lstm"), LOOKBACK, 1, HORIZON)
            call = ((lambda: predict(model, x_test)) if who == "tlbench"
                    else (lambda: model.predict(x_test, batch_size=1024, verbose=0)))
            for when in ("first", "again"):
                started = time.perf_counter()
                call()
                if repeat:  # repeat 0 is the warm-up
                    times[f"{who}_{when}"].append(time.perf_counter() - started)
        loads.append(load())
    out = {"what": "predict 720 windows with a fresh 2x64 LSTM", "seconds_median":
           {k: median(v) for k, v in times.items()}, "loads": loads}
    print_table("predict: seconds (median), fresh model", ["call", "first (traces)", "again"],
                [[who, out["seconds_median"][f"{who}_first"], out["seconds_median"][f"{who}_again"]]
                 for who in ("tlbench", "keras")])
    return out


def section_options(args, arrays) -> dict:
    n_train, arch, batch_size = len(arrays[0]), args.options_architecture, args.options_batch_size
    variants = {
        "default": lambda: run_bare(arch, arrays, batch_size, args.epochs),
        "jit_compile": lambda: run_bare(arch, arrays, batch_size, args.epochs, jit_compile=True),
        "steps_per_execution_8": lambda: run_bare(arch, arrays, batch_size, args.epochs, steps_per_execution=8),
        "op_determinism": lambda: run_bare(arch, arrays, batch_size, args.epochs, determinism=True),
    }
    runs = interleaved(variants, args.repeats, warm_up=True)
    out = {"what": f"bare model.fit variants, {arch}, batch {batch_size}", "epochs": args.epochs,
           "n_train": n_train, "results": {}}
    rows = []
    for name, results in runs.items():
        summary = rates(results, n_train, args.epochs)
        summary["speedup_wall_vs_default"] = median(pair_ratios(runs["default"], results, "wall_s"))
        summary["speedup_steady_vs_default"] = median(pair_ratios(runs["default"], results, "steady_s"))
        out["results"][name] = summary
        rows.append([name, summary["windows_per_s"], summary["steady_windows_per_s"],
                     summary["speedup_wall_vs_default"], summary["speedup_steady_vs_default"],
                     f"{min(summary['loads']):.1f}-{max(summary['loads']):.1f}"])
    print_table(f"options: {arch} batch {batch_size}, bare fit (median of {args.repeats}); speed-up = "
                "default s / variant s", ["variant", "w/s", "steady w/s", "speed-up", "steady speed-up",
                                          "load"], rows)
    return out


def section_batch(args) -> dict:
    arrays = m4_arrays(args.data_dir, None, args.batch_windows_per_series, val_stride=8)
    n_train = len(arrays[0])
    base_batch, base_lr = 256, args.batch_base_lr
    configs = [(256, base_lr, "base")]
    for batch_size in (1024, 2048):
        k = batch_size / base_batch
        configs += [(batch_size, base_lr, "same lr"), (batch_size, base_lr * math.sqrt(k), "lr x sqrt(k)"),
                    (batch_size, base_lr * k, "lr x k")]
    results = []
    for seed in args.batch_seeds:
        order = configs if seed % 2 == 0 else configs[::-1]
        for batch_size, lr, rule in order:
            run = run_tlbench("lstm", arrays, batch_size, args.batch_epochs, learning_rate=lr, seed=seed)
            results.append({"batch_size": batch_size, "learning_rate": lr, "rule": rule, "seed": seed, **run})
            print(f"  batch {batch_size} lr {lr:.4g} ({rule}) seed {seed}: best val "
                  f"{min(run['val_loss']):.4f}, {n_train * args.batch_epochs / run['wall_s']:,.0f} w/s, "
                  f"load {run['load']}", flush=True)
    # The bar to reach: the base run's best validation loss (per seed).
    summary, rows = [], []
    for batch_size, lr, rule in configs:
        mine = [r for r in results if r["batch_size"] == batch_size and r["learning_rate"] == lr]
        to_target = []
        for run in mine:
            base = next(r for r in results if r["rule"] == "base" and r["seed"] == run["seed"])
            target = min(base["val_loss"]) * 1.005
            reached = [i for i, v in enumerate(run["val_loss"]) if v <= target]
            to_target.append(run["epoch_marks"][reached[0] + 1] - run["epoch_marks"][0] if reached else math.nan)
        row = {"batch_size": batch_size, "learning_rate": lr, "rule": rule,
               "windows_per_s": median([n_train * args.batch_epochs / r["wall_s"] for r in mine]),
               "steady_windows_per_s": median([n_train * (args.batch_epochs - 1) / r["steady_s"] for r in mine]),
               "best_val_loss": median([min(r["val_loss"]) for r in mine]),
               "best_val_loss_per_seed": [min(r["val_loss"]) for r in mine],
               "final_val_loss": median([r["val_loss"][-1] for r in mine]),
               "seconds_to_base_best": median(to_target), "loads": [r["load"] for r in mine]}
        summary.append(row)
        rows.append([batch_size, f"{lr:.4g}", rule, row["windows_per_s"], row["steady_windows_per_s"],
                     row["best_val_loss"], " ".join(f"{v:.4f}" for v in row["best_val_loss_per_seed"]),
                     row["seconds_to_base_best"], f"{min(row['loads']):.1f}-{max(row['loads']):.1f}"])
    print_table(f"batch: pretraining LSTM on {n_train:,} M4 windows, {args.batch_epochs} epochs, seeds "
                f"{list(args.batch_seeds)} (medians); 'to base' = seconds until val loss <= the batch-256 "
                "best x 1.005", ["batch", "lr", "rule", "w/s", "steady w/s", "best val", "per seed",
                                 "s to base", "load"], rows)
    return {"what": "pretraining batch size with the learning rate scaled (tlbench fit path, LSTM)",
            "n_train": n_train, "n_val": len(arrays[2]), "epochs": args.batch_epochs,
            "windows_per_series": args.batch_windows_per_series, "series": "all 414",
            "summary": summary, "runs": results}


# --------------------------------------------------------------------------- threads (subprocesses)

THREAD_SETTINGS = {
    # name: (processes, threads per process, intra, inter); None = TF's default (all cores)
    "sequential, TF default threads": (1, 1, None, None),
    "sequential, intra 1 inter 1": (1, 1, 1, 1),
    "sequential, intra 2 inter 1": (1, 1, 2, 1),
    "2 threads, TF default threads": (1, 2, None, None),
    "2 threads, intra 1 inter 1": (1, 2, 1, 1),
    "2 threads, intra 1 inter 2": (1, 2, 1, 2),
    "2 processes, intra 1 inter 1": (2, 1, 1, 1),
}


def thread_worker(spec: dict) -> None:
    """Child process: set threads, prepare, say READY, wait for GO, run the jobs, print JSON."""
    if spec["intra"] is not None:
        from benchmark.models.runtime import configure_threads

        configure_threads(spec["intra"], spec["inter"])
    import tensorflow as tf

    arrays = m4_arrays(Path(spec["data_dir"]), spec["max_series"], spec["windows_per_series"], val_stride=4)
    threads = (tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads())
    print("READY", flush=True)
    sys.stdin.readline()
    started = time.time()
    job = lambda seed: run_tlbench("lstm", arrays, spec["batch_size"], spec["epochs"], seed=seed)  # noqa: E731
    with ThreadPoolExecutor(spec["threads"]) as pool:
        runs = list(pool.map(job, range(spec["jobs"])))
    print(json.dumps({"start": started, "end": time.time(), "n_train": len(arrays[0]),
                      "jobs": [r["wall_s"] for r in runs], "tf_threads": threads}), flush=True)


def run_thread_setting(args, name: str) -> dict:
    processes, threads, intra, inter = THREAD_SETTINGS[name]
    jobs_per_process = args.thread_jobs // processes
    spec = {"data_dir": str(args.data_dir), "max_series": 128, "windows_per_series": args.thread_windows // 128,
            "batch_size": 64, "epochs": args.thread_epochs, "threads": threads, "jobs": jobs_per_process,
            "intra": intra, "inter": inter}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    children = [subprocess.Popen([sys.executable, __file__, "--thread-worker", json.dumps(spec)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True, env=env) for _ in range(processes)]
    for child in children:  # imports and data done in every process before the clock starts
        line = child.stdout.readline()
        if line.strip() != "READY":
            raise RuntimeError(f"thread worker for {name!r} failed to start: {line!r}")
    load_before = load()
    for child in children:
        child.stdin.write("GO\n")
        child.stdin.flush()
    reports = []
    for child in children:
        out, _ = child.communicate(timeout=3600)
        reports.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    windows = sum(r["n_train"] * args.thread_epochs * len(r["jobs"]) for r in reports)
    return {"setting": name, "processes": processes, "threads": threads, "intra": intra, "inter": inter,
            "tf_threads": reports[0]["tf_threads"], "jobs": args.thread_jobs, "wall_s": wall,
            "windows_per_s": windows / wall, "job_seconds": [s for r in reports for s in r["jobs"]],
            "load_before": load_before, "load_after": load()}


def section_threads(args) -> dict:
    names = list(THREAD_SETTINGS)
    runs = []
    for repeat in range(args.thread_repeats):
        for name in (names if repeat % 2 == 0 else names[::-1]):
            runs.append(run_thread_setting(args, name))
            print(f"  {name}: {runs[-1]['windows_per_s']:,.0f} w/s in {runs[-1]['wall_s']:.1f} s "
                  f"(load {runs[-1]['load_before']})", flush=True)
    base = {r["setting"]: r for r in runs}  # the last run of each, used only for shapes
    summary, rows = [], []
    reference = median([r["wall_s"] for r in runs if r["setting"] == "sequential, TF default threads"])
    for name in names:
        mine = [r for r in runs if r["setting"] == name]
        row = {"setting": name, "tf_threads": base[name]["tf_threads"],
               "windows_per_s": median([r["windows_per_s"] for r in mine]),
               "wall_s": median([r["wall_s"] for r in mine]),
               "speedup_vs_sequential_default": reference / median([r["wall_s"] for r in mine]),
               "median_job_s": median([s for r in mine for s in r["job_seconds"]]),
               "loads": [r["load_before"] for r in mine]}
        summary.append(row)
        rows.append([name, "x".join(map(str, row["tf_threads"])), row["windows_per_s"], row["wall_s"],
                     row["speedup_vs_sequential_default"], row["median_job_s"],
                     f"{min(row['loads']):.1f}-{max(row['loads']):.1f}"])
    print_table(f"threads: {args.thread_jobs} cell-sized LSTM jobs (build + trace + fit, ~{args.thread_windows} "
                f"windows, batch 64, {args.thread_epochs} epochs), medians of {args.thread_repeats}",
                ["setting", "intra x inter", "w/s", "wall s", "speed-up", "job s", "load"], rows)
    return {"what": "aggregate throughput of parallel cell-sized jobs under TF thread settings",
            "jobs": args.thread_jobs, "epochs": args.thread_epochs, "summary": summary, "runs": runs}


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with m4/datasets/Hourly-train.csv (default: $TLBENCH_DATA_DIR, else ./data)")
    parser.add_argument("--sections", default=",".join(ALL_SECTIONS),
                        help=f"comma-separated, from {', '.join(ALL_SECTIONS)}")
    parser.add_argument("--architectures", default=",".join(ARCHITECTURES))
    parser.add_argument("--batch-sizes", default="64,512", help="paths section")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-tf-data", action="store_true", help="paths: leave out the former tf.data path")
    parser.add_argument("--windows", type=int, default=6400, help="training windows (128 M4 series)")
    parser.add_argument("--options-architecture", default="lstm")
    parser.add_argument("--options-batch-size", type=int, default=64)
    parser.add_argument("--batch-epochs", type=int, default=8)
    parser.add_argument("--batch-windows-per-series", type=int, default=100, help="x 414 series")
    parser.add_argument("--batch-base-lr", type=float, default=0.002)
    parser.add_argument("--batch-seeds", default="0,1")
    parser.add_argument("--thread-jobs", type=int, default=4)
    parser.add_argument("--thread-epochs", type=int, default=3)
    parser.add_argument("--thread-windows", type=int, default=3072, help="a 3840-point target's windows")
    parser.add_argument("--thread-repeats", type=int, default=2)
    parser.add_argument("--intra", type=int, default=1, help="TF threads of this process (paths, predict, "
                        "options, batch); 0 = TF's default")
    parser.add_argument("--inter", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--thread-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.thread_worker:
        thread_worker(json.loads(args.thread_worker))
        return

    from benchmark.models.runtime import configure_threads
    from benchmark.spec.settings import Settings

    args.data_dir = Settings.from_env(os.environ, data_dir=args.data_dir).data_dir
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - set(ALL_SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; known: {', '.join(ALL_SECTIONS)}")
    args.architectures = [a for a in args.architectures.split(",") if a]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    args.batch_seeds = [int(s) for s in args.batch_seeds.split(",") if s]
    if args.intra > 0:
        configure_threads(args.intra, args.inter)  # before TF's first op
    import tensorflow as tf

    print(f"tensorflow {tf.__version__}, {os.cpu_count()} cpus, TF threads intra "
          f"{tf.config.threading.get_intra_op_parallelism_threads()} inter "
          f"{tf.config.threading.get_inter_op_parallelism_threads()}, load {load()}", flush=True)
    result = {"machine": machine_info(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "load_start": load(), "intra": args.intra, "inter": args.inter,
              "command": " ".join([Path(sys.executable).name, *sys.argv])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    small = None
    for section in sections:
        print(f"\n== {section} (load {load()})", flush=True)
        started = time.perf_counter()
        if section in ("paths", "predict", "options") and small is None:
            small = m4_arrays(args.data_dir, 128, max(1, args.windows // 128), val_stride=4)
        if section == "paths":
            result[section] = section_paths(args, small)
        elif section == "predict":
            result[section] = section_predict(args, small)
        elif section == "options":
            result[section] = section_options(args, small)
        elif section == "batch":
            result[section] = section_batch(args)
        else:
            result[section] = section_threads(args)
        result[section]["seconds"] = time.perf_counter() - started
        result["load_end"] = load()
        args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")  # after every section
    print(f"\nwritten to {args.out} (load at start {result['load_start']}, at end {result['load_end']})")


if __name__ == "__main__":
    main()
