"""``tlbench``: the command line: its parser, the commands that need nothing of the library
(``profiles``, ``protocols``), and the dispatch to :mod:`benchmark.commands` (loaded only then, so
``tlbench --help`` answers at once). Errors a user can fix are printed as one clear message (exit code
2), never as a traceback; a grid with failed cells exits 1; Ctrl-C prints one line and exits 130.

``tlbench run`` runs through Prefect by default (the ``prefect`` engine, found through the
``tlbench.launchers`` entry point group so this library never imports Prefect); ``--engine local``
runs the same grid with no orchestrator at all.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from benchmark.data.protocols import PROTOCOLS
from benchmark.spec.errors import TlbenchError
from benchmark.spec.profiles import profile_names
from benchmark.spec.settings import storage_problem

log = logging.getLogger("tlbench")


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
    parser.add_argument("--subgrid", type=int, action="append", default=[], metavar="N",
                        help="only sub-grid N of the grid's `subgrids` (1-based, repeatable): a long "
                             "profile run as several commands on one results folder, sharing its body")


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

    board = sub.add_parser("leaderboard", help="print the leaderboard")
    _add_settings(board, data=False)
    _add_row_filters(board)
    board.add_argument("--grid", action="append", help="grid name")
    board.add_argument("--cells", action="store_true", help="one line per cell instead of aggregated")
    board.add_argument("--json", action="store_true", help="rows as a JSON list of objects")
    board.add_argument("--max-rows", type=int, default=200)

    report = sub.add_parser("report", help="write the HTML report of a grid's leaderboard")
    _add_settings(report, data=False)
    report.add_argument("--grid", action="append", help="grid name (needed when several grids have rows)")
    _add_row_filters(report)
    report.add_argument("--run-id", action="append", help="only these grid runs (default: the grid's current spec)")
    report.add_argument("--out", help="output folder (default <results>/reports/<grid>/)")
    report.add_argument("--no-forecasts", action="store_true",
                        help="do not fetch the best cells' predictions from MLflow")

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

    validate = sub.add_parser("validate", help="check a grid spec and its data without training")
    _add_grid(validate)
    _add_settings(validate)

    fix = sub.add_parser("repair", help="quarantine damaged leaderboard files and restore their rows")
    _add_settings(fix)
    fix.add_argument("--profile", help="also list the cells this profile's next run trains")
    fix.add_argument("--grid", help="also list the cells this grid spec's next run trains")
    fix.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    profiles = sub.add_parser("profiles", help="list the shipped profiles")
    profiles.set_defaults(func=cmd_profiles)  # the light commands; the others: commands.COMMANDS

    protocols = sub.add_parser("protocols", help="list the evaluation protocols (split.protocol)")
    protocols.set_defaults(func=cmd_protocols)

    ui = sub.add_parser("ui", help="print the runs-list view and start the MLflow UI on the embedded store")
    _add_settings(ui, data=False)
    ui.add_argument("--experiment", help="MLflow experiment (default: every tlbench-* experiment)")
    ui.add_argument("--size", type=int, help="only the cells of this target size, e.g. 960")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    return parser


def keep_ctrl_c() -> None:
    """Make a Ctrl-C that Python drops stop the run after all. Python raises ``KeyboardInterrupt``
    in whatever Python code runs when the signal is handled; when that is a weakref callback or a
    finalizer run by the garbage collector (SQLAlchemy's, under MLflow's SQLite store, was caught
    doing it), the exception is printed as "Exception ignored in ..." and dropped, and the grid
    trained on to the end (exit 0). Such dropped exceptions go through ``sys.unraisablehook``: for
    a ``KeyboardInterrupt`` this one has SIGINT sent to this process again 50 ms later, from a
    thread (sent from the hook itself, it would be raised inside the hook, and dropped again), so it
    is raised once more in the code that was interrupted. Only in the main thread, where Python
    handles signals, and only while SIGINT has Python's default handler (``tlbench`` installs no
    other)."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            again = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
            again.daemon = True
            again.start()
            return
        previous(unraisable)

    sys.unraisablehook = hook


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_ctrl_c()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
    handler = logging.StreamHandler()
    handler.setFormatter(_RunNameFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib", "alembic", "urllib3", "httpx",
                  "mlflow.store.db.utils"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if getattr(args, "func", None) is not None:  # profiles, protocols: no library needed
            return args.func(args)
        # pandas, pyarrow and the library (benchmark.commands): loaded only for a command that uses
        # them, so that `tlbench --help`, `profiles` and `protocols` answer at once
        from benchmark import commands

        return commands.run_command(args)
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
