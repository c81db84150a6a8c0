"""``tlbench``: the command line (its parser and the commands that run, check and score), a thin
shell over :mod:`benchmark.run.grid` and the evaluation; the commands that read results are in
:mod:`benchmark.commands`. Errors a user can fix are printed as one clear message (exit code
2), never as a traceback; a grid with failed cells exits 1; Ctrl-C prints one line and exits 130.

``tlbench run`` runs through Prefect by default (the ``prefect`` engine, found through the
``tlbench.launchers`` entry point group so this library never imports Prefect); ``--engine local``
runs the same grid with no orchestrator at all.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from importlib.metadata import entry_points

from benchmark.commands import cmd_leaderboard, cmd_repair, cmd_report, cmd_ui, settings_of
from benchmark.console import RunConsole
from benchmark.data.protocols import PROTOCOLS
from benchmark.forecasters.source import evaluate_source
from benchmark.forecasters.statistical import METHODS as STATISTICAL_METHODS
from benchmark.forecasters.statistical import StatisticalForecaster
from benchmark.forecasters.trained import ModelForecaster
from benchmark.results.ranking import format_table
from benchmark.run.engines import LocalEngine, ProcessEngine
from benchmark.run.grid import run_grid
from benchmark.run.plan import load_and_plan
from benchmark.run.resume import finished_result
from benchmark.spec.errors import TlbenchError
from benchmark.spec.profiles import profile_names
from benchmark.spec.registry import Registry
from benchmark.spec.sections import DataSpec
from benchmark.spec.settings import storage_problem

log = logging.getLogger("tlbench")


def _launchers() -> Registry:
    launchers: Registry = Registry("engine")
    launchers.add("local", None)
    for entry in entry_points(group="tlbench.launchers"):
        launchers.add(entry.name, entry)
    return launchers


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    grid_source = args.grid or args.profile
    if args.concurrency < 1:
        raise TlbenchError(f"--concurrency {args.concurrency}: must be at least 1 (jobs at once; "
                           "one per core or GPU is fastest)")
    launcher = _launchers().get(args.engine)
    plan = load_and_plan(grid_source, args.set, settings)  # every problem, before anything starts
    spec = plan.spec
    console = getattr(args, "console", None) or RunConsole(settings, grid_source, verbose=True)
    console.watch(plan, args.concurrency)
    # A finished grid is answered from the ledger: no orchestrator, no worker, no TensorFlow.
    result = finished_result(plan, settings)
    if result is None and launcher is None:
        if args.concurrency > 1:
            # Processes, not threads: on a CPU only separate processes make cells run in parallel
            # (docs/performance.md). Workers start now and import TensorFlow while the grid is
            # validated and its data loaded.
            with ProcessEngine(args.concurrency) as engine:
                result = run_grid(spec, settings, console.engine(engine), label=grid_source,
                                  on_progress=console.on_progress)
        else:
            result = run_grid(spec, settings, console.engine(LocalEngine(1)), label=grid_source,
                              on_progress=console.on_progress)
    elif result is None:
        # Before Prefect is imported: its settings are read once. The ephemeral API server's
        # default 20 s start-up timeout fails on a loaded 2-core machine.
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        result = launcher.load()(grid_source, list(args.set), settings, args.concurrency)
    print(f"grid {result.grid} run {result.run_id}: {result.counts()} in {result.wall_seconds:.1f} s")
    for outcome in result.failed:
        print(f"FAILED {outcome.label}: {outcome.error}", file=sys.stderr)
    if result.aggregate is not None:
        agg = result.aggregate
        columns = [c for c in ("target", "target_size", "architecture", "mode", "mase_mean", "smape_mean",
                               "mae_mean", "mse_mean", "rank", "improvement_vs_scratch_pct", "n_seeds")
                   if c in agg.columns]
        print(format_table(agg.sort_values(["target", "target_size", "rank"]), columns, max_rows=200))
    for line in result.verdict:
        print(f"verdict: {line}")
    if result.report_path:
        print(f"report: {result.report_path}")
    print(f"results: {settings.results}   mlflow: {settings.tracking_uri}")
    console.finish(result)
    return 1 if result.failed else 0


def cmd_evaluate_source(args: argparse.Namespace) -> int:
    """The M4 protocol on the source: the ``--method`` baseline and Naive2, and with ``--model`` a
    pretrained model too, whose scores are recorded on its MLflow run (when it has one)."""
    # MLflow: loaded only by evaluate-source, which records on runs and in the leaderboard
    from benchmark.run.source import load_source_model, record_baseline_on_source, record_source_scores

    settings = settings_of(args)
    known = {"m4-hourly": DataSpec("m4", {"group": "Hourly"})}
    if args.source not in known:
        raise TlbenchError(f"Unknown source {args.source!r}. Known: {', '.join(sorted(known))}.")
    source = known[args.source]
    loaded = load_source_model(args.model, settings) if args.model else None  # fail before scoring
    options = {"allow_download": settings.allow_download, "max_series": args.max_series}
    method = (StatisticalForecaster(args.method, 24, workers=2, fit_seconds=settings.baseline_fit_seconds)
              if args.method in STATISTICAL_METHODS else None)  # 24: M4 Hourly's season (the default protocol)
    result = evaluate_source(source, args.method, settings.data_dir, method, **options)
    naive2 = {**result, "method": "naive2", "smape": result["smape_naive2"],
              "mase": result["mase_naive2"], "owa": 1.0}
    rows = [result] + ([naive2] if args.method != "naive2" else [])
    if loaded is None:
        if args.max_series is None and args.method in STATISTICAL_METHODS:  # shown in grid reports' source section
            result["recorded_in"] = record_baseline_on_source(settings, source, result)
        print(json.dumps(result) if args.json else _source_table(args.source, rows))
        return 0

    forecaster = ModelForecaster(loaded.model, normalisation=loaded.normalisation)
    strategy = forecaster.strategy(result["horizon"])
    scored = evaluate_source(source, loaded.label, settings.data_dir, forecaster=forecaster, **options)
    scored = {**scored, "strategy": strategy, "mlflow_run_id": loaded.run_id, "recorded": {}}
    if not args.json:  # the table first: the scores are shown even if recording them fails
        print(_source_table(args.source, [{**scored, "method": f"{loaded.label} [{strategy}]"}] + rows))
    if args.max_series is not None:
        note = f"not recorded in MLflow: --max-series {args.max_series} scores a subset, not the protocol"
    elif loaded.run_id is None:
        note = (f"not recorded in MLflow: {loaded.label} has no known run (no mlflow_run_id in its "
                "meta.json); pass its registry reference models:/NAME@ALIAS instead")
    else:
        scored["recorded"] = record_source_scores(settings, loaded.run_id, scored, strategy)
        note = f"recorded {', '.join(scored['recorded'])} on MLflow run {loaded.run_id}"
    if args.max_series is None and args.method == "seasonal_naive":
        from benchmark.run.source import record_source_evaluation  # MLflow, as above

        where = record_source_evaluation(settings, loaded, forecaster, scored, result)
        note += f"; leaderboard rows of kind 'source' in {where}"
    if args.json:
        print(json.dumps({"model": scored, "baselines": rows}))
    else:
        print(note)
    return 0


def _source_table(source: str, rows: list[dict]) -> str:
    """``rows`` of :func:`benchmark.forecasters.source.evaluate_source` as aligned lines, one per method."""
    first = rows[0]
    width = max(len(str(row["method"])) for row in rows)
    lines = [f"{source}: M4 protocol, {first['horizon']}-step test of {first['n_series']} series "
             "(OWA relative to naive2)"]
    lines += [f"  {str(row['method']):<{width}}  sMAPE {row['smape']:.3f}  MASE {row['mase']:.3f}  "
              f"OWA {row['owa']:.3f}" for row in rows]
    lines += [f"  {row['method']}: {len(row['failed_series'])} fit(s) failed, scored as naive2: "
              + "; ".join(f"{uid}: {why}" for uid, why in row["failed_series"].items())
              for row in rows if row.get("failed_series")]
    return "\n".join(lines)


def cmd_profiles(args: argparse.Namespace) -> int:
    print("\n".join(profile_names()))
    return 0


def cmd_protocols(args: argparse.Namespace) -> int:
    """The registered evaluation protocols, one line each, with the flaws a faithful rerun keeps."""
    for name in PROTOCOLS:
        protocol = PROTOCOLS.get(name)
        print(f"{name}: {protocol.description}; ranked by {protocol.metric}")
        for flaw in protocol.flaws:
            print(f"    flaw: {flaw}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    source = args.grid or args.profile
    plan = load_and_plan(source, args.set, settings)
    print(f"{source}: ok, {len(plan.cells)} cells")
    return 0


class _RunNameFormatter(logging.Formatter):
    """Names the Prefect task or flow run a log line comes from (Prefect puts ``task_run_name``
    and ``flow_run_name`` on its records), so ``Finished in state Completed()`` says whose."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        run = getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None)
        return text.replace(f" {record.name}: ", f" {record.name} [{run}]: ", 1) if run else text


def _add_settings(parser: argparse.ArgumentParser, data=True) -> None:
    if data:
        parser.add_argument("--data-dir", help="data folder (default $TLBENCH_DATA_DIR or ./data)")
    parser.add_argument("--results", help="results location (default $TLBENCH_RESULTS or ./results)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or "
                                               "sqlite:///./mlflow/mlflow.db)")


def _add_row_filters(parser: argparse.ArgumentParser) -> None:
    """The leaderboard-row filters of ``tlbench leaderboard`` and ``tlbench report``."""
    parser.add_argument("--target", action="append", help="filter (repeatable)")
    parser.add_argument("--size", type=int, action="append", help="filter by target size (repeatable)")
    parser.add_argument("--architecture", action="append")
    parser.add_argument("--mode", action="append")
    parser.add_argument("--date", action="append", help="run date YYYY-MM-DD")


def _add_grid(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--profile", default="smoke", help="a shipped profile (see `tlbench profiles`)")
    group.add_argument("--grid", help="a grid spec YAML file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec value, e.g. --set training.max_epochs=3 (repeatable)")


#: ``tlbench --help``'s opening: whole sentences (the module docstring's first line stops mid-sentence).
DESCRIPTION = ("tlbench benchmarks transfer learning for recurrent time-series forecasters: it runs grids "
               "of cells (architecture x transfer mode x target size x seed), records every result in "
               "MLflow and a Parquet leaderboard, and reports which mode wins at which size.")


def _seconds(text: str) -> float:
    """An argparse type: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more, e.g. 300)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tlbench", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a benchmark grid")
    _add_grid(run)
    _add_settings(run)
    run.add_argument("--experiment", help="MLflow experiment (default tlbench-<grid name>)")
    run.add_argument("--engine", default="prefect", help="prefect (default: in-process flow) or local")
    run.add_argument("--concurrency", type=int, default=1,
                     help="jobs at once (worker processes with --engine local; Prefect task runs "
                          "backed by worker processes with --engine prefect)")
    run.add_argument("--progress-every", type=_seconds, default=None, metavar="SECONDS",
                     help="through a pipe (a nightly job's log), the least seconds between two "
                          "'progress:' lines (default 300); a terminal gets a live display instead")
    run.set_defaults(func=cmd_run)

    board = sub.add_parser("leaderboard", help="print the leaderboard")
    _add_settings(board, data=False)
    _add_row_filters(board)
    board.add_argument("--grid", action="append", help="grid name")
    board.add_argument("--cells", action="store_true", help="one line per cell instead of aggregated")
    board.add_argument("--json", action="store_true", help="rows as a JSON list of objects")
    board.add_argument("--max-rows", type=int, default=200)
    board.set_defaults(func=cmd_leaderboard)

    report = sub.add_parser("report", help="write the HTML report of a grid's leaderboard")
    _add_settings(report, data=False)
    report.add_argument("--grid", action="append", help="grid name (needed when several grids have rows)")
    _add_row_filters(report)
    report.add_argument("--run-id", action="append", help="only these grid runs (default: the grid's current spec)")
    report.add_argument("--out", help="output folder (default <results>/reports/<grid>/)")
    report.add_argument("--no-forecasts", action="store_true",
                        help="do not fetch the best cells' predictions from MLflow")
    report.set_defaults(func=cmd_report)

    evaluate = sub.add_parser("evaluate-source", help="M4-protocol evaluation on the source")
    evaluate.add_argument("--source", default="m4-hourly")
    evaluate.add_argument("--method", default="seasonal_naive", help="a baseline name")
    evaluate.add_argument("--model", help="a pretrained model to score too: a .keras file (or its "
                                          "<results>/pretrained/<key>/ folder), models:/NAME@ALIAS, "
                                          "models:/NAME/VERSION or NAME@ALIAS; its scores are "
                                          "recorded on its MLflow run")
    evaluate.add_argument("--max-series", type=int, help="only the first k series, a quick check "
                                                         "(default: all; a subset is not recorded)")
    evaluate.add_argument("--json", action="store_true")
    _add_settings(evaluate)
    evaluate.set_defaults(func=cmd_evaluate_source)

    validate = sub.add_parser("validate", help="check a grid spec and its data without training")
    _add_grid(validate)
    _add_settings(validate)
    validate.set_defaults(func=cmd_validate)

    fix = sub.add_parser("repair", help="quarantine damaged leaderboard files and restore their rows")
    _add_settings(fix)
    fix.add_argument("--profile", help="also list the cells this profile's next run trains")
    fix.add_argument("--grid", help="also list the cells this grid spec's next run trains")
    fix.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    fix.set_defaults(func=cmd_repair)

    profiles = sub.add_parser("profiles", help="list the shipped profiles")
    profiles.set_defaults(func=cmd_profiles)

    protocols = sub.add_parser("protocols", help="list the evaluation protocols (split.protocol)")
    protocols.set_defaults(func=cmd_protocols)

    ui = sub.add_parser("ui", help="print the runs-list view and start the MLflow UI on the embedded store")
    _add_settings(ui, data=False)
    ui.add_argument("--experiment", help="MLflow experiment (default: every tlbench-* experiment)")
    ui.add_argument("--size", type=int, help="only the cells of this target size, e.g. 960")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
    handler = logging.StreamHandler()
    handler.setFormatter(_RunNameFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib", "alembic", "urllib3", "httpx",
                  "mlflow.store.db.utils"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command == "run":  # progress on the terminal, the rest in a log file
            settings = settings_of(args)
            unwritable = settings.results_problem()  # before the log, the plan or any training
            if unwritable:
                raise TlbenchError(unwritable)
            with RunConsole(settings, args.grid or args.profile, args.verbose,
                            progress_every=args.progress_every) as args.console:
                return args.func(args)
        return args.func(args)
    except TlbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; rows are written whole or not at all
        if not getattr(getattr(args, "console", None), "interrupted", False):
            print("interrupted; run it again to resume", file=sys.stderr)
        return 130
    except OSError as exc:  # a disk that filled up or went read-only mid-run: one line too
        problem = storage_problem(exc)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
