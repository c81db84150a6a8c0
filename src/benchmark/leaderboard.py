"""The Parquet leaderboard: its schema, atomic append-only writes, reads, and the pure functions
that rank, compare and check results over it. The only module that writes Parquet results.

Layout under a location (a local folder or any URI ``pyarrow.fs.FileSystem.from_uri`` opens:
``file:///...``, ``s3://bucket/prefix``, ...); every byte goes through the pyarrow filesystem::

    {location}/cells/run_date=YYYY-MM-DD/grid=<grid>/<cell_key>-<uuid8>.parquet   one finished cell
    {location}/failures/run_date=YYYY-MM-DD/grid=<grid>/<cell_key>-<uuid8>.parquet one failed cell
    {location}/leaderboard.parquet                                                the last aggregate
    {location}/quarantine/{cells|failures}/...                                   unreadable files, moved aside

Grid names are percent-encoded in folder names (pyarrow decodes them on read); the partition
columns are also stored inside each file, so a file is self-describing.

Writes are atomic: a file is written under a hidden name (``.tmp-<uuid>.parquet``, ignored by
readers) in its final folder and then moved to its final, unique name. On a local disk the move
is a rename; on object stores a PUT is atomic by itself. Concurrent writers (threads or
processes, one machine or many) never collide, because every name holds a fresh uuid. A crash
can leave a hidden temp file behind; readers ignore it. One file per cell is simple and safe
but costs readers about a millisecond per file: :meth:`Leaderboard.compact` merges a partition's
files into one (``benchmarks/leaderboard_query.py`` measures both layouts).

The schema is declared once, in :data:`COLUMNS`; :data:`SCHEMA`, the row validation, the read
casts and :func:`schema_markdown` (for the docs) all derive from it. Lower is better for every
metric in it. Ranking and statistics (:func:`aggregate`, :func:`winners`,
:func:`transfer_horizon`, :func:`regressions`) are pure functions over frames.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import uuid
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from benchmark.errors import TlbenchError

logger = logging.getLogger(__name__)


class Column(NamedTuple):
    """One leaderboard column: ``(name, type, nullable, description)``."""

    name: str
    type: pa.DataType
    nullable: bool
    description: str


TIMESTAMP = pa.timestamp("us", tz="UTC")
METRICS = ("mse", "rmse", "mae", "mape", "smape", "mase")
KINDS = ("model", "baseline")
PARTITION_COLUMNS = ("run_date", "grid")
SIGNIFICANCE = 0.05

_METRIC_DESCRIPTIONS = {
    "mse": "mean squared error on the test segment, original scale",
    "rmse": "root mean squared error",
    "mae": "mean absolute error",
    "mape": "mean absolute percentage error, 0-100 (NaN when the target has zeros)",
    "smape": "symmetric MAPE, M4 convention, 0-200",
    "mase": "mean absolute scaled error (in-sample seasonal naive scale); the default ranking metric",
}

COLUMNS: tuple[Column, ...] = (
    Column("grid_id", pa.string(), False, "hash of the grid spec"),
    Column("grid", pa.string(), False, "grid name (partition column)"),
    Column("run_id", pa.string(), False, "id of the grid run that produced the row"),
    Column("run_date", pa.string(), False, "date of the grid run, YYYY-MM-DD (partition column)"),
    Column("cell_key", pa.string(), False, "identity of the cell (hash of its spec); unique per row"),
    Column("kind", pa.string(), False, "'model' or 'baseline'"),
    Column("target", pa.string(), False, "target label, e.g. 'ett/ETTh1:OT'"),
    Column("target_dataset", pa.string(), False, "source/dataset of the target, e.g. 'ett/ETTh1'"),
    Column("target_column", pa.string(), True, "column of the target inside its dataset"),
    Column("target_size", pa.int64(), False, "number of target history points used for training"),
    Column("architecture", pa.string(), False, "architecture name; 'baseline' for baseline rows"),
    Column("mode", pa.string(), False, "transfer mode ('scratch', ...); the baseline name for baselines"),
    Column("seed", pa.int64(), False, "random seed of the cell"),
    Column("lookback", pa.int64(), False, "input window length"),
    Column("horizon", pa.int64(), False, "forecast horizon"),
    *(Column(m, pa.float64(), False, _METRIC_DESCRIPTIONS[m]) for m in METRICS),
    Column("train_seconds", pa.float64(), False, "wall-clock training time (0 for baselines)"),
    Column("epochs", pa.int64(), False, "epochs actually trained (0 for baselines)"),
    Column("trainable_params", pa.int64(), False, "trainable parameters"),
    Column("frozen_params", pa.int64(), False, "frozen (non-trainable) parameters"),
    Column("mlflow_run_id", pa.string(), True, "MLflow run of the cell"),
    Column("model_uri", pa.string(), True, "URI of the logged model"),
    Column("pretrained_key", pa.string(), True, "key of the pretrained source model, if any"),
    Column("pretrained_version", pa.string(), True, "registry version of the pretrained model"),
    Column("regime", pa.string(), False, "recurrent state regime (default 'stateless')"),
    Column("features", pa.string(), False, "input features (default 'y')"),
    Column("worker_host", pa.string(), False, "host that ran the cell"),
    Column("device", pa.string(), False, "device that ran the cell, e.g. 'cpu', 'gpu:0'"),
    Column("package_version", pa.string(), False, "tlbench version"),
    Column("git_commit", pa.string(), True, "git commit of the code, when known"),
    Column("data_fingerprint", pa.string(), False, "fingerprint of the target data"),
    Column("started_at", TIMESTAMP, False, "when the cell started (UTC)"),
    Column("finished_at", TIMESTAMP, False, "when the cell finished (UTC); the latest wins on duplicates"),
)

# Filled in by `append` when a row leaves them out (and on read for files written before them).
DEFAULTS: dict[str, Any] = {"regime": "stateless", "features": "y"}

FAILURE_COLUMNS: tuple[Column, ...] = (
    Column("grid_id", pa.string(), False, "hash of the grid spec"),
    Column("grid", pa.string(), False, "grid name (partition column)"),
    Column("run_id", pa.string(), False, "id of the grid run"),
    Column("run_date", pa.string(), False, "date of the grid run, YYYY-MM-DD (partition column)"),
    Column("cell_key", pa.string(), False, "identity of the cell"),
    Column("target", pa.string(), False, "target label"),
    Column("target_size", pa.int64(), False, "number of target history points"),
    Column("architecture", pa.string(), False, "architecture name"),
    Column("mode", pa.string(), False, "transfer mode"),
    Column("seed", pa.int64(), False, "random seed"),
    Column("error", pa.string(), False, "what went wrong (exception type and message)"),
    Column("failed_at", TIMESTAMP, False, "when the cell failed (UTC)"),
)


def _schema(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.type, nullable=c.nullable,
                               metadata={"description": c.description}) for c in columns])


SCHEMA: pa.Schema = _schema(COLUMNS)
FAILURE_SCHEMA: pa.Schema = _schema(FAILURE_COLUMNS)

_PARTITIONING = ds.partitioning(pa.schema([(c, pa.string()) for c in PARTITION_COLUMNS]), flavor="hive")
_HIDDEN_PREFIXES = [".", "_"]
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]")


def schema_markdown(columns: Sequence[Column] = COLUMNS) -> str:
    """The columns as a Markdown table, for the docs."""
    lines = ["| column | type | nullable | description |", "|---|---|---|---|"]
    for c in columns:
        default = f" (default {DEFAULTS[c.name]!r})" if c.name in DEFAULTS and columns is COLUMNS else ""
        lines.append(f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {c.description}{default} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# validation


class LeaderboardSchemaError(TlbenchError):
    """Rows that do not match the leaderboard schema; ``problems`` lists every one."""

    def __init__(self, problems: list[str], what: str):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{what}: {len(self.problems)} problem(s), nothing was written:\n{lines}\n"
            "Fix the rows to match benchmark.leaderboard.COLUMNS (names, types, nullability).")


def validate_rows(rows: Sequence[dict], columns: Sequence[Column] = COLUMNS) -> list[dict]:
    """Check every row against ``columns``; return copies with defaults filled and timestamps in UTC.

    Raises :class:`LeaderboardSchemaError` listing every problem of every row (missing required
    columns, unknown columns, wrong types, nulls in required columns, bad values), each prefixed
    with the row's position and ``cell_key``.
    """
    if isinstance(rows, dict):
        raise TlbenchError("append() takes a list of row dicts, got one dict: wrap it in a list")
    by_name = {c.name: c for c in columns}
    defaults = DEFAULTS if columns is COLUMNS else {}
    problems: list[str] = []
    clean_rows: list[dict] = []
    for index, row in enumerate(rows):
        where = f"row {index} (cell_key {row.get('cell_key', '<missing>')!r})" if isinstance(row, dict) \
            else f"row {index}"
        if not isinstance(row, dict):
            problems.append(f"{where}: expected a dict, got {type(row).__name__}")
            continue
        clean = {**{k: v for k, v in defaults.items() if k not in row}, **row}
        unknown = sorted(set(clean) - set(by_name))
        if unknown:
            problems.append(f"{where}: unknown column(s) {', '.join(map(repr, unknown))}")
        missing = [c.name for c in columns if c.name not in clean and not c.nullable]
        if missing:
            problems.append(f"{where}: missing required column(s) {', '.join(map(repr, missing))}")
        for column in columns:
            if column.name not in clean:
                clean[column.name] = None
                continue
            value, problem = _check_value(column, clean[column.name])
            clean[column.name] = value
            if problem:
                problems.append(f"{where}: column {column.name!r} {problem}")
        problems.extend(f"{where}: {p}" for p in _check_semantics(clean, by_name))
        clean_rows.append(clean)
    if problems:
        raise LeaderboardSchemaError(problems, f"{len(rows)} leaderboard row(s) rejected")
    return clean_rows


def _is_null(value: Any) -> bool:
    # pandas 3 uses NaN for a missing str; to_dict() rows carry it, so NaN counts as null outside floats
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _check_value(column: Column, value: Any) -> tuple[Any, str | None]:
    """``(normalised value, problem or None)`` for one cell."""
    kind = column.type
    if pa.types.is_floating(kind):
        if value is None or value is pd.NA:
            return value, None if column.nullable else "is null but required (use float('nan') for an undefined metric)"
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            return value, f"must be float64, got {type(value).__name__} {value!r}"
        return float(value), None
    if _is_null(value):
        return None, None if column.nullable else "is null but required"
    if pa.types.is_string(kind):
        if not isinstance(value, str):
            return value, f"must be str, got {type(value).__name__} {value!r}"
        return str(value), None
    if pa.types.is_integer(kind):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            return value, f"must be int64, got {type(value).__name__} {value!r}"
        if not -2**63 <= int(value) < 2**63:
            return value, f"is out of the int64 range: {value!r}"
        return int(value), None
    if pa.types.is_timestamp(kind):
        if not isinstance(value, dt.datetime):
            return value, (f"must be a timezone-aware datetime, got {type(value).__name__} {value!r} "
                           "(use datetime.now(timezone.utc))")
        if value.tzinfo is None or value.utcoffset() is None:
            return value, f"must be timezone-aware, got naive {value!r} (use datetime.now(timezone.utc))"
        return pd.Timestamp(value).tz_convert("UTC"), None
    raise AssertionError(f"no check for column type {kind}")  # a new type in COLUMNS needs one here


def _check_semantics(row: dict, by_name: dict[str, Column]) -> list[str]:
    problems = []
    run_date = row.get("run_date")
    if isinstance(run_date, str):
        try:
            if not _DATE.match(run_date):
                raise ValueError
            dt.date.fromisoformat(run_date)
        except ValueError:
            problems.append(f"column 'run_date' must be a date YYYY-MM-DD, got {run_date!r}")
    for name in ("grid", "cell_key"):
        if isinstance(row.get(name), str) and not row[name].strip():
            problems.append(f"column {name!r} must not be empty")
    if "kind" in by_name:
        kind, architecture = row.get("kind"), row.get("architecture")
        if isinstance(kind, str) and kind not in KINDS:
            problems.append(f"column 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
        elif isinstance(kind, str) and isinstance(architecture, str) and (kind == "baseline") != (architecture == "baseline"):
            problems.append(f"kind {kind!r} with architecture {architecture!r}: baseline rows, and only "
                            "they, have architecture 'baseline' (and the baseline name as mode)")
    return problems


# --------------------------------------------------------------------------------------------
# the store


class Leaderboard:
    """Append-only Parquet leaderboard at ``location`` (a folder path or a pyarrow filesystem URI).

    ``skipped`` lists ``(path, reason)`` for the files the last read had to leave out (unreadable,
    or not matching the schema); each is also logged as a warning.
    """

    def __init__(self, location: str):
        self.location = str(location).rstrip("/") or "/"
        try:
            if "://" in self.location:
                self.filesystem, self.root = pafs.FileSystem.from_uri(self.location)
            else:
                self.filesystem, self.root = pafs.LocalFileSystem(), Path(self.location).absolute().as_posix()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ValueError) as exc:
            raise TlbenchError(f"Cannot open the leaderboard location {location!r}: {exc}. Give a folder "
                               "path or a URI pyarrow understands (file:///abs/path, s3://bucket/prefix).") from exc
        self.root = self.root.rstrip("/") or "/"
        self.skipped: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return f"Leaderboard({self.location!r})"

    # ---- writing

    def append(self, rows: list[dict]) -> list[str]:
        """Validate every row, then write one file per row, atomically. Returns the files written.

        Nothing is written if any row is invalid (the error lists every problem).
        """
        clean = validate_rows(rows, COLUMNS)
        return [self._write("cells", [row], SCHEMA) for row in clean]

    def append_batch(self, rows: list[dict]) -> str | None:
        """Validate, then write all rows into ONE file (they must share ``run_date`` and ``grid``).

        For back-fills, imports and synthetic benchmarks; a grid run uses :meth:`append`.
        Returns the file written (``None`` for no rows).
        """
        clean = validate_rows(rows, COLUMNS)
        if not clean:
            return None
        partitions = {(r["run_date"], r["grid"]) for r in clean}
        if len(partitions) > 1:
            raise TlbenchError(f"append_batch writes one file, so its rows must share run_date and grid; "
                               f"got {len(partitions)} partitions {sorted(partitions)[:5]}: split the rows "
                               "by (run_date, grid) or use append()")
        return self._write("cells", clean, SCHEMA, name=f"batch-{uuid.uuid4().hex[:8]}")

    def record_failure(self, row: dict) -> str:
        """Validate one failure row against :data:`FAILURE_SCHEMA` and write it like :meth:`append`."""
        (clean,) = validate_rows([row], FAILURE_COLUMNS)
        return self._write("failures", [clean], FAILURE_SCHEMA)

    def write_aggregate(self, df: pd.DataFrame) -> str:
        """Write ``df`` (normally :func:`aggregate`'s output) to ``leaderboard.parquet``, atomically."""
        table = pa.Table.from_pandas(df, preserve_index=False)
        final = f"{self.root}/leaderboard.parquet"
        self._write_atomically(table, self.root, final)
        return self._display(final)

    def read_aggregate(self) -> pd.DataFrame:
        """The aggregate last written by :meth:`write_aggregate` (an error if there is none)."""
        path = f"{self.root}/leaderboard.parquet"
        if self.filesystem.get_file_info(path).type != pafs.FileType.File:
            raise TlbenchError(f"No aggregate at {self._display(path)}: write one with "
                               "Leaderboard.write_aggregate(aggregate(lb.read())) first")
        return pq.read_table(path, filesystem=self.filesystem).to_pandas()

    def _write(self, subdir: str, rows: list[dict], schema: pa.Schema, name: str | None = None) -> str:
        first = rows[0]
        folder = (f"{self.root}/{subdir}/run_date={first['run_date']}"
                  f"/grid={quote(first['grid'], safe='')}")
        stem = name or f"{_safe_name(first['cell_key'])}-{uuid.uuid4().hex[:8]}"
        final = f"{folder}/{stem}.parquet"
        self._write_atomically(pa.Table.from_pylist(rows, schema=schema), folder, final)
        return self._display(final)

    def _write_atomically(self, table: pa.Table, folder: str, final: str) -> None:
        fs = self.filesystem
        fs.create_dir(folder, recursive=True)
        temporary = f"{folder}/.tmp-{uuid.uuid4().hex}.parquet"
        try:
            with fs.open_output_stream(temporary) as out:
                pq.write_table(table, out)
            fs.move(temporary, final)
        except BaseException:
            try:
                fs.delete_file(temporary)
            except OSError:
                pass  # never created, or already moved
            raise

    def _display(self, path: str) -> str:
        """A path under root, spelled the way the location was given (plain path or URI)."""
        return self.location + path[len(self.root):] if self.location != self.root else path

    # ---- reading

    def read(self, target=None, target_size=None, architecture=None, mode=None, run_date=None,
             grid=None, kind=None) -> pd.DataFrame:
        """Finished rows matching every given filter (each a scalar or a list), one row per cell_key.

        Filters are pushed down to pyarrow: ``run_date`` and ``grid`` prune folders, the others
        skip row groups. Columns come back with the :data:`SCHEMA` types (pandas: ``str``,
        ``int64``, ``float64``, ``datetime64[us, UTC]``), in schema order. If a cell_key appears
        more than once (a crash between write and bookkeeping, or a re-run), the row with the
        latest ``finished_at`` is kept and the duplicates are logged.
        """
        filters = dict(target=target, target_size=target_size, architecture=architecture, mode=mode,
                       run_date=run_date, grid=grid, kind=kind)
        expression = _filter_expression(filters)
        table = self._scan("cells", SCHEMA, expression)
        frame = _to_frame(table, SCHEMA)
        for name, value in DEFAULTS.items():
            frame[name] = frame[name].fillna(value)
        return _dedupe(frame, self.location)

    def finished_keys(self) -> set[str]:
        """The cell_key of every finished row (reads that one column only)."""
        table = self._scan("cells", SCHEMA, None, columns=["cell_key"])
        return {key for key in table.column("cell_key").to_pylist() if key is not None}

    def finished_runs(self) -> dict[str, str | None]:
        """``{cell_key: mlflow_run_id}`` of every finished row (the latest row of a key wins);
        what ``Tracker.close_stale_runs`` needs to reconcile MLflow with the ledger."""
        table = self._scan("cells", SCHEMA, None, columns=["cell_key", "mlflow_run_id", "finished_at"])
        frame = table.to_pandas().sort_values("finished_at", kind="stable")
        return {key: (run if isinstance(run, str) else None)
                for key, run in zip(frame["cell_key"], frame["mlflow_run_id"]) if isinstance(key, str)}

    def failures(self) -> pd.DataFrame:
        """Every recorded failure, oldest first."""
        frame = _to_frame(self._scan("failures", FAILURE_SCHEMA, None), FAILURE_SCHEMA)
        return frame.sort_values("failed_at", kind="stable").reset_index(drop=True)

    def compact(self, run_date=None, grid=None) -> dict[str, int]:
        """Merge the cell files of each (run_date, grid) partition into one file (optionally only
        the partitions matching ``run_date``/``grid``, each a scalar or a list).

        Why: pyarrow pays about a millisecond per file, so the one-file-per-cell layout of
        :meth:`append` reads 10,000 cells in seconds; the same rows in a few files take a fraction
        of a second (``benchmarks/leaderboard_query.py`` measures both). Duplicate cell_keys keep
        the latest ``finished_at``; unreadable or foreign files are left where they are and
        reported in ``skipped``. The merged file is written atomically before its sources are
        deleted, so a row is never lost from the table: a reader may briefly see it twice (which
        :meth:`read` dedupes), and a reader that listed the folder before the merged file appeared
        and opens a source after its deletion reports that file in ``skipped`` and misses its
        rows for that one read. Files appended while it runs are untouched. Run it from one place
        at a time, when no grid is reading (e.g. at the end of a grid run, or nightly): two
        compactions of one partition at once leave duplicate rows behind (harmless to
        :meth:`read`, merged by the next compaction).

        Returns ``dict(partitions, files_merged, files_written, rows)``.
        """
        self.skipped = []
        counts = dict(partitions=0, files_merged=0, files_written=0, rows=0)
        fragments, scan_schema, fmt = self._fragments("cells", SCHEMA, _filter_expression(
            dict(run_date=run_date, grid=grid)))
        by_folder: dict[str, list] = {}
        for fragment in fragments:
            by_folder.setdefault(fragment.path.rsplit("/", 1)[0], []).append(fragment)
        for folder, group in sorted(by_folder.items()):
            if len(group) < 2:
                continue
            table = self._read_fragments(group, scan_schema, fmt, None, None)
            done = {f.path for f in group} - {self._undisplay(path) for path, _ in self.skipped}
            if len(done) < 2:
                continue
            try:
                merged = _latest_per_cell(_fill_defaults(table)).cast(SCHEMA)
            except (pa.ArrowException, ValueError) as exc:
                logger.warning("leaderboard: not compacting %s: %s", self._display(folder), exc)
                continue
            self._write_atomically(merged, folder, f"{folder}/compacted-{uuid.uuid4().hex[:8]}.parquet")
            for path in sorted(done):
                try:
                    self.filesystem.delete_file(path)
                except FileNotFoundError:
                    pass  # another compaction got there first
            counts["partitions"] += 1
            counts["files_merged"] += len(done)
            counts["files_written"] += 1
            counts["rows"] += merged.num_rows
        logger.info("leaderboard at %s: compacted %s", self.location, counts)
        return counts

    def quarantine(self) -> list[tuple[str, str]]:
        """Move every unreadable file (not Parquet, truncated, broken data pages) out of ``cells/``
        and ``failures/`` into ``{location}/quarantine/``, keeping its relative path; returns
        ``(old path, new path)`` pairs. Readers already skip such files and a cell whose row was in
        one has no row, so it runs again: quarantining is not needed for correctness, it stops the
        warning on every read and keeps the bytes for a post-mortem. Files that are valid Parquet
        but do not match the schema (perhaps written by another tlbench version) stay where they
        are and stay reported in ``skipped``. Run it from one place, like :meth:`compact`.
        """
        moved: list[tuple[str, str]] = []
        bad: list[tuple[str, str]] = []
        reported: list[tuple[str, str]] = []
        for subdir, schema in (("cells", SCHEMA), ("failures", FAILURE_SCHEMA)):
            self._scan(subdir, schema, None)
            reported += self.skipped
            bad += [(subdir, self._undisplay(path)) for path, reason in self.skipped
                    if reason.startswith("unreadable")]
        for subdir, path in bad:
            relative = path[len(f"{self.root}/{subdir}/"):]
            target = f"{self.root}/quarantine/{subdir}/{relative}"
            if self.filesystem.get_file_info(target).type != pafs.FileType.NotFound:
                target = f"{target}.{uuid.uuid4().hex[:8]}"
            try:
                self.filesystem.create_dir(target.rsplit("/", 1)[0], recursive=True)
                self.filesystem.move(path, target)
            except FileNotFoundError:
                continue  # gone meanwhile (a compaction deleted it)
            logger.warning("leaderboard: moved unreadable %s to %s", self._display(path), self._display(target))
            moved.append((self._display(path), self._display(target)))
        self.skipped = [(path, reason) for path, reason in reported if not reason.startswith("unreadable")]
        return moved

    def _scan(self, subdir: str, schema: pa.Schema, expression: pc.Expression | None,
              columns: list[str] | None = None) -> pa.Table:
        """Read ``subdir`` as a hive-partitioned dataset, skipping (and reporting) bad files."""
        self.skipped = []
        fragments, scan_schema, fmt = self._fragments(subdir, schema, expression)
        return self._read_fragments(fragments, scan_schema, fmt, columns, expression)

    def _fragments(self, subdir: str, schema: pa.Schema, expression: pc.Expression | None):
        """``(fragments that match schema and the partition part of expression, scan schema, format)``.

        Partition pruning happens here: files outside the run_date/grid filters are never opened.
        The others have their footer read and checked; a bad one goes to ``skipped``.
        """
        scan_schema = pa.schema([f.with_nullable(True).remove_metadata() for f in schema])
        fmt = ds.ParquetFileFormat()
        base = f"{self.root}/{subdir}"
        if expression is not None and expression.equals(pc.scalar(False)):
            return [], scan_schema, fmt
        if self.filesystem.get_file_info(base).type != pafs.FileType.Directory:
            return [], scan_schema, fmt
        dataset = ds.dataset(base, filesystem=self.filesystem, format=fmt, partitioning=_PARTITIONING,
                             schema=scan_schema, ignore_prefixes=_HIDDEN_PREFIXES)
        good, checked = [], []  # checked: physical schemas already found compatible (usually one)
        for fragment in dataset.get_fragments(filter=expression):
            reason = _fragment_problem(fragment, schema, checked)
            if reason:
                self._skip(fragment.path, reason)
            else:
                good.append(fragment)
        return good, scan_schema, fmt

    def _read_fragments(self, fragments: list, scan_schema: pa.Schema, fmt: ds.FileFormat,
                        columns: list[str] | None, expression: pc.Expression | None) -> pa.Table:
        options = dict(columns=columns, filter=expression)
        try:
            return ds.FileSystemDataset(fragments, scan_schema, fmt, self.filesystem).to_table(**options)
        except (pa.ArrowException, OSError, ValueError):
            pass  # a file whose footer is fine but whose data is not: find it, one file at a time
        tables = []
        for fragment in fragments:
            try:
                tables.append(fragment.to_table(schema=scan_schema, **options))
            except (pa.ArrowException, OSError, ValueError) as exc:
                self._skip(fragment.path, f"unreadable: {exc}")
        if not tables:
            return scan_schema.empty_table().select(columns or scan_schema.names)
        return pa.concat_tables(tables)

    def _undisplay(self, shown: str) -> str:
        return self.root + shown[len(self.location):] if self.location != self.root else shown

    def _skip(self, path: str, reason: str) -> None:
        shown = self._display(path)
        reason = " ".join(reason.split())  # pyarrow messages span lines
        logger.warning("leaderboard: skipping %s: %s", shown, reason)
        self.skipped.append((shown, reason))


def _safe_name(cell_key: str) -> str:
    # Readers ignore names starting with '.' or '_', so a cell file must never start with one.
    name = _UNSAFE.sub("_", cell_key)[:120].lstrip("._")
    return name or "cell"


def _fill_defaults(table: pa.Table) -> pa.Table:
    for name, value in DEFAULTS.items():
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, pc.fill_null(table.column(name), value))
    return table


def _latest_per_cell(table: pa.Table) -> pa.Table:
    """One row per cell_key, the one with the latest finished_at (NaN metrics stay NaN)."""
    order = pd.DataFrame({"key": table.column("cell_key").to_numpy(zero_copy_only=False),
                          "finished": table.column("finished_at").to_numpy(zero_copy_only=False),
                          "row": np.arange(table.num_rows)})
    keep = order.sort_values("finished", kind="stable").drop_duplicates("key", keep="last")["row"]
    return table.take(pa.array(np.sort(keep.to_numpy())))


def _fragment_problem(fragment: ds.ParquetFileFragment, schema: pa.Schema,
                      checked: list[pa.Schema]) -> str | None:
    """Why a file cannot be read as ``schema`` (None if it can). Opens the footer only.

    A physical schema found compatible is appended to ``checked``, so files written alike are
    compared once."""
    try:
        physical = fragment.physical_schema
    except (pa.ArrowException, OSError, ValueError) as exc:
        return f"unreadable: {exc}"
    if any(physical.equals(known) for known in checked):
        return None
    problems = []
    for field in schema:
        index = physical.get_field_index(field.name)
        if index < 0:
            if not field.nullable and field.name not in DEFAULTS and field.name not in PARTITION_COLUMNS:
                problems.append(f"missing required column {field.name!r}")
            continue
        actual = physical.field(index).type
        if not _compatible(actual, field.type, field.nullable):
            problems.append(f"column {field.name!r} is {actual}, expected {field.type}")
    if problems:
        return "does not match the schema: " + "; ".join(problems)
    checked.append(physical)
    return None


def _compatible(actual: pa.DataType, expected: pa.DataType, nullable: bool) -> bool:
    if pa.types.is_null(actual):
        return nullable
    if pa.types.is_dictionary(actual):
        actual = actual.value_type
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_integer(expected):
        return pa.types.is_integer(actual)
    if pa.types.is_floating(expected):
        return pa.types.is_floating(actual) or pa.types.is_integer(actual)
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(actual) and actual.tz is not None
    return actual == expected


_FILTER_TYPES = {"target": str, "target_size": int, "architecture": str, "mode": str,
                 "run_date": str, "grid": str, "kind": str}


def _filter_expression(filters: dict[str, Any]) -> pc.Expression | None:
    """``AND`` of ``field == value`` / ``field in values`` for every filter that is not None.

    An empty list matches nothing (``pc.scalar(False)``); no filters gives None.
    """
    expression = None
    for name, value in filters.items():
        if value is None:
            continue
        values = [_filter_value(name, v) for v in _as_list(value)]
        if not values:
            return pc.scalar(False)
        if len(values) == 1:
            term = pc.field(name) == values[0]
        else:
            arrow_type = pa.int64() if _FILTER_TYPES[name] is int else pa.string()
            term = pc.field(name).isin(pa.array(values, type=arrow_type))
        expression = term if expression is None else expression & term
    return expression


def _as_list(value: Any) -> list:
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Series, pd.Index)):
        return list(value)
    return [value]


def _filter_value(name: str, value: Any) -> Any:
    if name == "run_date" and isinstance(value, dt.date):
        value = value.isoformat()
    if _FILTER_TYPES[name] is int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise TlbenchError(f"Leaderboard.read filter {name}={value!r} must be an int (or a list of ints)")
        return int(value)
    if not isinstance(value, str):
        raise TlbenchError(f"Leaderboard.read filter {name}={value!r} must be a str (or a list of str)")
    if name == "kind" and value not in KINDS:
        raise TlbenchError(f"Leaderboard.read filter kind={value!r} is unknown. Known: {', '.join(KINDS)}.")
    return value


def _to_frame(table: pa.Table, schema: pa.Schema) -> pd.DataFrame:
    """The table in ``schema``'s column order and types, without stored pandas metadata."""
    names = [n for n in schema.names if n in table.column_names]
    table = table.select(names).replace_schema_metadata(None)
    target = pa.schema([schema.field(n).with_nullable(True).remove_metadata() for n in names])
    return table.cast(target).to_pandas()


def _dedupe(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    frame = frame.sort_values(["finished_at", "cell_key"], kind="stable")
    duplicated = frame["cell_key"].duplicated(keep="last")
    if duplicated.any():
        keys = frame.loc[duplicated, "cell_key"].unique()
        logger.warning("leaderboard at %s: %d duplicate row(s) for %d cell_key(s) (e.g. %s); kept the "
                       "latest finished_at of each", where, int(duplicated.sum()), len(keys),
                       ", ".join(map(repr, keys[:3])))
        frame = frame.loc[~duplicated]
    return frame.sort_values(["run_date", "grid", "target", "target_size", "architecture", "mode", "seed"],
                             kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# ranking and statistics (pure functions over frames)

GROUP = ("target", "target_size", "architecture", "mode")
#: Cell columns that make a model a different variant of its architecture when not at these
#: defaults; :func:`fold_variants` folds them into ``architecture`` before anything is grouped.
VARIANT_DEFAULTS = (("regime", "stateless"), ("features", "y"))
VARIANT_SEPARATOR = " · "
_SCRATCH = "scratch"
_BASELINE = "baseline"
_SEASONAL_NAIVE = "seasonal_naive"


def fold_variants(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with a non-default regime or feature set folded into ``architecture``: ``lstm``
    stays ``lstm``, a stateful one with an hour-of-day input becomes ``lstm · stateful ·
    y+hour_of_day``. So every grouping (:func:`aggregate`, the winners, the transfer horizon, the
    nightly comparison, the report) keeps the variants apart, and each is compared with the scratch
    mode of the same variant. Baselines and rows without those columns are left as they are;
    folding twice changes nothing."""
    present = [(column, default) for column, default in VARIANT_DEFAULTS if column in rows.columns]
    if not present or rows.empty:
        return rows
    models = (rows["architecture"] != _BASELINE).to_numpy()
    labels = rows["architecture"].astype(str).to_numpy(dtype=object).copy()
    for column, default in present:
        values = rows[column].astype(object).to_numpy()
        for i in np.flatnonzero(models & pd.notna(values) & (values != default)):
            if str(values[i]) not in labels[i].split(VARIANT_SEPARATOR)[1:]:
                labels[i] = f"{labels[i]}{VARIANT_SEPARATOR}{values[i]}"
    return rows.assign(architecture=pd.Series(labels, index=rows.index, dtype="str"))


def aggregate_columns(metric: str = "mase") -> list[str]:
    """The columns of :func:`aggregate`'s result, in order."""
    per_metric = [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
    return [*GROUP, "metric", "n_seeds", *per_metric, f"{metric}_ci95", "rank", "improvement_vs_scratch_pct",
            "p_value_vs_scratch", "test_vs_scratch", "skill_vs_seasonal_naive", "train_seconds_mean"]


def aggregate(df: pd.DataFrame, metric: str = "mase") -> pd.DataFrame:
    """One row per (target, target_size, architecture, mode), statistics over seeds; a
    non-default regime or feature set counts as an architecture of its own (:func:`fold_variants`).

    For every metric ``m``: ``m_mean`` and ``m_std`` (ddof=1; NaN with one seed); for ``metric``
    also ``{metric}_ci95``, the half-width of the 95% t-interval of the mean. ``metric`` names
    the ranking metric; ``n_seeds`` the distinct seeds. ``rank``: 1 = lowest mean ``metric``
    within (target, target_size), baselines included (ties share the best rank).
    ``improvement_vs_scratch_pct = 100 * (scratch_mean - mean) / scratch_mean`` against the
    ``scratch`` mode of the same (target, target_size, architecture); ``p_value_vs_scratch`` and
    ``test_vs_scratch`` from :func:`benchmark.stats.paired_test` over the seeds both have (both
    NaN/empty for scratch itself and baselines). ``skill_vs_seasonal_naive = 1 - mean /
    seasonal_naive_mean`` for the same (target, target_size). ``train_seconds_mean``.

    Rows of the same group and seed (e.g. two runs of one grid) are averaged first and logged:
    aggregate one run, or rows you mean to pool. Lower is better for every metric.
    """
    from benchmark import stats  # scipy costs ~1 s to import; writers never need it

    if metric not in METRICS:
        raise TlbenchError(f"Unknown metric {metric!r}. Known: {', '.join(METRICS)}.")
    needed = [*GROUP, "seed", *METRICS, "train_seconds"]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise TlbenchError(f"aggregate() needs leaderboard rows; missing column(s) {', '.join(missing)} "
                           "(pass the frame from Leaderboard.read())")
    columns = aggregate_columns(metric)
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=_AGG_DTYPES.get(c, "float64")) for c in columns})
    df = fold_variants(df)
    group = list(GROUP)
    _warn_mixed_settings(df, group)
    values = [*METRICS, "train_seconds"]
    per_seed = df.groupby([*group, "seed"], sort=True)[values].mean()  # [groups x seeds, values]
    if len(per_seed) < len(df):
        logger.warning("aggregate: %d row(s) share (group, seed) with another row and were averaged; "
                       "filter to one run to avoid this", len(df) - len(per_seed))
    by_group = per_seed.groupby(level=group, sort=True)
    agg = pd.DataFrame({"n_seeds": by_group.size()})
    agg.insert(0, "metric", metric)
    for m in METRICS:
        agg[f"{m}_mean"] = by_group[m].mean()
        agg[f"{m}_std"] = by_group[m].std(ddof=1)
    agg[f"{metric}_ci95"] = stats.ci_half_width(agg[f"{metric}_std"].to_numpy(),
                                                by_group[metric].count().to_numpy())
    agg["train_seconds_mean"] = by_group["train_seconds"].mean()
    agg = agg.reset_index()

    mean = f"{metric}_mean"
    agg["rank"] = agg.groupby(["target", "target_size"])[mean].rank(method="min").astype("Int64")
    is_model = agg["architecture"] != _BASELINE
    scratch = agg.loc[is_model & (agg["mode"] == _SCRATCH)].set_index(["target", "target_size", "architecture"])[mean]
    scratch_mean = pd.Series(agg.set_index(["target", "target_size", "architecture"]).index.map(scratch),
                             index=agg.index, dtype="float64")
    compared = is_model & (agg["mode"] != _SCRATCH)
    with np.errstate(divide="ignore", invalid="ignore"):
        improvement = 100 * (scratch_mean - agg[mean]) / scratch_mean.where(scratch_mean != 0)
    agg["improvement_vs_scratch_pct"] = improvement.where(compared)

    tests = [_test_against_scratch(per_seed[metric], row) if comp else None
             for row, comp in zip(agg[group].itertuples(index=False), compared)]
    agg["p_value_vs_scratch"] = [t["p_value"] if t else math.nan for t in tests]
    agg["test_vs_scratch"] = pd.Series([t["method"] if t else None for t in tests], dtype="str")

    naive = agg.loc[~is_model & (agg["mode"] == _SEASONAL_NAIVE)].set_index(["target", "target_size"])[mean]
    naive_mean = pd.Series(agg.set_index(["target", "target_size"]).index.map(naive), index=agg.index,
                           dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        agg["skill_vs_seasonal_naive"] = 1 - agg[mean] / naive_mean.where(naive_mean != 0)
    agg = agg.sort_values(["target", "target_size", "rank", "architecture", "mode"], kind="stable")
    return agg[columns].reset_index(drop=True)


_AGG_DTYPES = {"target": "str", "architecture": "str", "mode": "str", "metric": "str", "test_vs_scratch": "str",
               "target_size": "int64", "n_seeds": "int64", "rank": "Int64"}


def _test_against_scratch(per_seed: pd.Series, row: tuple) -> dict:
    """Paired test of one (target, size, architecture, mode) against its scratch, by seed."""
    from benchmark import stats

    target, size, architecture, mode = row
    try:
        ours = per_seed.loc[(target, size, architecture, mode)]
        scratch = per_seed.loc[(target, size, architecture, _SCRATCH)]
    except KeyError:
        return stats.paired_test([], [])
    paired = pd.concat([ours, scratch], axis=1, join="inner").to_numpy()  # [seeds, 2]
    return stats.paired_test(paired[:, 0], paired[:, 1])


def _warn_mixed_settings(df: pd.DataFrame, group: list[str]) -> None:
    settings = [c for c in ("lookback", "horizon") if c in df.columns]
    if settings and (df.groupby(group)[settings].nunique() > 1).any().any():
        logger.warning("aggregate: some groups mix several %s values; filter the rows to one setting "
                       "before comparing", "/".join(settings))


def _ranking_metric(agg: pd.DataFrame, metric: str | None) -> str:
    if metric is None:
        metric = str(agg["metric"].iloc[0]) if "metric" in agg.columns and len(agg) else "mase"
    if f"{metric}_mean" not in agg.columns:
        raise TlbenchError(f"The aggregate has no column {metric}_mean: pass the output of aggregate()")
    return metric


def winners(agg: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Per (target, target_size, architecture): the mode with the lowest mean ``metric`` (default:
    the aggregate's ranking metric), its improvement over scratch and whether it is significant
    (paired p < 0.05 and an improvement). If scratch wins, improvement is NaN, not significant.
    """
    metric = _ranking_metric(agg, metric)
    mean = f"{metric}_mean"
    keys = ["target", "target_size", "architecture"]
    columns = [*keys, "best_mode", "metric", mean, "scratch_mean", "improvement_vs_scratch_pct",
               "p_value_vs_scratch", "significant", "n_seeds"]
    models = agg.loc[agg["architecture"] != _BASELINE]
    if models.empty:
        return pd.DataFrame({c: pd.Series(dtype="bool" if c == "significant" else "float64") for c in columns})
    scratch = models.loc[models["mode"] == _SCRATCH].set_index(keys)[mean].rename("scratch_mean")
    best = (models.sort_values([*keys, mean], na_position="last", kind="stable")
            .drop_duplicates(keys, keep="first").rename(columns={"mode": "best_mode"}))
    best = best.join(scratch, on=keys)
    best["metric"] = metric
    best["significant"] = ((best["p_value_vs_scratch"] < SIGNIFICANCE)
                           & (best["improvement_vs_scratch_pct"] > 0)).fillna(False).astype(bool)
    return best[columns].reset_index(drop=True)


def transfer_horizon(agg: pd.DataFrame, alpha: float = SIGNIFICANCE) -> pd.DataFrame:
    """Per (target, architecture, mode != scratch): up to which target size transfer still helps.

    A mode *helps* at a size when its mean metric beats scratch (improvement > 0) and, where a
    paired test was possible (at least 2 seeds shared with scratch), its p-value is below
    ``alpha``; with fewer seeds the mean alone decides. ``rule`` says which applied.
    ``largest_helping_size``: the largest size where it helps (None if nowhere);
    ``smallest_non_helping_size``: the smallest size where it does not (None if it always helps).
    ``sizes`` and ``helping_sizes`` list the sizes compared, ascending.
    """
    columns = ["target", "architecture", "mode", "largest_helping_size", "smallest_non_helping_size",
               "helping_sizes", "sizes", "rule"]
    compared = agg.loc[(agg["architecture"] != _BASELINE) & (agg["mode"] != _SCRATCH)
                       & agg["improvement_vs_scratch_pct"].notna()]
    rows = []
    for (target, architecture, mode), part in compared.groupby(["target", "architecture", "mode"], sort=True):
        part = part.sort_values("target_size")
        tested = part["p_value_vs_scratch"].notna()
        better = part["improvement_vs_scratch_pct"] > 0
        helps = better & (~tested | (part["p_value_vs_scratch"] < alpha))
        sizes = [int(s) for s in part["target_size"]]
        helping = [s for s, h in zip(sizes, helps) if h]
        not_helping = [s for s, h in zip(sizes, helps) if not h]
        if tested.all():
            rule = f"mean better than scratch and paired p < {alpha:g}"
        elif not tested.any():
            rule = "mean better than scratch (fewer than 2 paired seeds: no test)"
        else:
            rule = (f"mean better than scratch and paired p < {alpha:g}; mean only at sizes with fewer "
                    f"than 2 paired seeds ({', '.join(str(s) for s, t in zip(sizes, tested) if not t)})")
        rows.append(dict(target=target, architecture=architecture, mode=mode,
                         largest_helping_size=max(helping) if helping else None,
                         smallest_non_helping_size=min(not_helping) if not_helping else None,
                         helping_sizes=tuple(helping), sizes=tuple(sizes), rule=rule))
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    # object columns keep None as None (a numeric column would turn it into NaN)
    return pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=object) for c in columns})


def regressions(current_agg: pd.DataFrame, previous_agg: pd.DataFrame, metric: str = "mase",
                threshold_pct: float = 5.0) -> pd.DataFrame:
    """Groups whose mean ``metric`` got worse by more than ``threshold_pct`` AND outside seed noise.

    Outside noise: the increase exceeds the sum of both runs' 95% CI half-widths (taken from
    ``{metric}_ci95`` or computed from ``{metric}_std`` and ``n_seeds``). When either run has a
    single seed there is no interval and the threshold alone decides (the reason says so). Only
    groups present in both aggregates are compared. Columns: the group, ``previous``, ``current``,
    ``change_pct``, both half-widths and seed counts, and a ``reason`` string.
    """
    from benchmark import stats

    keys = list(GROUP)
    columns = [*keys, "metric", "previous", "current", "change_pct", "previous_ci95", "current_ci95",
               "previous_n_seeds", "current_n_seeds", "reason"]

    def side(agg: pd.DataFrame, name: str) -> pd.DataFrame:
        if f"{metric}_mean" not in agg.columns:
            raise TlbenchError(f"regressions(): the {name} aggregate has no {metric}_mean column; pass "
                               "aggregate() outputs")
        if f"{metric}_ci95" in agg.columns:
            half = agg[f"{metric}_ci95"].to_numpy(dtype=float)
        else:
            half = stats.ci_half_width(agg[f"{metric}_std"].to_numpy(dtype=float),
                                       agg["n_seeds"].to_numpy(dtype=float))
        return pd.DataFrame({**{k: agg[k].to_numpy() for k in keys}, name: agg[f"{metric}_mean"].to_numpy(),
                             f"{name}_ci95": half, f"{name}_n_seeds": agg["n_seeds"].to_numpy()})

    both = side(previous_agg, "previous").merge(side(current_agg, "current"), on=keys, how="inner")
    with np.errstate(divide="ignore", invalid="ignore"):
        both["change_pct"] = 100 * (both["current"] - both["previous"]) / both["previous"]
    increase = both["current"] - both["previous"]
    noise = both["previous_ci95"] + both["current_ci95"]
    has_ci = noise.notna()
    over_threshold = both["change_pct"] > threshold_pct
    flagged = over_threshold & (~has_ci | (increase > noise))
    both = both.loc[flagged].copy()
    both["metric"] = metric
    both["reason"] = [
        (f"{metric} {r.previous:.4g} -> {r.current:.4g} (+{r.change_pct:.1f}%), above the {threshold_pct:g}% "
         + (f"threshold and outside seed noise (increase {r.current - r.previous:.4g} > combined 95% CI "
            f"half-widths {r.previous_ci95 + r.current_ci95:.4g})" if not math.isnan(r.previous_ci95 + r.current_ci95)
            else "threshold (a single seed on one side: no interval, threshold only)"))
        for r in both.itertuples(index=False)]
    return both[columns].sort_values("change_pct", ascending=False, kind="stable").reset_index(drop=True)


def format_table(df: pd.DataFrame, columns: Sequence[str] | None = None, max_rows: int = 50) -> str:
    """A fixed-width text table: numbers right-aligned with 4 significant digits, text left-aligned,
    missing values as ``-``; at most ``max_rows`` rows, then a line saying how many were left out."""
    columns = list(columns) if columns is not None else list(df.columns)
    unknown = [c for c in columns if c not in df.columns]
    if unknown:
        raise TlbenchError(f"format_table: unknown column(s) {', '.join(unknown)}. Known: {', '.join(df.columns)}.")
    if df.empty:
        return "(no rows)"
    shown = df[columns].head(max_rows)
    cells = [[_format_cell(v) for v in shown[c]] for c in columns]
    numeric = [pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c]) for c in columns]
    widths = [max(len(c), *(len(v) for v in col)) for c, col in zip(columns, cells)]

    def line(values: Iterable[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(columns), line("-" * w for w in widths)]
    out += [line(row) for row in zip(*cells)]
    if len(df) > max_rows:
        out.append(f"... {len(df) - max_rows} more row(s)")
    return "\n".join(out)


def _format_cell(value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return "-"
    if isinstance(value, (float, np.floating)):
        return "-" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)
