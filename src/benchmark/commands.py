"""The tlbench commands that read what grids recorded (``leaderboard``, ``report``, ``repair``,
``ui``), and :func:`settings_of`, the settings every command builds once. :mod:`benchmark.cli`
parses the command line and dispatches here.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmark.report.paths import report_dir
from benchmark.results.leaderboard import Leaderboard
from benchmark.results.ranking import DEFAULT_METRIC, aggregate, format_table
from benchmark.run.repair import repair, to_retrain
from benchmark.spec.errors import TlbenchError
from benchmark.spec.profiles import load_grid
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
    """Write the HTML report of one grid's leaderboard rows (default: the rows of its current
    spec, i.e. the grid_id of its newest row, as ``run_grid`` reports it)."""
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
