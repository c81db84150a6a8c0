"""Orchestration overhead: a grid's wall time against the compute its cells need, per engine.

Runs the same grid (default: the smoke profile) once per *configuration*, each in a fresh process
with fresh results and MLflow folders, and then once more on the same folders (resume: nothing may
retrain). Configurations are ``ENGINE-K`` or ``ENGINE-K:INTRAxINTER``:

* ``local-K``: ``run_grid(spec, settings, LocalEngine(K))`` (threads in this process; K = 1 is
  ``tlbench run --engine local``);
* ``process-K``: ``benchmark.run.engines.ProcessEngine(K)`` (K worker processes, TF threads from
  ``thread_settings(K)``), the engine behind ``tlbench run --engine local --concurrency K``;
* ``prefect-K``: ``flows.grid.launch`` (``tlbench run --engine prefect --concurrency K``): the
  ``benchmark-grid`` flow in this process on Prefect's ephemeral API, task runs K at a time (their
  bodies in K worker processes when K > 1 and there is no GPU);
* ``pool-K``: ``benchmark_grid(execution="pool")`` against the Prefect server in
  ``$PREFECT_API_URL``, whose ``train-cell`` deployment and workers you started
  (deployments/README.md); skipped, with a TODO, when it is not set;
* ``:INTRAxINTER`` sets TensorFlow's threads in the grid's process first (default: TF's own).

What is timed (every figure is seconds of wall clock, summed over jobs):

* ``train_s``: ``FitResult.seconds`` of every cell (the leaderboard's ``train_seconds``);
* ``cell_compute_s``: time inside ``cells.train_and_evaluate`` (data, model, loading the pretrained
  body, training, predicting, metrics: the cell's own compute, no files) less the MLflow calls
  made inside it (``epoch_logging_s``: ``run_cell``'s per-epoch loss logging hook);
* ``pretrain_compute_s``: time inside ``pretrain.pretrain_model``; ``baselines_s``: inside
  ``baselines.run_baselines``;
* ``compute_s`` = cell compute + pretrain compute + baselines: what any engine must spend;
* ``cell_total_s`` / ``pretrain_total_s``: inside ``cells.run_cell`` / ``pretraining.run_pretraining``
  (compute plus MLflow runs, metrics, figures, model logging, the leaderboard row);
  ``tracker_s_by_method``: time inside each ``benchmark.tracking.tracker.Tracker`` method;
* ``grid_wall_s``: ``run_grid`` from start to end (``GridResult.wall_seconds``);
* ``command_wall_s``: from the configuration's entry call to its return (Prefect: the flow run,
  ephemeral server start-up included); ``process_wall_s``: the whole child process, imports included.

``overhead = grid_wall - compute`` (at concurrency 1: tracking plus orchestration); ``tracking =
cell_total - cell_compute + pretrain_total - pretrain_compute``; ``engine = grid_wall - cell_total
- pretrain_total - baselines`` (planning, ledger reads, aggregation, report, engine dispatch).

Not a test. ``.venv/bin/python benchmarks/orchestration.py --data-dir ../shared/data`` (default
``$TLBENCH_DATA_DIR``); writes ``benchmarks/out/orchestration.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "orchestration.json"
DEFAULT_CONFIGS = "local-1,local-1:2x1,local-2,local-2:1x1,process-2,prefect-1,prefect-2,pool-2"
DEFAULT_RESUME = "local-1,process-2,prefect-1"


def load() -> float:
    return round(os.getloadavg()[0], 2)


# --------------------------------------------------------------------------- instrumentation

_TIMING_FILE: Path | None = None
_LOCK = threading.Lock()


def _record(stage: str, started: float, ended: float, **extra) -> None:
    line = json.dumps({"stage": stage, "start": started, "end": ended, "pid": os.getpid(),
                       "thread": threading.current_thread().name, **extra})
    with _LOCK, open(_TIMING_FILE, "a") as handle:
        handle.write(line + "\n")


def _timed(stage: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        started = time.time()
        result = fn(*args, **kwargs)
        extra = {}
        if stage == "train_and_evaluate":
            cell = args[0]
            extra.update(train_s=float(result.fit.seconds), epochs=int(result.fit.epochs_run),
                         architecture=cell.model.architecture, target_size=int(cell.target_size),
                         mode=cell.mode, seed=int(cell.seed))
        elif stage == "run_cell":
            cell = args[0].cell
            extra.update(architecture=cell.model.architecture, target_size=int(cell.target_size),
                         mode=cell.mode, seed=int(cell.seed), status=result.status)
        elif stage == "pretrain_model":
            extra.update(architecture=args[0].architecture, epochs=int(result[1].epochs_run),
                         n_train=int(len(args[2][0])), train_s=float(result[1].seconds))
        _record(stage, started, time.time(), **extra)
        return result

    wrapper.__tlbench_timed__ = True
    return wrapper


def instrument(timing_file: str) -> None:
    """Wrap the stage functions of this process to log their wall time (idempotent). The library
    looks them up by module attribute at call time, so wrapping the attribute is enough."""
    global _TIMING_FILE
    from benchmark.models import pretrain
    from benchmark.run import baselines, cells, pretraining
    from benchmark.tracking.tracker import Tracker

    _TIMING_FILE = Path(timing_file)
    targets = [(cells, "train_and_evaluate"), (cells, "run_cell"), (pretraining, "run_pretraining"),
               (baselines, "run_baselines"), (pretrain, "pretrain_model")]
    targets += [(Tracker, name) for name in dir(Tracker)  # its own methods and its models' (ModelRegistry)
                if callable(getattr(Tracker, name)) and not name.startswith("_")]
    for owner, name in targets:
        fn = getattr(owner, name)
        if not getattr(fn, "__tlbench_timed__", False):
            stage = f"tracker.{name}" if owner is Tracker else name
            setattr(owner, name, _timed(stage, fn))


def instrumented_worker_init(setup, timing_file: str) -> None:
    """ProcessEngine worker initializer: the engine's own, then the timing wrappers."""
    from benchmark.run import engines

    engines._init_worker(setup)
    instrument(timing_file)


# --------------------------------------------------------------------------- one configuration (child)


def parse_config(config: str) -> tuple[str, int, tuple[int, int] | None]:
    name, _, threads = config.partition(":")
    engine, _, k = name.rpartition("-")
    if engine not in ("local", "process", "prefect", "pool") or not k.isdigit():
        raise SystemExit(f"bad configuration {config!r}: expected ENGINE-K[:INTRAxINTER] with ENGINE one of "
                         "local, process, prefect, pool")
    pair = tuple(int(v) for v in threads.split("x")) if threads else None
    return engine, int(k), pair


def child(job: dict) -> None:
    """Run one configuration once and write its figures to ``job['out']``."""
    started = time.perf_counter()
    engine_name, k, threads = parse_config(job["config"])
    if threads:
        from benchmark.models.runtime import configure_threads

        configure_threads(*threads)
    instrument(job["timing"])
    from benchmark.run.engines import LocalEngine
    from benchmark.run.grid import run_grid
    from benchmark.spec.profiles import load_grid
    from benchmark.spec.settings import Settings

    work = Path(job["work"])
    settings = Settings(data_dir=Path(job["data_dir"]), results=str(work / "results"),
                        mlflow_dir=work / "mlflow", allow_download=False).resolved()
    entered = time.perf_counter()
    if engine_name == "local":
        result = run_grid(load_grid(job["grid"], job["sets"]), settings, LocalEngine(k), label=job["grid"])
    elif engine_name == "process":
        from benchmark.run import engines

        engines._init_worker = functools.partial(instrumented_worker_init, timing_file=job["timing"])
        with engines.ProcessEngine(k) as engine:
            result = run_grid(load_grid(job["grid"], job["sets"]), settings, engine, label=job["grid"])
    elif engine_name == "prefect":
        from benchmark.run import engines
        from flows.grid import launch

        # with k > 1 (no GPU) the task bodies run in a ProcessEngine: time them there too
        engines._init_worker = functools.partial(instrumented_worker_init, timing_file=job["timing"])
        result = launch(job["grid"], job["sets"], settings, k)
    else:
        from flows.grid import benchmark_grid

        result = benchmark_grid(job["grid"], job["sets"], "pool", k, batch_size=job["pool_batch_size"],
                                fail_on_cell_errors=False, settings=settings.to_plain())
    ended = time.perf_counter()
    import tensorflow as tf

    Path(job["out"]).write_text(json.dumps({
        "grid_wall_s": result.wall_seconds, "command_wall_s": ended - entered,
        "child_wall_s": ended - started, "counts": result.counts(),
        "tf_threads": [tf.config.threading.get_intra_op_parallelism_threads(),
                       tf.config.threading.get_inter_op_parallelism_threads()],
        "outcome_seconds": [o.seconds for o in result.outcomes if o.status == "finished"],
        "failed": [f"{o.label}: {o.error}" for o in result.failed]}))


# --------------------------------------------------------------------------- parent


def run_config(args, config: str, work: Path, resume: bool) -> dict:
    """One child process; returns its figures plus the timing records it left."""
    timing = work / f"timing-{'resume' if resume else 'first'}.jsonl"
    out = work / f"result-{'resume' if resume else 'first'}.json"
    timing.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL" or config.startswith("pool")}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "PREFECT_HOME": str(work / "prefect"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"})
    job = {"config": config, "work": str(work), "data_dir": str(args.data_dir), "grid": args.grid,
           "sets": args.set, "timing": str(timing), "out": str(out), "pool_batch_size": args.pool_batch_size}
    load_before, started = load(), time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], cwd=work, env=env,
                          capture_output=True, text=True)
    process_wall = time.perf_counter() - started
    (work / f"log-{'resume' if resume else 'first'}.txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise RuntimeError(f"{config} ({'resume' if resume else 'first run'}) failed, exit {proc.returncode}:\n{tail}")
    figures = json.loads(out.read_text())
    records = [json.loads(line) for line in timing.read_text().splitlines()] if timing.is_file() else []
    figures.update(summarise(records))
    figures.update({"config": config, "resume": resume, "process_wall_s": process_wall,
                    "load_before": load_before, "load_after": load()})
    return figures


def summarise(records: list[dict]) -> dict:
    def total(stage: str) -> float:
        return sum(r["end"] - r["start"] for r in records if r["stage"] == stage)

    def count(stage: str) -> int:
        return sum(1 for r in records if r["stage"] == stage)

    tracker = [r for r in records if r["stage"].startswith("tracker.")]
    # MLflow calls made inside train_and_evaluate (the per-epoch loss logging of run_cell's hook)
    # are tracking, not the cell's compute: subtract them (same process and thread, nested in time).
    nested = sum(t["end"] - t["start"] for r in records if r["stage"] == "train_and_evaluate"
                 for t in tracker if t["pid"] == r["pid"] and t["thread"] == r["thread"]
                 and r["start"] <= t["start"] and t["end"] <= r["end"])
    by_method: dict[str, float] = {}
    for t in tracker:
        by_method[t["stage"]] = by_method.get(t["stage"], 0.0) + t["end"] - t["start"]
    cell_compute = total("train_and_evaluate") - nested
    pretrain_compute = total("pretrain_model")
    baselines = total("run_baselines")
    cell_total, pretrain_total = total("run_cell"), total("run_pretraining")
    return {"cells_trained": count("train_and_evaluate"), "pretrainings_trained": count("pretrain_model"),
            "train_s": sum(r.get("train_s", 0.0) for r in records if r["stage"] == "train_and_evaluate"),
            "cell_compute_s": cell_compute, "pretrain_compute_s": pretrain_compute, "baselines_s": baselines,
            "compute_s": cell_compute + pretrain_compute + baselines,
            "cell_total_s": cell_total, "pretrain_total_s": pretrain_total,
            "tracking_s": cell_total - cell_compute + pretrain_total - pretrain_compute,
            "epoch_logging_s": nested, "tracker_s_by_method": by_method,
            "processes": len({r["pid"] for r in records}),
            "cells": [{k: r.get(k) for k in ("architecture", "target_size", "mode", "seed", "epochs", "train_s")}
                      | {"seconds": r["end"] - r["start"], "pid": r["pid"]}
                      for r in records if r["stage"] == "train_and_evaluate"],
            "cell_totals": [{k: r.get(k) for k in ("architecture", "target_size", "mode", "seed", "status")}
                            | {"seconds": r["end"] - r["start"]} for r in records if r["stage"] == "run_cell"],
            "pretrainings": [{k: r.get(k) for k in ("architecture", "epochs", "n_train", "train_s")}
                             | {"seconds": r["end"] - r["start"]}
                             for r in records if r["stage"] == "pretrain_model"],
            "stage_walls_s": {stage: (max(r["end"] for r in mine) - min(r["start"] for r in mine))
                              for stage in ("run_pretraining", "run_baselines", "run_cell")
                              if (mine := [r for r in records if r["stage"] == stage])}}


def add_derived(row: dict) -> dict:
    row["overhead_s"] = row["grid_wall_s"] - row["compute_s"]
    row["engine_s"] = row["grid_wall_s"] - row["cell_total_s"] - row["pretrain_total_s"] - row["baselines_s"]
    row["compute_over_wall"] = row["compute_s"] / row["grid_wall_s"] if row["grid_wall_s"] else float("nan")
    return row


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n{title}")
    widths = [max(len(h), *(len(fmt(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(fmt(v).rjust(w) for v, w in zip(row, widths)))


# --------------------------------------------------------------------------- estimates


def _fit_cost(cells: list[dict]) -> tuple[float, float]:
    """Least squares ``seconds = fixed + per_unit * epochs * target_size`` over cells of one
    (architecture, mode); both clipped at 0. ``fixed`` holds building, tracing, loading,
    predicting and, since the epochs of one mode vary little, most per-epoch host work."""
    import numpy as np

    if not cells:
        return 0.0, 0.0
    a = np.array([[1.0, c["epochs"] * c["target_size"]] for c in cells])
    y = np.array([c["seconds"] for c in cells])
    coef = np.linalg.lstsq(a, y, rcond=None)[0]
    return float(max(coef[0], 0.0)), float(max(coef[1], 0.0))


def estimate(args) -> dict:
    """Standard (2 CPU cores) and nightly (GPU) estimates from a measured sample run.

    The sample is an ``orchestration.py`` run of the standard grid (for example seed 0 and some
    modes, ``process-2``). Per (architecture, mode), a cell's compute is fitted as ``fixed +
    per_unit * epochs * target_size`` (see :func:`_fit_cost`); MLflow and leaderboard time per cell is
    the measured mean. Unmeasured modes borrow a measured one (``partial`` -> ``finetune``).
    """
    from benchmark.run.jobs import expand
    from benchmark.spec.profiles import load_grid

    sample = json.loads(Path(args.estimate_from).read_text())
    run = next(r for r in sample["runs"] if not r["resume"])
    cells, totals = run["cells"], run["cell_totals"]
    measured: dict[tuple, list[dict]] = {}
    for cell in cells:
        measured.setdefault((cell["architecture"], cell["target_size"], cell["mode"]), []).append(cell)
    total_by_key: dict[tuple, list[float]] = {}
    for cell in totals:
        total_by_key.setdefault((cell["architecture"], cell["target_size"], cell["mode"]), []).append(cell["seconds"])
    tracking_per_cell = statistics.mean(
        statistics.mean(total_by_key[key]) - statistics.mean(c["seconds"] for c in measured[key])
        for key in measured if key in total_by_key)
    modes_measured = sorted({m for _, _, m in measured})
    borrow = {"partial": "finetune", "finetune": "scratch", "lp_ft": "finetune", "frozen": "scratch",
              "zeroshot": "frozen"}

    def lookup(arch: str, size: int, mode: str) -> list[dict]:
        while (arch, size, mode) not in measured:
            if mode not in borrow:
                raise SystemExit(f"the sample has no {arch} n={size} cell to stand in for mode {mode!r}")
            mode = borrow[mode]
        return measured[(arch, size, mode)]

    # -- standard, on this machine
    spec = load_grid("standard", [])
    full = expand(spec)
    sample_cell_cost = sum(statistics.mean(total_by_key[k]) for k in total_by_key) if total_by_key else 0.0
    sample_cells = sum(len(v) for v in total_by_key.values())
    full_cell_cost = 0.0
    for cell in full:
        mine = lookup(cell.model.architecture, cell.target_size, cell.mode)
        full_cell_cost += statistics.mean(c["seconds"] for c in mine) + tracking_per_cell
    walls = run["stage_walls_s"]
    workers = parse_config(run["config"])[1]
    efficiency = (sum(c["seconds"] for c in totals) / (workers * walls["run_cell"])) if walls.get("run_cell") else 1.0
    other = run["grid_wall_s"] - sum(walls.values())
    standard = {
        "cells": len(full), "sample_cells": sample_cells, "sample_config": run["config"],
        "tracking_per_cell_s": tracking_per_cell, "cell_seconds_total": full_cell_cost,
        "pretrain_stage_s": walls.get("run_pretraining", 0.0), "workers": workers,
        "cell_stage_efficiency": efficiency, "other_s": other,
        "wall_s": walls.get("run_pretraining", 0.0) + full_cell_cost / (workers * efficiency) + other,
        "sequential_s": sum(p["seconds"] for p in run["pretrainings"]) + full_cell_cost + other,
    }

    # -- nightly, GPU
    nightly = load_grid("nightly", [])
    per_key = {(arch, mode): _fit_cost([c for c in cells if c["architecture"] == arch and c["mode"] == mode])
               for arch, mode in {(c["architecture"], c["mode"]) for c in cells}}
    sizes_measured = sorted({s for _, s, _ in measured})
    extra_patience = nightly.training.patience - spec.training.patience
    speedups = [float(v) for v in args.gpu_speedups.split(",")]
    cpu_fixed = cpu_epochs = 0.0
    n_cells = 0
    for target in nightly.targets:
        for size in nightly.target_sizes:
            nearest = min(sizes_measured, key=lambda s: abs(math.log(s / size)))
            for arch in nightly.architectures:
                for mode in nightly.modes:
                    mine = lookup(arch, nearest, mode)
                    epochs = statistics.mean(c["epochs"] for c in mine)
                    fixed, per_unit = per_key[(arch, mine[0]["mode"])]
                    if epochs:
                        epochs = min(nightly.training.max_epochs, epochs + extra_patience)
                    cpu_fixed += (fixed + tracking_per_cell) * len(nightly.seeds)
                    cpu_epochs += per_unit * epochs * size * len(nightly.seeds)
                    n_cells += len(nightly.seeds)
    pre = {p["architecture"]: p["n_train"] * p["epochs"] / p["train_s"] for p in run["pretrainings"]}
    source_windows = args.source_windows
    pre_epochs = nightly.pretrain.training.max_epochs
    cpu_pretrain = sum(source_windows * pre_epochs / pre[a] for a in nightly.architectures if a in pre)
    nightly_out = {"cells": n_cells, "cpu_fixed_core_s": cpu_fixed, "cpu_epochs_core_s": cpu_epochs,
                   "cpu_pretrain_core_s": cpu_pretrain, "pretrain_epochs_assumed": pre_epochs,
                   "fixed_and_per_unit_by_arch_mode": {f"{a}/{m}": v for (a, m), v in per_key.items()},
                   "gpu": []}
    for speedup in speedups:
        # Host-side work (tracing, MLflow, files) is not faster on a GPU; epochs are.
        gpu_s = cpu_fixed + cpu_epochs / speedup + cpu_pretrain / speedup
        nightly_out["gpu"].append({"speedup": speedup, "gpu_hours": gpu_s / 3600,
                                   "cells_hours": (cpu_fixed + cpu_epochs / speedup) / 3600,
                                   "pretrain_hours": cpu_pretrain / speedup / 3600})

    print_table(f"standard profile on this machine (ESTIMATE from {sample_cells} measured cells, "
                f"{run['config']}, modes {', '.join(modes_measured)})",
                ["cells", "cell s (sum)", "pretrain stage s", "efficiency", "estimated wall h",
                 "sequential h"],
                [[len(full), full_cell_cost, standard["pretrain_stage_s"], efficiency, standard["wall_s"] / 3600,
                  standard["sequential_s"] / 3600]])
    print_table(f"nightly profile, GPU-hours (ESTIMATE: measured CPU costs; epochs = measured at the nearest "
                f"standard size + {extra_patience} for the longer patience; pretraining {pre_epochs} epochs of "
                f"{source_windows:,} windows; host work per cell not sped up)",
                ["GPU speed-up", "GPU-hours", "cells h", "pretrain h"],
                [[g["speedup"], g["gpu_hours"], g["cells_hours"], g["pretrain_hours"]] for g in nightly_out["gpu"]])
    print(f"nightly on CPU: {(cpu_fixed + cpu_epochs + cpu_pretrain) / 3600:.1f} core-hours "
          f"({n_cells} cells: fixed {cpu_fixed / 3600:.1f} h, epochs {cpu_epochs / 3600:.1f} h; "
          f"pretraining {cpu_pretrain / 3600:.1f} h)")
    return {"sample": args.estimate_from, "standard": standard, "nightly": nightly_out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data folder (default: $TLBENCH_DATA_DIR, else ./data)")
    parser.add_argument("--grid", default="smoke", help="profile name or grid YAML (default smoke)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="grid override, as in tlbench run (repeatable), e.g. to reduce the grid")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"comma-separated (default {DEFAULT_CONFIGS})")
    parser.add_argument("--resume-for", default=DEFAULT_RESUME, help="configs whose grid is run a second time")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over all configs (order reversed each round)")
    parser.add_argument("--pool-batch-size", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=None, help="kept when given (default: a temp dir, removed)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--estimate-from", help="print the standard and nightly estimates from this "
                        "orchestration JSON (a measured run of a standard-grid sample) and exit")
    parser.add_argument("--gpu-speedups", default="5,10,20",
                        help="assumed GPU speed-ups of the training epochs over one CPU core (estimate)")
    parser.add_argument("--source-windows", type=int, default=343_564, help="nightly pretraining windows")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if args.estimate_from:
        figures = estimate(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_name(args.out.stem + "_estimate.json").write_text(json.dumps(figures, indent=2) + "\n")
        return

    from benchmark.spec.settings import Settings

    args.data_dir = Settings.from_env(os.environ, data_dir=args.data_dir).data_dir
    configs = [c for c in args.configs.split(",") if c]
    for config in configs:
        parse_config(config)
    resume_for = {c for c in args.resume_for.split(",") if c}
    todo = []
    if "pool-" in args.configs and not os.environ.get("PREFECT_API_URL"):
        todo.append("pool mode (PoolEngine, flows/pool.py): not measured: it needs PREFECT_API_URL, the "
                    "train-cell deployment and workers (deployments/README.md); start them and run "
                    "this script with --configs pool-2")
        configs = [c for c in configs if not c.startswith("pool")]
    root = args.work_dir or Path(tempfile.mkdtemp(prefix="tlbench-orch-"))
    result = {"grid": args.grid, "sets": args.set, "cpus": os.cpu_count(), "load_start": load(),
              "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": [], "todo": todo}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        for repeat in range(args.repeats):
            for config in (configs if repeat % 2 == 0 else configs[::-1]):
                work = root / f"{config.replace(':', '_')}-r{repeat}"
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir(parents=True)
                first = add_derived(run_config(args, config, work, resume=False))
                first["repeat"] = repeat
                result["runs"].append(first)
                print(f"  {config} (repeat {repeat}): grid {first['grid_wall_s']:.1f} s, compute "
                      f"{first['compute_s']:.1f} s, load {first['load_before']}", flush=True)
                if config in resume_for:
                    again = add_derived(run_config(args, config, work, resume=True))
                    again["repeat"] = repeat
                    again["fraction_of_first_grid_wall"] = again["grid_wall_s"] / first["grid_wall_s"]
                    again["fraction_of_first_process_wall"] = again["process_wall_s"] / first["process_wall_s"]
                    result["runs"].append(again)
                    print(f"  {config} resume: grid {again['grid_wall_s']:.1f} s "
                          f"({again['fraction_of_first_grid_wall']:.1%}), cells trained {again['cells_trained']}, "
                          f"pretrainings {again['pretrainings_trained']}", flush=True)
                result["load_end"] = load()
                args.out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if args.work_dir is None:
            shutil.rmtree(root, ignore_errors=True)

    firsts = [r for r in result["runs"] if not r["resume"]]
    by_config = {c: [r for r in firsts if r["config"] == c] for c in configs}
    reference = statistics.median(r["grid_wall_s"] for r in by_config[configs[0]])
    rows = []
    for config, runs in by_config.items():
        med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
        rows.append([config, med("grid_wall_s"), med("compute_s"), med("train_s"), med("cell_compute_s"),
                     med("pretrain_compute_s"), med("tracking_s"), med("engine_s"), med("overhead_s"),
                     reference / med("grid_wall_s"), med("process_wall_s"),
                     f"{min(r['load_before'] for r in runs):.1f}-{max(r['load_after'] for r in runs):.1f}"])
    print_table(f"grid {args.grid} {' '.join(args.set)}: seconds (median of {args.repeats}); speed-up vs "
                f"{configs[0]}", ["config", "grid wall", "compute", "train", "cell comp", "pretrain",
                                  "tracking", "engine", "wall-compute", "speed-up", "process", "load"], rows)
    resumes = [r for r in result["runs"] if r["resume"]]
    if resumes:
        print_table("resume: the same grid again on the same results", ["config", "grid wall", "of first",
                    "process wall", "of first", "cells trained", "pretrained", "counts"],
                    [[r["config"], r["grid_wall_s"], r["fraction_of_first_grid_wall"], r["process_wall_s"],
                      r["fraction_of_first_process_wall"], r["cells_trained"], r["pretrainings_trained"],
                      " ".join(f"{k}={v}" for k, v in sorted(r["counts"].items()))] for r in resumes])
    for line in todo:
        print(f"TODO: {line}")
    print(f"\nwritten to {args.out} (load at start {result['load_start']}, at end {result.get('load_end')})")


if __name__ == "__main__":
    main()
