"""MLflow runs: the experiment, runs and their params, tags, metrics, artifacts and datasets, links, crash recovery.

One experiment per benchmark name, one parent run per grid run, one child run per pretraining
and per cell. Runs carry their configuration as params and as filterable tags (architecture, mode,
target, target_size, seed, grid_id, cell_key, package version, git commit, host, device).

The embedded default is a SQLite file plus a local artifact folder (see ``Settings``); the store is
created once, before any fan-out, and under a file lock (:func:`open_client`: several processes
creating a fresh SQLite store at once corrupt it). The active-run stack of MLflow's fluent API is
thread-local, so cells running in threads each hold their own run.

Against a server, every request is retried on connection errors and transient HTTP codes with
exponential backoff by MLflow's own client, whose policy the edges set once from ``Settings``
(:func:`benchmark.spec.settings.apply_mlflow_http_policy`: ``mlflow_max_retries``,
``mlflow_backoff_factor``, ``mlflow_timeout``; :class:`Tracker` never touches the environment), so a server
restart of a minute or two is waited out; a server that does not answer for
``Settings.tracking_wait_seconds`` stops the grid with one :class:`~benchmark.tracking.outage.TrackingUnavailable`
line (:mod:`benchmark.tracking.outage`: every client call goes through its ``Guarded``).

Credentials never reach MLflow: params and tags whose *names* look secret are dropped, and every
param or tag *value* is passed through :func:`redact` (the values of credential-like environment
variables, collected by ``Settings.from_env``, and ``user:password@`` in URLs become ``***``).
Tag names, flattened params and dataset references are plain data in :mod:`benchmark.tracking.tags`;
the models a run logs and the registry are :class:`benchmark.tracking.models.ModelRegistry`, which
:class:`Tracker` extends; the UI's saved view and links are :mod:`benchmark.tracking.views`.
"""

from __future__ import annotations

import fcntl
import logging
import re
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import mlflow
import mlflow.data
import pandas as pd
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from benchmark.results.leaderboard import write_frame
from benchmark.spec.settings import Settings, redact
from benchmark.tracking.models import ModelRegistry
from benchmark.tracking.outage import Guarded, forget_outage
from benchmark.tracking.tags import (
    TAG_CELL_KEY,
    TAG_CLOSED_REASON,
    TAG_ERROR,
    TAG_HEARTBEAT,
    TAG_HOST,
    TAG_KIND,
    TAG_PID,
    TAG_SUPERSEDED,
    DatasetRef,
    looks_secret,
)
from benchmark.tracking.views import TAG_NOTE, UI_WORKSPACE, experiment_tags, same_tag

log = logging.getLogger(__name__)

#: What a store answers when two runs insert the same new dataset at once (SQLite, PostgreSQL,
#: MySQL): MLflow looks the dataset up, then inserts it, in one transaction, so when two cells of
#: one (target, size) log their identical data together the slower insert fails and is rolled back.
_DATASET_RACE = re.compile(r"UNIQUE constraint failed: datasets|duplicate key value|Duplicate entry", re.I)
#: How many times :meth:`Tracker.log_datasets` logs again after losing that race.
DATASET_RETRIES = 3


def open_client(tracking_uri: str) -> MlflowClient:
    """A client of the store at ``tracking_uri``. MLflow creates a SQLite store's schema on the
    first open, without a lock: two processes opening one new store at once corrupt it (``table
    runs already exists``; an alembic ``CommandError``). So a SQLite store (``sqlite:///<file>``) is
    opened under an exclusive ``flock`` on ``<file>.lock`` beside the database, held until the
    schema is there (about 5 s the first time, milliseconds after; once per process, since MLflow
    caches the store). The lock file stays: removing it would let a third process lock a new file."""
    database = sqlite_file(tracking_uri)
    if database is None:
        return MlflowClient(tracking_uri=tracking_uri)
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # given back when the file closes, also if this process dies
        return MlflowClient(tracking_uri=tracking_uri)


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (``None`` for any other store)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = tracking_uri.removeprefix("sqlite:///").partition("?")[0]
    return Path(database) if database and database != ":memory:" else None


class Tracker(ModelRegistry):
    """Talks to one MLflow tracking store for one experiment (its models: :class:`ModelRegistry`)."""

    def __init__(self, settings: Settings, experiment: str):
        self.settings = settings
        self.experiment_name = redact(experiment, settings.secret_values)
        self.client = Guarded(open_client(settings.tracking_uri), settings)  # a silent server: outage.py
        self._experiment_id: str | None = None

    # ------------------------------------------------------------------ set-up

    def forget_outage(self) -> None:
        """Try the server again even if this process gave up on it (a new run of a grid starts)."""
        forget_outage(self.settings.tracking_uri)

    def ensure_store(self) -> str:
        """Create the store (schema) and the experiment once, before any fan-out."""
        if self._experiment_id:
            return self._experiment_id
        if self.settings.tracking_uri.startswith("sqlite:"):
            self.settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.settings.tracking_uri)
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            try:
                self._experiment_id = self.client.create_experiment(
                    self.experiment_name, artifact_location=self.settings.artifact_location or None,
                    tags=experiment_tags())
                return self._experiment_id
            except mlflow.exceptions.MlflowException:
                # Another process created it between our lookup and create.
                experiment = self.client.get_experiment_by_name(self.experiment_name)
        self._experiment_id = experiment.experiment_id
        for key, value in experiment_tags().items():  # experiments made before these tags
            if not same_tag(experiment.tags.get(key), value):
                self.client.set_experiment_tag(self._experiment_id, key, value)
        return self._experiment_id

    @property
    def experiment_id(self) -> str:
        return self.ensure_store()

    # ------------------------------------------------------------------ runs

    def start_run(self, name: str, kind: str, tags: Mapping[str, str], params: Mapping[str, str],
                  parent_run_id: str | None = None) -> str:
        """Create a RUNNING run with tags and params; returns its id (close it with end_run)."""
        name = self._clean(name, 250)
        all_tags = {TAG_KIND: kind, "mlflow.runName": name}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        all_tags.update({k: self._clean(v, 5000) for k, v in tags.items() if not looks_secret(k)})
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=name)
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        items = [Param(k, self._clean(v, 6000)) for k, v in params.items() if not looks_secret(k)]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start:start + 100])

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        items = [RunTag(k, self._clean(v, 5000)) for k, v in tags.items() if not looks_secret(k)]
        if items:
            self.client.log_batch(run_id, tags=items)

    def _clean(self, value: Any, limit: int) -> str:
        """A param or tag value as MLflow stores it: redacted, then cut to ``limit`` characters."""
        return redact(str(value), self.settings.secret_values)[:limit]

    def end_run(self, run_id: str, status: str = "FINISHED", error: str | None = None) -> None:
        if error:
            self.set_tags(run_id, {TAG_ERROR: error[:5000]})
        self.client.set_terminated(run_id, status=status)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if v is not None and v == v]  # NaN metrics are left out, not logged as NaN
        if items:
            self.client.log_batch(run_id, metrics=items)

    def log_steps(self, run_id: str, steps: list[tuple[int, Mapping[str, float]]]) -> None:
        """Metrics of several steps (e.g. epochs) in one call per 500 points; NaN left out."""
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for step, metrics in steps for k, v in metrics.items()
                 if v is not None and v == v]
        for start in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[start:start + 500])

    def log_history(self, run_id: str, history: Mapping[str, list[float]]) -> None:
        """Per-epoch curves as metric steps, in batches (one call per 500 points)."""
        now = int(time.time() * 1000)
        items = [Metric(name, float(v), now, step)
                 for name, values in history.items() for step, v in enumerate(values)
                 if v == v]
        for start in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[start:start + 500])

    def log_figure(self, run_id: str, figure, artifact_file: str) -> None:
        self.client.log_figure(run_id, figure, artifact_file)

    def log_file(self, run_id: str, local_path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(local_path), artifact_path)

    def log_frame(self, run_id: str, frame, artifact_file: str) -> None:
        """A small DataFrame (predictions) as a Parquet artifact (written by the leaderboard module,
        the one Parquet writer)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / artifact_file
            write_frame(frame, path)
            self.client.log_artifact(run_id, str(path))

    def load_frame(self, run_id: str, artifact_file: str):
        """A Parquet artifact of a run (e.g. a cell's ``predictions.parquet``) as a DataFrame."""
        with tempfile.TemporaryDirectory() as tmp:
            return pd.read_parquet(self.client.download_artifacts(run_id, artifact_file, tmp))

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_datasets(self, run_id: str, datasets: list[DatasetRef]) -> None:
        """The data a run trained, validated and was tested on, as MLflow datasets (the run page's
        "Datasets"), each with its context (``training``, ``validation``, ``test``), source, name
        (which says the time range) and a digest of the arrays themselves. Cells of one (target,
        size) log identical datasets: one that loses the insert race to another run (the store's
        unique constraint, :data:`_DATASET_RACE`) logs again and links to the row that won."""
        inputs = []
        for ref in datasets:
            with warnings.catch_warnings():  # a local path matches two equal source types: harmless
                warnings.filterwarnings("ignore", message="The specified dataset source")
                dataset = mlflow.data.from_numpy(ref.features, source=self._clean(ref.source, 1000),
                                                 targets=ref.targets, name=self._clean(ref.name, 500))
            inputs.append(DatasetInput(dataset._to_mlflow_entity(),
                                       tags=[InputTag("mlflow.data.context", ref.context)]))
        if not inputs:
            return
        for attempt in range(DATASET_RETRIES + 1):
            try:
                self.client.log_inputs(run_id, inputs)
                return
            except mlflow.exceptions.MlflowException as exc:
                if attempt == DATASET_RETRIES or not _DATASET_RACE.search(str(exc)):
                    raise
                # another run committed the same dataset first: logging again links to its row
                log.info("run %s: dataset logged by another run at the same moment; logging again", run_id)
                time.sleep(0.05 * (attempt + 1))

    # ------------------------------------------------------------------ links

    def run_url(self, run_id: str, artifact: str | None = None, local_ui: str | None = None) -> str | None:
        """The run's page (or an artifact's view on it) in the tracking server's UI, for a server
        (http/https) tracking URI; for a local store None (no URL anyone else can open), or with
        ``local_ui`` (e.g. :data:`LOCAL_UI`) the page on the UI that serves it there (``tlbench ui``)."""
        base = self._ui_base(local_ui)
        if base is None:
            return None
        page = f"{base}/#/experiments/{self.experiment_id}/runs/{run_id}"
        return f"{page}/artifacts/{artifact}?{UI_WORKSPACE}" if artifact else f"{page}?{UI_WORKSPACE}"

    def experiment_url(self) -> str | None:
        """The experiment's runs list in the UI's model-training workspace (what a fresh browser
        should land on: without ``workflowType`` it opens the GenAI overview); None for a local
        store."""
        base = self._ui_base()
        return None if base is None else f"{base}/#/experiments/{self.experiment_id}/runs?{UI_WORKSPACE}"

    def _ui_base(self, local_ui: str | None = None) -> str | None:
        """The tracking server's address (credentials redacted), else ``local_ui``, else None."""
        base = self.settings.tracking_uri.rstrip("/")
        if not base.startswith(("http://", "https://")):
            base = local_ui.rstrip("/") if local_ui else None
        return redact(base, self.settings.secret_values) if base else None

    def describe_run(self, run_id: str, markdown: str) -> None:
        """Set a run's description (markdown) as the UI shows it."""
        self.set_tags(run_id, {TAG_NOTE: markdown})

    def describe_grid_run(self, run_id: str, title: str, statuses: list[str], verdict: list[str],
                          report: str | None) -> str | None:
        """A grid run's description: the cells per status, the verdict lines and a link to the
        ``report`` artifact (an absolute URL on a server, else the UI's own route). Returns the
        report's URL on the server's UI (None for a local store or no report). Never raises: a
        description is presentation, the results are recorded."""
        try:
            return self._describe_grid_run(run_id, title, statuses, verdict, report)
        except Exception:  # noqa: BLE001
            log.warning("could not describe the grid's MLflow run %s", run_id, exc_info=True)
            return None

    def _describe_grid_run(self, run_id: str, title: str, statuses: list[str], verdict: list[str],
                           report: str | None) -> str | None:
        counts = {status: statuses.count(status) for status in sorted(set(statuses))}
        lines = [f"**Grid {title}**: " + ", ".join(f"{n} {status}" for status, n in counts.items()), "",
                 "**Verdict**", "", *(f"- {line}" for line in verdict or ["no rows to judge"])]
        url = self.run_url(run_id, report) if report else None
        if report:
            link = url or f"#/experiments/{self.experiment_id}/runs/{run_id}/artifacts/{report}?{UI_WORKSPACE}"
            lines += ["", f"[HTML report]({link}) (Artifacts: `{report}`)"]
        if self.experiment_url():  # a full URL: the UI's own links drop the workspace choice
            lines += ["", f"[All runs of this experiment (model training)]({self.experiment_url()})"]
        self.describe_run(run_id, "\n".join(lines))
        return url

    # ------------------------------------------------------------------ lookups

    def runs_for_cell(self, cell_key: str) -> list:
        return self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{TAG_CELL_KEY}` = '{cell_key}'",
            max_results=100)

    def close_orphaned_grid_runs(self, host: str, is_alive: Callable[[int], bool],
                                 stale_after_s: float) -> int:
        """Grid (parent) runs of this experiment left RUNNING by a grid that died are ended as
        KILLED, with the reason in ``tlbench.closed_reason``: on this ``host`` when its process
        (``tlbench.pid``) is gone, on any machine when its ``tlbench.heartbeat`` is older than
        ``stale_after_s`` (a live grid refreshes it every ``Settings.heartbeat_seconds``).
        Returns how many were closed."""
        runs = self.client.search_runs([self.experiment_id], max_results=1000,
                                       filter_string=f"tags.`{TAG_KIND}` = 'grid' and attributes.status = 'RUNNING'")
        closed = 0
        for run in runs:
            tags = run.data.tags
            pid, beat = tags.get(TAG_PID, ""), tags.get(TAG_HEARTBEAT, "")
            age = time.time() - float(beat) if _is_number(beat) else None
            if tags.get(TAG_HOST) == host and pid.isdigit() and not is_alive(int(pid)):
                reason = f"its grid process {pid} on {host} died; the grid was run again"
            elif age is not None and age > stale_after_s:
                reason = (f"no heartbeat from its grid on {tags.get(TAG_HOST, 'an unknown host')} "
                          f"(pid {pid or '?'}) for {age:.0f} s (> {stale_after_s:.0f} s): that grid died")
            else:
                continue
            self.set_tags(run.info.run_id, {TAG_CLOSED_REASON: reason})
            self.end_run(run.info.run_id, "KILLED", error=reason)
            closed += 1
        return closed

    def beat(self, run_id: str) -> None:
        """Refresh a grid run's ``tlbench.heartbeat`` (see :meth:`close_orphaned_grid_runs`)."""
        self.set_tags(run_id, {TAG_HEARTBEAT: f"{time.time():.0f}"})

    def supersede_runs(self, cell_key: str, counted_run_id: str, delete: bool = False) -> int:
        """Older FINISHED runs of a cell get ``tlbench.superseded=<counted_run_id>`` (or are
        deleted, with ``delete``), so a search by cell key shows one counted run: the one its
        leaderboard row names. Returns how many were changed."""
        changed = 0
        for run in self.runs_for_cell(cell_key):
            if (run.info.run_id == counted_run_id or run.info.status != "FINISHED"
                    or run.data.tags.get(TAG_SUPERSEDED)):
                continue
            self.set_tags(run.info.run_id, {TAG_SUPERSEDED: counted_run_id})
            if delete:
                self.client.delete_run(run.info.run_id)
            changed += 1
        return changed

    def finished_run_for_cell(self, cell_key: str) -> str | None:
        for run in self.runs_for_cell(cell_key):
            if run.info.status == "FINISHED":
                return run.info.run_id
        return None

    def close_stale_runs(self, cell_key: str, committed_run_id: str | None = None,
                         delete_superseded: bool = False) -> int:
        """Runs left RUNNING for this cell by a crashed process are ended as KILLED.

        ``committed_run_id``: the run named by the cell's leaderboard row, if it has one. That run
        logged everything before its row was written, so if it was left RUNNING (or marked FAILED
        because only the final status update failed) it is marked FINISHED instead: the cell that
        counts keeps exactly one FINISHED run; any other FINISHED run (an earlier computation of
        the cell) is tagged superseded, as :meth:`supersede_runs` does. Returns how many runs were
        changed.
        """
        closed = 0
        runs = self.runs_for_cell(cell_key)
        if committed_run_id and any(r.info.status == "FINISHED" and r.info.run_id != committed_run_id
                                    and not r.data.tags.get(TAG_SUPERSEDED) for r in runs):
            closed += self.supersede_runs(cell_key, committed_run_id, delete_superseded)
        for run in runs:
            if committed_run_id and run.info.run_id == committed_run_id:
                if run.info.status != "FINISHED":
                    self.set_tags(run.info.run_id, {"tlbench.reconciled": f"{run.info.status} -> FINISHED: "
                                                    "its leaderboard row was written"})
                    self.client.set_terminated(run.info.run_id, status="FINISHED")
                    closed += 1
            elif run.info.status == "RUNNING":
                self.end_run(run.info.run_id, "KILLED", error="left RUNNING by a crashed run; rerun")
                closed += 1
        return closed

    def get_run(self, run_id: str):
        return self.client.get_run(run_id)

    def experiment_ids(self, prefix: str = "tlbench-") -> dict[str, str]:
        """``{name: id}`` of the experiments whose name starts with ``prefix`` (nothing created)."""
        return {e.name: e.experiment_id for e in self.client.search_experiments(max_results=1000)
                if e.name.startswith(prefix)}


class Heartbeat:
    """Refreshes the parent run's heartbeat tag every ``seconds`` in a daemon thread, so that a
    grid killed on any machine is recognised by its silence (``Tracker.close_orphaned_grid_runs``)."""

    def __init__(self, tracker: "Tracker", run_id: str, seconds: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(tracker, run_id, max(1.0, seconds)),
                                        daemon=True, name="tlbench-heartbeat")
        self._thread.start()

    def _run(self, tracker, run_id: str, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                tracker.beat(run_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried; the grid goes on
                log.debug("heartbeat of %s failed", run_id, exc_info=True)

    def stop(self) -> None:
        self._stop.set()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
