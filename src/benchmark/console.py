"""What ``tlbench run`` shows on the terminal: a live progress display, warnings of ours, and a
short summary; everything else (our INFO logs, TensorFlow's C++/absl lines, the CUDA probe,
retracing and matplotlib warnings, MLflow's download bars) goes to a log file under the results.

Why file descriptors and not logging settings: TensorFlow's C++ runtime writes to fd 2 itself (the
absl ``I0000 ... port.cc`` lines ignore ``TF_CPP_MIN_LOG_LEVEL``), and the worker processes of
:class:`benchmark.run.engines.ProcessEngine` or Prefect write to the fds they inherit. So for the run,
fds 1 and 2 of this process point at the log file, and the display writes to a duplicate of the
original terminal; both are restored on exit, on an exception and on Ctrl-C.

The progress has two sources, so it is right whatever the engine: the stage names seen by
:meth:`RunConsole.engine` (a thin wrapper over any :class:`benchmark.run.engines.Engine`) and
``on_progress``, and the leaderboard ledger, polled once a second by a background thread for this
run's finished and failed cells (which other processes write). A terminal gets a rich live
display; a pipe (a nightly job's log) gets plain lines: one per stage, a ``progress:`` line at most
every :data:`PIPE_PROGRESS_SECONDS` while something moved, then the summary.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from benchmark.data.sources import source_label
from benchmark.results.leaderboard import Leaderboard
from benchmark.run.jobs import cell_key
from benchmark.run.progress import pretrain_progress_dir
from benchmark.run.repair import repair_preview
from benchmark.spec.errors import TlbenchError
from benchmark.spec.settings import Settings

log = logging.getLogger(__name__)

#: Through a pipe, the least time between two ``progress:`` lines (``tlbench run --progress-every``):
#: a 50-minute grid logs about ten, so a nightly log shows it was alive and how far it got.
PIPE_PROGRESS_SECONDS = 300.0
#: Our loggers: their WARNING+ records also reach the terminal.
OUR_LOGGERS = ("benchmark", "flows", "tlbench")
#: The ledger's loggers: their per-file lines about unreadable files stay in the log (see _TerminalHandler).
LEDGER_LOGGERS = ("benchmark.results.reader", "benchmark.results.leaderboard")
#: Display names of the engine's stage names.
STAGE_NAMES = {"pretrain": "pretraining", "baselines": "baselines", "cell": "cells"}


@dataclass
class Progress:
    """What the display shows; written by the engine wrapper, ``on_progress`` and the poller."""

    total: int | None = None          # cells of the grid (model cells, not baselines)
    already: int = 0                  # finished before this run started
    done: int = 0                     # finished by this run
    failed: int = 0                   # failed in this run
    slots: int = 1
    slots_unknown: bool = True    # no engine view: stages are inferred from files
    active: dict[str, int] = field(default_factory=dict)  # stage -> maps running
    finished_stages: set[str] = field(default_factory=set)
    pretrain: dict | None = None      # the newest pretraining progress file's content

    def stage(self) -> str:
        """The stage(s) running now: from the engine when it reports them, else from the files."""
        active = [STAGE_NAMES[s] for s in STAGE_NAMES if self.active.get(s)]
        if active:
            return " + ".join(active)
        if self.total is None:
            return "planning"
        if "cell" in self.finished_stages or self.to_go == 0:
            return "report"
        if self.pretrain and not self.pretrain.get("finished"):
            return "pretraining"  # an engine that reports no stages (Prefect): its progress file
        return "cells" if self.slots_unknown else "starting"

    @property
    def to_go(self) -> int:
        return max(0, (self.total or 0) - self.already - self.done - self.failed)

    @property
    def running(self) -> int:
        cells = self.active.get("cell") or (self.slots_unknown and self.stage() == "cells")
        return min(self.slots, self.to_go) if cells else 0


class _EngineView:
    """Any engine, reporting which stage's ``map`` is running to the console."""

    def __init__(self, engine, progress: Progress):
        self._engine, self._progress = engine, progress
        progress.slots = int(getattr(engine, "slots", 1) or 1)
        progress.slots_unknown = False

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def map(self, stage, fn, items, settings):
        active = self._progress.active
        active[stage] = active.get(stage, 0) + 1
        try:
            done = self._engine.map(stage, fn, items, settings)
        finally:
            active[stage] -= 1
        if not active[stage]:  # only a stage that got through: one cut short (Ctrl-C) did not finish
            self._progress.finished_stages.add(stage)
        return done


class _TerminalHandler(logging.Handler):
    """WARNING+ records of our loggers, printed above the live display, each distinct line once.
    The ledger's own lines about an unreadable file (skipped on a read, moved to quarantine) stay
    in the log: the run repairs such files, and the repair says so in one line
    (:func:`benchmark.run.repair.repair`), which the start line announced."""

    def __init__(self, console):
        super().__init__(logging.WARNING)
        self.console = console
        self._shown: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = f"{record.levelname.lower()}: {record.getMessage()}"
            if line in self._shown or (record.name in LEDGER_LOGGERS and "unreadable" in line):
                return
            self._shown.add(line)
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        except Exception:  # noqa: BLE001 - a display problem must not break the run
            self.handleError(record)


class RunConsole:
    """The terminal of one ``tlbench run``: use as a context manager around the run, pass
    :meth:`engine` and :meth:`on_progress` to :func:`benchmark.run.grid.run_grid`, call :meth:`watch`
    with the plan and :meth:`finish` with the result.

    ``verbose`` keeps everything on the terminal (no redirection, no display): today's output.
    ``progress_every``: through a pipe, the least seconds between two ``progress:`` lines (None:
    :data:`PIPE_PROGRESS_SECONDS`).
    """

    def __init__(self, settings: Settings, label: str, verbose: bool = False, poll_seconds: float = 1.0,
                 progress_every: float | None = None):
        self.settings, self.label, self.verbose = settings, label, verbose
        self.poll_seconds = poll_seconds
        self.progress_every = PIPE_PROGRESS_SECONDS if progress_every is None else progress_every
        self.progress = Progress()
        self.log_path: Path | None = None
        self.started = time.time()
        self._saved: tuple[int, int] | None = None
        self._terminal: TextIO | None = None
        self._console = None
        self._live = None
        self._handler: logging.Handler | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._keys: set[str] = set()
        self._ledger: Leaderboard | None = None  # the poller's reader
        self.interrupted = False  # Ctrl-C stopped the run, and the terminal was told
        self._last_stage = ""
        self._last_line = (0.0, "")  # through a pipe: when the last plain line was said, and its state
        self._summary: list[str] = []

    # ------------------------------------------------------------------ hooks for cmd_run
    def engine(self, engine):
        """``engine``, reporting its stages to the display."""
        return _EngineView(engine, self.progress)

    def on_progress(self, stage: str, done: int, total: int) -> None:
        self.progress.finished_stages.add(stage)

    def watch(self, plan, slots: int = 1) -> None:
        """Count this grid's cells (a :class:`benchmark.run.plan.GridPlan`) in the ledger from now on;
        ``slots``: jobs at once (until an engine view says otherwise)."""
        self.progress.slots = slots if self.progress.slots_unknown else self.progress.slots
        keys = {cell_key(c, plan.fingerprints[source_label(c.target)]) for c in plan.cells}
        board = Leaderboard(self.settings.results)
        finished = board.finished_keys()
        damaged = repair_preview(board)  # the run repairs a damaged ledger first: count what it restores
        restored = len(keys & damaged.restorable)
        self.progress.already = len(keys & (finished | damaged.restorable))
        self.progress.total = len(keys)
        repaired = ""
        if damaged.files:
            files = f"{damaged.files} damaged ledger file{'s' if damaged.files > 1 else ''}"
            repaired = (f" ({restored} restored from the ledger archive: {files} "
                        f"{'are' if damaged.files > 1 else 'is'} repaired first)")
        self._keys = keys  # the poller counts from here on
        self._say(f"tlbench run {self.label}: {self.progress.total} cells, {self.progress.already} "
                  f"already finished{repaired}" + (f"; log: {self.log_path}" if self.log_path else ""))

    def finish(self, result) -> None:
        """Remember the summary of ``result`` (a :class:`benchmark.run.jobs.GridResult`); printed on exit."""
        self._poll()
        counts = result.counts()
        lines = [f"grid {result.grid} run {result.run_id}: "
                 + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
                 + f" in {result.wall_seconds:.0f} s"]
        lines += [f"FAILED {o.label}: {o.error}" for o in result.failed[:5]]
        if len(result.failed) > 5:
            lines.append(f"... and {len(result.failed) - 5} more failed cells (see the log)")
        lines += [f"verdict: {line}" for line in result.verdict]
        if result.report_path:
            lines.append(f"report: {result.report_path}")
        lines.append(f"leaderboard: {self.settings.results} (tlbench leaderboard)")
        if self.log_path:
            lines.append(f"log: {self.log_path}")
        lines.append(f"MLflow UI: tlbench ui (or make ui), store {self.settings.tracking_uri}")
        self._summary = lines

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> "RunConsole":
        if self.verbose:
            return self
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        folder = self.settings.local_dir("logs", "")
        self._created = [p for p in (*reversed(folder.parents), folder) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / f"run-{stamp}-{os.getpid()}.log"
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = (os.dup(1), os.dup(2))
        target = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, 1)
        os.dup2(target, 2)
        os.close(target)
        from rich.console import Console

        interactive = os.isatty(self._saved[0])
        self._terminal = os.fdopen(os.dup(self._saved[0]), "w", buffering=1, encoding="utf-8",
                                   errors="replace")
        self._console = Console(file=self._terminal, force_terminal=interactive,
                                force_interactive=interactive, highlight=False)
        self._handler = _TerminalHandler(self._console)
        for name in OUR_LOGGERS:
            logging.getLogger(name).addHandler(self._handler)
        if interactive:
            from rich.live import Live

            self._live = Live(self._render(), console=self._console, refresh_per_second=2,
                              transient=True, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        self._thread = threading.Thread(target=self._run_poller, name="tlbench-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.verbose:  # today's output, printed by cmd_run itself
            return False
        if exc_type is KeyboardInterrupt:  # where it stopped, for the log only
            log.info("interrupted (Ctrl-C); a rerun resumes", exc_info=(exc_type, exc, tb))
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._live is not None:
            self._live.stop()
        for name in OUR_LOGGERS:
            logging.getLogger(name).removeHandler(self._handler)
        # Prefect stops its temporary server at interpreter exit, after the terminal is back: its
        # INFO line ("Stopping temporary server ...") belongs in the log, not on the terminal.
        logging.getLogger("prefect").setLevel(logging.WARNING)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        if exc_type is not None and not self._keys:
            self._undo_folders()  # stopped before the plan (bad input): leave no folder behind
        where = f". log: {self.log_path}" if self.log_path else ""
        if exc_type is KeyboardInterrupt:
            self._summary = [f"interrupted; run it again to resume{where}"]
            self.interrupted = True
        elif exc_type is not None and issubclass(exc_type, TlbenchError):
            pass  # a user's error: the CLI prints its message, what and how to fix, as one error line
        elif exc_type is not None and self._summary == [] and self.log_path is not None:
            self._summary = [f"the run stopped: {exc_type.__name__}; log: {self.log_path}"]
        for line in self._summary:
            self._console.print(line, markup=False, soft_wrap=True)
        self._terminal.close()
        return False

    def _undo_folders(self) -> None:
        """Remove an empty log and the folders this run created (innermost first), so a run
        refused before it planned anything creates no results folder and leaves no file anywhere
        (the refusal itself is printed on the terminal). A log that holds something stays where
        it is, under the results."""
        if not getattr(self, "_created", None) or self.log_path is None or self.log_path.stat().st_size:
            return
        self.log_path.unlink()
        self.log_path = None
        for folder in reversed(self._created):
            try:
                folder.rmdir()
            except OSError:  # not empty: something else wrote there
                break

    # ------------------------------------------------------------------ the poller
    def _run_poller(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self._poll()
            except Exception:  # noqa: BLE001 - a half-written ledger file: the next poll sees it
                log.debug("progress poll failed", exc_info=True)
            stage = self.progress.stage()
            if self._live is not None:
                self._live.update(self._render())
            elif stage not in ("planning", "starting"):
                if stage != self._last_stage:
                    self._say(f"stage: {stage} ({self._counts()})")
                    self._last_line = (time.time(), self._state())
                else:
                    self._say_progress()
            self._last_stage = stage

    def _state(self) -> str:
        """The counts and, while the body trains, its epoch: what a ``progress:`` line reports."""
        p = self.progress
        return self._counts() + (f"; {self._pretraining()}" if p.pretrain and "pretraining" in p.stage() else "")

    def _pretraining(self) -> str:
        """``pretraining epoch 8/12, ~3 min 10 s left in it`` (at its epochs' mean pace so far)."""
        record = self.progress.pretrain
        left = record.get("left_s")
        pace = f", ~{_duration(left)} left in it" if left is not None and not record.get("finished") else ""
        return f"pretraining epoch {record['epoch']}/{record['max_epochs']}{pace}"

    def _say_progress(self) -> None:
        """Through a pipe: a ``progress:`` line when something moved and the last line is at least
        ``progress_every`` seconds old."""
        now, state = time.time(), self._state()
        said, last = self._last_line
        if state != last and now - said >= self.progress_every:
            elapsed = now - self.started
            self._say(f"progress: {state}; elapsed {_duration(elapsed)}, left ~{self._eta(elapsed)}")
            self._last_line = (now, state)

    def _poll(self) -> None:
        if not self._keys:
            return
        if self._ledger is None:  # one reader for every poll: a damaged file is logged once, not each second
            self._ledger = Leaderboard(self.settings.results)
        board = self._ledger
        finished = len(self._keys & board.finished_keys())
        failures = board.failures()
        if len(failures):
            since = datetime.fromtimestamp(self.started, timezone.utc)
            stamps = failures["failed_at"]
            stamps = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps
            recent = failures[(stamps >= since) & failures["cell_key"].isin(self._keys)]
            self.progress.failed = int(recent["cell_key"].nunique())
        self.progress.done = max(0, finished - self.progress.already)
        self.progress.pretrain = self._pretrain_progress()

    def _pretrain_progress(self) -> dict | None:
        import json

        folder = pretrain_progress_dir(self.settings)
        newest = None
        for path in folder.glob("*.json") if folder.is_dir() else []:
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if record.get("updated", 0) >= self.started and (newest is None or
                                                              record["updated"] > newest["updated"]):
                newest = record
        return newest

    # ------------------------------------------------------------------ rendering
    def _counts(self) -> str:
        p = self.progress
        return (f"cells {p.done + p.already}/{p.total or '?'} done, {p.running} running, "
                f"{p.failed} failed, {p.to_go - p.running} to go")

    def _eta(self, elapsed: float) -> str:
        p = self.progress
        if not p.done and p.to_go and p.pretrain and p.pretrain.get("left_s") is not None \
                and "pretraining" in p.stage():
            return f"{_duration(p.pretrain['left_s'])} of pretraining, then the cells"
        if not p.done or not p.to_go:
            return "?" if p.to_go else "0 s"
        return _duration(elapsed / p.done * p.to_go)

    def _render(self):
        from rich.table import Table

        p = self.progress
        elapsed = time.time() - self.started
        grid = Table.grid(padding=(0, 2))
        grid.add_row("[bold]tlbench run[/]", self.label, f"stage: [cyan]{p.stage()}[/]")
        grid.add_row("", self._counts(), f"elapsed {_duration(elapsed)}, left ~{self._eta(elapsed)}")
        if p.pretrain and "pretraining" in p.stage():
            loss = p.pretrain.get("val_loss")
            grid.add_row("", self._pretraining(), f"val_loss {loss:.4f}" if loss is not None else "")
        return grid

    def _say(self, line: str) -> None:
        """One plain line on the terminal (above the display when there is one)."""
        if self._console is not None:
            self._console.print(line, markup=False, soft_wrap=True)
        elif self.verbose:
            log.info("%s", line)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
