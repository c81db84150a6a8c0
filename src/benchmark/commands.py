"""The tlbench commands that use the library: ``run``, ``validate`` and ``evaluate-source`` (thin
shells over :mod:`benchmark.run.grid` and the evaluation), those that read what grids recorded
(``leaderboard``, ``report``, ``repair``, ``ui``), and :func:`settings_of`, the settings every
command builds once. :mod:`benchmark.cli` parses the command line and calls :func:`run_command`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from benchmark.console import RunConsole
from benchmark.forecasters.source import evaluate_source
from benchmark.forecasters.statistical import METHODS as STATISTICAL_METHODS
from benchmark.forecasters.statistical import StatisticalForecaster
from benchmark.forecasters.trained import ModelForecaster
from benchmark.report.paths import report_dir, reported_grid
from benchmark.results.leaderboard import Leaderboard
from benchmark.results.ranking import DEFAULT_METRIC, aggregate, format_table
from benchmark.run.engines import LocalEngine, ProcessEngine
from benchmark.run.grid import run_grid
from benchmark.run.plan import load_and_plan
from benchmark.run.repair import repair, to_retrain
from benchmark.run.resume import finished_result
from benchmark.spec.errors import TlbenchError
from benchmark.spec.profiles import load_grid, subgrid_override
from benchmark.spec.registry import Registry
from benchmark.spec.sections import DataSpec
from benchmark.spec.settings import Settings, apply_mlflow_http_policy
from benchmark.tracking.views import VIEW_COLUMNS, VIEW_GROUP_BY, VIEW_KEY, runs_view_filter, runs_view_url


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings of this command, built once here (the CLI is an edge) and passed down."""
    settings = Settings.from_environment(data_dir=getattr(args, "data_dir", None),
                                         results=getattr(args, "results", None),
                                         tracking_uri=getattr(args, "tracking_uri", None),
                                         experiment=getattr(args, "experiment", None))
    apply_mlflow_http_policy(settings)
    return settings


def cmd_leaderboard(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    board = Leaderboard(settings.results)
    rows = board.read(target=args.target, target_size=args.size, architecture=args.architecture,
                      mode=args.mode, run_date=args.date, grid=args.grid)
    if args.json:
        print(rows.to_json(orient="records", date_format="iso"))
        return 0
    if not len(rows):
        print(f"no leaderboard rows under {settings.results} for these filters")
        return 0
    if args.cells:
        columns = ["target", "target_size", "architecture", "mode", "seed", "mase", "smape", "mae",
                   "mse", "mape", "train_seconds", "epochs", "mlflow_run_id"]
        print(format_table(rows.sort_values(["target", "target_size", "mase"]), columns, max_rows=args.max_rows))
    else:
        from benchmark.results.verdicts import headline  # SciPy: only the aggregated view needs it

        agg = aggregate(rows)
        for line in headline(agg):
            print(f"verdict: {line}")
        metric = str(agg["metric"].iloc[0]) if len(agg) else DEFAULT_METRIC  # the protocol's (ett_standard: mse_z)
        shown = dict.fromkeys((f"{metric}_mean", f"{metric}_ci95", "mase_mean", "smape_mean", "mae_mean",
                               "mse_mean", "mape_mean"))
        columns = [c for c in ("target", "target_size", "architecture", "mode", *shown, "rank",
                               "improvement_vs_scratch_pct", "p_value_vs_scratch", "n_seeds")
                   if c in agg.columns]
        print(format_table(agg.sort_values(["target", "target_size", "rank"]), columns, max_rows=args.max_rows))
    for path, reason in board.skipped:
        print(f"skipped unreadable file {path}: {reason}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the HTML report of one grid's leaderboard rows (default: the rows of the grid as its
    last run reported it, by key, whichever commands wrote them; without that record, the rows of
    its newest row's grid_id)."""
    from benchmark.report.grid import write_grid_report  # matplotlib: loaded only to draw a report

    settings = settings_of(args)
    rows = Leaderboard(settings.results).read(target=args.target, target_size=args.size,
                                              architecture=args.architecture, mode=args.mode,
                                              run_date=args.date, grid=args.grid)
    if args.run_id:
        rows = rows[rows["run_id"].isin(args.run_id)]
    if not len(rows):
        raise TlbenchError(f"No leaderboard rows under {settings.results} for these filters: run a grid "
                           "first (tlbench run) or loosen them (tlbench leaderboard shows what there is)")
    grids = sorted(rows["grid"].unique())
    if len(grids) > 1:
        raise TlbenchError(f"The rows come from {len(grids)} grids ({', '.join(grids)}); a report covers one: "
                           "choose it with --grid NAME")
    if not args.run_id:
        reported = reported_grid(settings, grids[0])
        mine = rows["cell_key"].isin(set(reported["keys"])) if reported else None
        if mine is not None and mine.any():
            rows = rows[mine]
        else:
            newest = rows.sort_values("finished_at", kind="stable")["grid_id"].iloc[-1]
            rows = rows[rows["grid_id"] == newest]
    tracker = None
    if not args.no_forecasts:
        from benchmark.tracking.tracker import Tracker  # MLflow: only to fetch the best cells' forecasts

        tracker = Tracker(settings, settings.experiment or f"tlbench-{grids[0]}")
    out_dir = Path(args.out) if args.out else report_dir(settings, grids[0])
    path = write_grid_report(rows, settings, grids[0], tracker, out_dir=out_dir)
    print(f"report: {path}")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    """Quarantine damaged leaderboard files and restore their rows from the compaction archive;
    with a grid, also list the cells its next run will (re)train."""
    settings = settings_of(args)
    print("\n".join(repair(Leaderboard(settings.results)).lines()))
    if args.grid or args.profile:
        labels = to_retrain(load_grid(args.grid or args.profile, args.set), settings)
        print(f"the next run of {args.grid or args.profile} trains {len(labels)} cell(s)"
              + "".join(f"\n  {label}" for label in labels))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Print the runs-list view of tlbench's experiments (URL with the search filter and sort,
    then the columns and grouping to pick), then start ``mlflow server`` on the embedded store,
    bound to 127.0.0.1 unless told otherwise. With a server tracking URI, only print its view."""
    from benchmark.tracking.tracker import Tracker  # MLflow: only this command needs it

    settings = settings_of(args)
    local = settings.tracking_uri.startswith("sqlite:")
    if local:
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    base = f"http://{args.host}:{args.port}" if local else settings.tracking_uri
    found = Tracker(settings, "tlbench-ui").experiment_ids(settings.experiment or "tlbench-")
    if settings.experiment:
        found = {name: eid for name, eid in found.items() if name == settings.experiment}
    print(ui_view_text(base, found, args.size))
    if not local:
        return 0
    command = [sys.executable, "-m", "mlflow", "server", "--host", args.host, "--port", str(args.port),
               "--workers", "1", "--backend-store-uri", settings.tracking_uri,
               "--default-artifact-root", settings.artifact_location]
    print("starting:", " ".join(command))
    sys.stdout.flush()
    os.execv(sys.executable, command)
    return 0  # pragma: no cover


def ui_view_text(base: str, experiments: dict[str, str], size: int | None = None) -> str:
    """What ``tlbench ui`` prints: per experiment, its saved runs view (cell runs grouped by target
    size and mode, the seeds' average, best MASE first) and, with ``size``, the cell runs of that
    size; then the filter, columns and grouping, to rebuild the view by hand."""
    lines = [f"tlbench runs in the MLflow UI (saved view {VIEW_KEY!r}: cell runs grouped by "
             f"{' and '.join(VIEW_GROUP_BY)}, mean over seeds, best MASE first):"]
    for name, eid in sorted(experiments.items()):
        lines.append(f"  {name}: {runs_view_url(base, eid)}")
        if size is not None:
            lines.append(f"  {name}, n={size} only: {runs_view_url(base, eid, size)}")
    if not experiments:
        lines.append(f"  (no tlbench experiment yet; {base} lists them once a grid has run)")
    lines += [f"search filter: {runs_view_filter(size)}",
              "columns: " + "; ".join(f"{kind}: {', '.join(names)}" for kind, names in VIEW_COLUMNS.items()),
              f"group by: tags {', '.join(VIEW_GROUP_BY)} (aggregate: average); the Chart view then "
              "draws one bar per group"]
    return "\n".join(lines)


def _launchers() -> Registry:
    launchers: Registry = Registry("engine")
    launchers.add("local", None)
    for entry in entry_points(group="tlbench.launchers"):
        launchers.add(entry.name, entry)
    return launchers


def grid_overrides(args: argparse.Namespace) -> list[str]:
    """The grid's ``--set`` overrides, and the one that ``--subgrid`` makes (the grid's chosen
    sub-grids only), in the form every engine takes (a Prefect deployment's ``overrides`` too)."""
    picks = getattr(args, "subgrid", None) or []
    if not picks:
        return list(args.set)
    return [*args.set, subgrid_override(args.grid or args.profile, args.set, picks)]


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    grid_source = args.grid or args.profile
    if args.concurrency < 1:
        raise TlbenchError(f"--concurrency {args.concurrency}: must be at least 1 (jobs at once; "
                           "one per core or GPU is fastest)")
    launcher = _launchers().get(args.engine)
    overrides = grid_overrides(args)
    plan = load_and_plan(grid_source, overrides, settings)  # every problem, before anything starts
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
        result = launcher.load()(grid_source, overrides, settings, args.concurrency)
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
    lines += [f"  {row['method']!s:<{width}}  sMAPE {row['smape']:.3f}  MASE {row['mase']:.3f}  "
              f"OWA {row['owa']:.3f}" for row in rows]
    lines += [f"  {row['method']}: {len(row['failed_series'])} fit(s) failed, scored as naive2: "
              + "; ".join(f"{uid}: {why}" for uid, why in row["failed_series"].items())
              for row in rows if row.get("failed_series")]
    return "\n".join(lines)


def cmd_validate(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    source = args.grid or args.profile
    plan = load_and_plan(source, grid_overrides(args), settings)
    print(f"{source}: ok, {len(plan.cells)} cells")
    return 0


#: The commands of :mod:`benchmark.cli`'s parser that use the library, by name.
COMMANDS = {"run": cmd_run, "validate": cmd_validate, "evaluate-source": cmd_evaluate_source,
            "leaderboard": cmd_leaderboard, "report": cmd_report, "repair": cmd_repair, "ui": cmd_ui}


def run_command(args: argparse.Namespace) -> int:
    """Run ``args.command``; ``run`` with its progress on the terminal and the rest in a log file
    (``args.console``, which the CLI's Ctrl-C handling reads)."""
    if args.command != "run":
        return COMMANDS[args.command](args)
    settings = settings_of(args)
    unwritable = settings.results_problem()  # before the log, the plan or any training
    if unwritable:
        raise TlbenchError(unwritable)
    with RunConsole(settings, args.grid or args.profile, args.verbose,
                    progress_every=args.progress_every) as args.console:
        return cmd_run(args)
