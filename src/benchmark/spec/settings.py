"""Where things live: data, results, tracking. Built once by a caller (CLI, flow, test) and passed
down; nothing else in the library reads the environment.

Embedded defaults (no server anywhere): data in ``./data``, results (Parquet leaderboard,
pretrained models, reports) in ``./results``, MLflow in a SQLite file ``./mlflow/mlflow.db`` with
artifacts in ``./mlflow/artifacts``; a SQLite URI of your own keeps its artifacts beside its database
(``<folder of the .db>/artifacts``). Every one is a setting:

==========================  ======================  =============================================
environment variable        CLI option              meaning
==========================  ======================  =============================================
``TLBENCH_DATA_DIR``        ``--data-dir``          folder with ``m4/datasets/``, ``ett/``, ...
``TLBENCH_RESULTS``         ``--results``           results location: a folder or a pyarrow URI
``MLFLOW_TRACKING_URI``     ``--tracking-uri``      any MLflow tracking URI
``TLBENCH_ARTIFACTS``       (none)                  artifact root for a SQLite tracking store
``TLBENCH_EXPERIMENT``      ``--experiment``        MLflow experiment (default: the grid's name)
``MLFLOW_HTTP_REQUEST_*``   (none)                  retry policy towards an MLflow server (below)
``TLBENCH_TRACKING_WAIT_S`` (none)                  longest wait for a silent tracking server (120)
``TLBENCH_LOST_WORKER_S``   (none)                  pool/served: silence that makes a worker lost (120)
==========================  ======================  =============================================

``TLBENCH_DELETE_SUPERSEDED=1`` deletes (instead of only tagging) the older FINISHED MLflow runs of
a cell that was computed again.

Talking to an MLflow server, every request is retried on connection errors and transient HTTP
codes (408, 429, 500, 502, 503, 504) with exponential backoff: MLflow's own client does it
(urllib3 ``Retry``), tlbench only sets its policy. ``mlflow_max_retries`` (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
default 7, at most 10), ``mlflow_backoff_factor`` (``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``, default 2:
waits of 0, 4, 8, 16, 32, 64, 120 s, capped at 120 s, plus up to 1 s jitter each) and
``mlflow_timeout`` (``MLFLOW_HTTP_REQUEST_TIMEOUT``, default 120 s per attempt). The retries are
lowered so that one request's waits fit in a quarter of ``tracking_wait_seconds``
(``TLBENCH_TRACKING_WAIT_S``, default 120 s: :meth:`Settings.effective_mlflow_retries`); the tracker
tries a request that could not reach the server again until the server has been silent that long,
then stops the grid with one line (:mod:`benchmark.tracking.outage`). A server restart of a minute
or two is waited out; :meth:`Settings.mlflow_retry_budget_seconds` is the longest one request can take.

MLflow's HTTP client reads that policy only from its environment variables, so the edges (the CLI,
the flows) call :func:`apply_mlflow_http_policy` once, after building the settings and before
any worker process starts; nothing else in the library touches the environment.

Results location: :meth:`Settings.local_dir` is the one rule for the local folders that go with
the results (pretrained models, reports): under the results folder when it is local, beside the
MLflow store when the results live on an object store (the shared copy is then in MLflow).
:meth:`Settings.results_problem` says in one line why a run could not write there (read-only or
full disk, no permission, a file in the way); ``tlbench run`` asks it before anything starts.

Credentials: the *values* of environment variables whose names look like credentials (TOKEN,
SECRET, PASSWORD, KEY, CREDENTIAL, ...) are kept in ``secret_values`` so that the tracking edge can
redact them wherever they would end up in an MLflow param or tag; they are never exported.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, MutableMapping, NamedTuple

from benchmark.spec.errors import TlbenchError

#: Names of environment variables that hold credentials (AWS_SECRET_ACCESS_KEY, MLFLOW_TRACKING_PASSWORD,
#: DATABRICKS_TOKEN, GOOGLE_APPLICATION_CREDENTIALS, ...): their values are redacted from MLflow.
SECRET_ENV_NAME = re.compile(r"(secret|password|passwd|token|key|credential)", re.I)
_MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") would redact half of every run

#: MLflow's own retry settings, read by its HTTP client at request time.
_HTTP_ENV = {"mlflow_max_retries": "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
             "mlflow_backoff_factor": "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
             "mlflow_timeout": "MLFLOW_HTTP_REQUEST_TIMEOUT"}


class _Variable(NamedTuple):
    """How one setting is read from the environment: its variable, the parser of a non-empty
    value (``None``: leave the default) and, for a parser that can refuse, what a valid value is."""

    name: str
    parse: Callable[[str], Any]
    valid: str = ""


def _switched_on(value: str) -> bool:
    return value.lower() in ("1", "true", "yes")


#: Every setting read from the environment, by setting: the one reader of :meth:`Settings.from_env`.
_ENV = {"data_dir": _Variable("TLBENCH_DATA_DIR", Path),
        "results": _Variable("TLBENCH_RESULTS", str),
        "tracking_uri": _Variable("MLFLOW_TRACKING_URI", str),
        "artifact_location": _Variable("TLBENCH_ARTIFACTS", str),
        "experiment": _Variable("TLBENCH_EXPERIMENT", str),
        "allow_download": _Variable("TLBENCH_OFFLINE", lambda v: False if _switched_on(v) else None),
        "delete_superseded": _Variable("TLBENCH_DELETE_SUPERSEDED",
                                       lambda v: True if _switched_on(v) else None),
        **{name: _Variable(variable, int, "a whole number") for name, variable in _HTTP_ENV.items()},
        "baseline_fit_seconds": _Variable("TLBENCH_BASELINE_FIT_SECONDS", float,
                                          "a number of seconds, e.g. 60"),
        "lost_worker_seconds": _Variable("TLBENCH_LOST_WORKER_S", float, "a number of seconds, e.g. 120"),
        "tracking_wait_seconds": _Variable("TLBENCH_TRACKING_WAIT_S", float, "a number of seconds, e.g. 120")}
_BACKOFF_MAX = 120.0  # urllib3's cap on one wait
#: Local folder names beside the MLflow store when the results live on an object store.
_OBJECT_STORE_FOLDERS = {"pretrained": "pretrained-cache"}

#: The least free space a run needs where its results go: a small grid's models, report and log.
MIN_FREE_BYTES = 64 * 2**20
#: Why a folder cannot be written, by ``errno``, and the fix for it (the place is named around it).
_STORAGE_CAUSES = {
    errno.EROFS: ("it is on a read-only file system", "remount it read-write"),
    errno.ENOSPC: ("its disk is full", "free space there"),
    errno.EDQUOT: ("its disk quota is used up", "free space there"),
    errno.EACCES: ("this user may not write there", "give this user write access"),
    errno.EPERM: ("this user may not write there", "give this user write access"),
    errno.ENOTDIR: ("a part of its path is a file, not a folder", "move that file out of the way"),
}
_ANOTHER_FOLDER = "another folder with --results or TLBENCH_RESULTS"

REDACTED = "***"
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s:]+:[^/@\s]*@")


def redact(value: str, secrets: frozenset[str] | set[str] = frozenset()) -> str:
    """``value`` with every occurrence of a secret and every ``user:password@`` of a URL replaced
    by ``***`` (``s3://AKIA:abc@bucket`` -> ``s3://***@bucket``). The one redaction rule for every
    value that leaves the process: MLflow params and tags, the grid name (and so leaderboard rows,
    report pages and Prefect parameters), flow-run parameters."""
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: no partial leftovers
        if secret:
            value = value.replace(secret, REDACTED)
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", value)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    results: str = "results"
    tracking_uri: str = ""  # "" -> sqlite file under mlflow_dir
    artifact_location: str = ""  # "" -> mlflow_dir/artifacts for a local store
    mlflow_dir: Path = Path("mlflow")
    experiment: str | None = None  # None: the grid's name
    allow_download: bool = True
    mlflow_max_retries: int = 7
    mlflow_backoff_factor: int = 2
    mlflow_timeout: int = 120
    heartbeat_seconds: int = 60  # how often a grid refreshes its parent run's heartbeat tag
    stale_grid_seconds: int = 900  # a RUNNING grid run silent this long died (on any machine)
    delete_superseded: bool = False  # delete, not only tag, older FINISHED runs of a recomputed cell
    baseline_fit_seconds: float = 60.0  # time limit of one statistical baseline fit per series
    lost_worker_seconds: float = 120.0  # pool/served: a worker silent this long (and 3 beats) is dead
    tracking_wait_seconds: float = 120.0  # how long a tracking server that does not answer is waited for
    secret_values: frozenset[str] = field(default_factory=frozenset, repr=False)

    @classmethod
    def from_environment(cls, **overrides) -> "Settings":
        """:meth:`from_env` over this process's environment: what an edge (CLI, flow) calls."""
        return cls.from_env(os.environ, **overrides)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides) -> "Settings":
        """Settings from an environment mapping (the caller passes ``os.environ``) plus overrides
        (``None`` values are ignored, so CLI options that were not given change nothing)."""
        values: dict = {}
        for name, variable in _ENV.items():
            raw = env.get(variable.name)
            if raw:
                try:
                    value = variable.parse(raw)
                except ValueError:
                    raise TlbenchError(f"{variable.name}={raw!r} must be {variable.valid}") from None
                if value is not None:
                    values[name] = value
        values["secret_values"] = frozenset(
            value for name, value in env.items()
            if SECRET_ENV_NAME.search(name) and isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH)
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name in ("data_dir", "mlflow_dir"):
            if name in values:
                values[name] = Path(values[name])
        return cls(**values).resolved()

    def to_plain(self) -> dict[str, Any]:
        """Every setting but the secret values, as JSON-able data: what a flow run takes as a
        parameter (``Settings.from_env(env, **plain)`` on the other side rebuilds the settings).
        A value that holds a credential (``https://user:pw@host``, a secret's value) is ``None``:
        parameters are stored and shown by Prefect, so the other side takes it from its own
        environment (:meth:`credential_env` says which)."""
        plain: dict[str, Any] = {}
        for f in fields(self):
            if f.name != "secret_values":
                value = getattr(self, f.name)
                value = str(value) if isinstance(value, Path) else value
                plain[f.name] = self.shareable(value) if isinstance(value, str) else value
        return plain

    def redact(self, value: str) -> str:
        """:func:`redact` with this environment's secret values."""
        return redact(value, self.secret_values)

    def shareable(self, value: str | None) -> str | None:
        """``value`` when it holds no credential, else ``None`` (never sent as a parameter)."""
        return value if value is None or self.redact(value) == value else None

    def credential_env(self) -> dict[str, str]:
        """The variables of :meth:`to_env` whose values :meth:`to_plain` withholds (they hold a
        credential): what an edge exports to its own process before a flow in that process
        rebuilds the settings from its parameters and environment."""
        return {k: v for k, v in self.to_env().items() if self.shareable(v) is None}

    @property
    def results_on_object_store(self) -> bool:
        """Whether the results location is an object store (a URI other than ``file://``)."""
        return "://" in self.results and not self.results.startswith("file://")

    def local_dir(self, kind: str, name: str) -> Path:
        """The local folder of ``name`` among the results' ``kind`` (``pretrained``, ``reports``):
        ``<results>/<kind>/<name>/``, or beside the MLflow store when the results live on an
        object store (``<mlflow_dir>/pretrained-cache/<key>/``, ``<mlflow_dir>/reports/<grid>/``)."""
        if self.results_on_object_store:
            return self.mlflow_dir / _OBJECT_STORE_FOLDERS.get(kind, kind) / name
        return Path(self.results.removeprefix("file://")) / kind / name

    def results_problem(self, min_free_bytes: int = MIN_FREE_BYTES) -> str | None:
        """Why a run could not write its results here, in one line (which folder, why, the fix),
        or None when it can: read-only or full disk, no permission, a file in the way. Checked at
        the edge (``tlbench run``), before anything starts; it creates nothing that stays (it
        probes with an anonymous temporary file in the nearest existing folder). An object store
        answers for itself: then the local folder beside the MLflow store is checked."""
        if self.results_on_object_store:
            return folder_problem(self.mlflow_dir, "the local results folder", min_free_bytes)
        return folder_problem(Path(self.results.removeprefix("file://")), "the results location",
                              min_free_bytes)

    def effective_mlflow_retries(self) -> int:
        """``mlflow_max_retries``, lowered so that one request's backoff waits (for a server that
        refuses connections) fit in a quarter of ``tracking_wait_seconds``: the tracker then tries
        the request again until the whole bound is reached (:mod:`benchmark.tracking.outage`), so
        a server that is gone is reported within that bound, not after MLflow's own minutes."""
        retries = self.mlflow_max_retries
        while retries > 1 and self._backoff_waits(retries) > self.tracking_wait_seconds / 4:
            retries -= 1
        return retries

    def _backoff_waits(self, retries: int) -> float:
        """urllib3's waits before retries 2..``retries`` (the first is immediate), capped, plus jitter."""
        return sum(min(_BACKOFF_MAX, self.mlflow_backoff_factor * 2 ** (n - 1)) + 1.0 for n in range(2, retries + 1))

    def mlflow_retry_budget_seconds(self) -> float:
        """The longest one MLflow request can take before it gives up: every backoff wait (urllib3
        waits 0 s before the first retry, then ``factor * 2**(n-1)`` capped at 120 s, plus up to 1 s
        jitter) plus ``mlflow_timeout`` for each attempt (a server that accepts but never answers),
        with :meth:`effective_mlflow_retries`."""
        retries = self.effective_mlflow_retries()
        return self._backoff_waits(retries) + 1.0 + (retries + 1) * self.mlflow_timeout

    def resolved(self) -> "Settings":
        """Absolute local paths, so worker threads and child processes agree on them."""
        mlflow_dir = self.mlflow_dir.absolute()
        tracking = self.tracking_uri or f"sqlite:///{mlflow_dir / 'mlflow.db'}"
        if self.tracking_uri.startswith("sqlite:///"):
            # A store the user named: its folder (and so the default artifact root) is the
            # database's, not ./mlflow, and its path is absolute for workers with another cwd.
            database, sep, query = self.tracking_uri.removeprefix("sqlite:///").partition("?")
            database_path = Path(database).absolute()
            mlflow_dir = database_path.parent
            tracking = f"sqlite:///{database_path}{sep}{query}"
        artifacts = self.artifact_location
        if not artifacts and tracking.startswith("sqlite:"):
            artifacts = (mlflow_dir / "artifacts").as_uri()
        results = self.results
        if "://" not in results:
            results = str(Path(results).absolute())
        return replace(self, data_dir=self.data_dir.absolute(), results=results,
                       tracking_uri=tracking, artifact_location=artifacts, mlflow_dir=mlflow_dir)

    def mlflow_http_env(self) -> dict[str, str]:
        """MLflow's own retry-policy variables for these settings."""
        values = {name: int(getattr(self, name)) for name in _HTTP_ENV}
        values["mlflow_max_retries"] = self.effective_mlflow_retries()
        return {variable: str(values[name]) for name, variable in _HTTP_ENV.items()}

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process or worker."""
        env = {"TLBENCH_DATA_DIR": str(self.data_dir), "TLBENCH_RESULTS": self.results,
               "MLFLOW_TRACKING_URI": self.tracking_uri}
        if self.artifact_location:
            env["TLBENCH_ARTIFACTS"] = self.artifact_location
        if self.experiment:
            env["TLBENCH_EXPERIMENT"] = self.experiment
        if not self.allow_download:
            env["TLBENCH_OFFLINE"] = "1"
        if self.delete_superseded:
            env["TLBENCH_DELETE_SUPERSEDED"] = "1"
        if self.baseline_fit_seconds != Settings.baseline_fit_seconds:
            env["TLBENCH_BASELINE_FIT_SECONDS"] = str(self.baseline_fit_seconds)
        if self.lost_worker_seconds != Settings.lost_worker_seconds:
            env["TLBENCH_LOST_WORKER_S"] = str(self.lost_worker_seconds)
        if self.tracking_wait_seconds != Settings.tracking_wait_seconds:
            env["TLBENCH_TRACKING_WAIT_S"] = str(self.tracking_wait_seconds)
        env.update(self.mlflow_http_env())
        return env


def folder_problem(folder: Path, what: str, min_free_bytes: int = MIN_FREE_BYTES) -> str | None:
    """Why nothing can be written under ``folder`` (``what`` names it in the message), or None."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    head = f"cannot write {what} {folder}"
    if not existing.is_dir():
        return f"{head}: {existing} is a file, not a folder. Fix: choose {_ANOTHER_FOLDER}."
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        cause, remedy = _STORAGE_CAUSES.get(exc.errno, (exc.strerror or str(exc), "fix that"))
        return f"{head}: {cause} ({existing}: {exc.strerror}). Fix: {remedy} or choose {_ANOTHER_FOLDER}."
    free = shutil.disk_usage(existing).free
    if free < min_free_bytes:
        return (f"{head}: its disk is full ({free / 2**20:.0f} MiB free, a run needs at least "
                f"{min_free_bytes / 2**20:.0f} MiB). Fix: free space there or choose {_ANOTHER_FOLDER}.")
    return None


def storage_problem(exc: OSError) -> str | None:
    """One line for an error of writing a file mid-run (the disk filled up, a mount went
    read-only): the file, why, the fix; None for an error that is not about the storage."""
    if exc.errno not in _STORAGE_CAUSES:
        return None
    cause, remedy = _STORAGE_CAUSES[exc.errno]
    return (f"cannot write {exc.filename or 'a file'}: {cause} ({exc.strerror}). Fix: {remedy}, then "
            "run it again to resume (finished cells are kept).")


def apply_mlflow_http_policy(settings: Settings, environ: MutableMapping[str, str] | None = None) -> None:
    """Hand ``settings``' retry policy to MLflow's HTTP client, which reads it only from these
    environment variables, at request time. Called once by each edge (CLI, flow) after it built
    its settings and before it starts worker processes (which inherit the environment); a no-op
    unless the tracking URI is an HTTP server. ``environ`` defaults to this process's."""
    if settings.tracking_uri.startswith(("http://", "https://")):
        (os.environ if environ is None else environ).update(settings.mlflow_http_env())
