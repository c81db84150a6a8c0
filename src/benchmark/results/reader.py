"""Reading the Parquet leaderboard: filtered scans that skip (and report) bad files, one row per cell.

:class:`LeaderboardReader` opens a location (a local folder or any URI
``pyarrow.fs.FileSystem.from_uri`` opens) and reads what :class:`benchmark.results.leaderboard.Leaderboard`
(the store, a reader that also writes) laid out there: the finished cells, the failures, the
per-origin errors and the aggregate. Filters become pyarrow expressions (``run_date`` and
``grid`` prune partition folders); every file's footer is checked against the schema before it
is read, so an unreadable file or one of another schema is left out and reported in ``skipped``
instead of failing the read; a cell_key seen twice keeps its latest row.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from benchmark.results.schema import DEFAULTS, FAILURE_SCHEMA, KINDS, PARTITION_COLUMNS, SCHEMA
from benchmark.spec.errors import TlbenchError

logger = logging.getLogger(__name__)


_PARTITIONING = ds.partitioning(pa.schema([(c, pa.string()) for c in PARTITION_COLUMNS]), flavor="hive")
_HIDDEN_PREFIXES = [".", "_"]
#: How many more times a read lists its folder when files it listed were gone (a compaction ran).
RELISTS = 3
ERRORS_DIR = "errors"  # per-origin forecast errors, one file per cell (Leaderboard.write_errors)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]")


class LeaderboardReader:
    """Reads the Parquet leaderboard at ``location`` (a folder path or a pyarrow filesystem URI).

    ``skipped`` lists ``(path, reason)`` for the files the last read had to leave out (unreadable,
    or not matching the schema); each is also logged as a warning, once per reader.
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
        self._warned: set[tuple[str, str]] = set()  # (file, reason) already logged by this reader
        self._vanished = False  # a file listed by the current read was gone when it was read

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

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
        expression = filter_expression(filters)
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

    def read_errors(self, cell_keys) -> dict[str, np.ndarray]:
        """``{cell_key: errors [n_origins, horizon]}`` of those of ``cell_keys`` that have them
        (any run date or grid); unreadable files are skipped and logged."""
        wanted = {safe_name(key): key for key in cell_keys}
        out: dict[str, np.ndarray] = {}
        selector = pafs.FileSelector(f"{self.root}/{ERRORS_DIR}", recursive=True, allow_not_found=True)
        for info in self.filesystem.get_file_info(selector):
            stem = info.base_name.removesuffix(".parquet")
            if info.type != pafs.FileType.File or stem not in wanted:
                continue
            try:
                with self.filesystem.open_input_file(info.path) as handle:
                    table = pq.read_table(handle)
            except (OSError, pa.ArrowInvalid) as exc:
                self._skip(info.path, f"unreadable: {exc}")
                continue
            steps = sorted((c for c in table.column_names if c.startswith("e")), key=lambda c: int(c[1:]))
            out[wanted[stem]] = np.column_stack([table[c].to_numpy() for c in steps])
        return out

    def read_aggregate(self) -> pd.DataFrame:
        """The aggregate last written by :meth:`Leaderboard.write_aggregate` (an error if there is none)."""
        path = f"{self.root}/leaderboard.parquet"
        if self.filesystem.get_file_info(path).type != pafs.FileType.File:
            raise TlbenchError(f"No aggregate at {self._display(path)}: write one with "
                               "Leaderboard.write_aggregate(aggregate(lb.read())) first")
        return pq.read_table(path, filesystem=self.filesystem).to_pandas()

    def _scan(self, subdir: str, schema: pa.Schema, expression: pc.Expression | None,
              columns: list[str] | None = None) -> pa.Table:
        """Read ``subdir`` as a hive-partitioned dataset, skipping (and reporting) bad files.

        A file that is gone by the time it is read was moved to the archive by a compaction (or
        :meth:`Leaderboard.quarantine`) running meanwhile, its rows already in the merged file: the folder is
        listed and read again, up to :data:`RELISTS` times, instead of reporting it, so a reader
        beside a compaction (the progress line at a grid's end) sees every row and warns of nothing.
        """
        for attempt in range(RELISTS + 1):
            self.skipped, self._vanished = [], False
            fragments, scan_schema, fmt = self._fragments(subdir, schema, expression)
            table = self._read_fragments(fragments, scan_schema, fmt, columns, expression)
            if not self._vanished:
                break
        self._report_skipped()
        return table

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
        """Note a file the read leaves out (reported by :meth:`_report_skipped`); one that no
        longer exists marks the read for another listing (:meth:`_scan`)."""
        if self.filesystem.get_file_info(path).type == pafs.FileType.NotFound:
            self._vanished = True
        reason = " ".join(reason.split())  # pyarrow messages span lines
        self.skipped.append((self._display(path), reason))

    def _report_skipped(self) -> None:
        """Log each skipped file once per reader (``skipped`` still lists it on every read), so a
        reader polled every second logs a damaged file once, not every second."""
        for shown, reason in self.skipped:
            if (shown, reason) not in self._warned:
                self._warned.add((shown, reason))
                logger.warning("leaderboard: skipping %s: %s", shown, reason)

    def _display(self, path: str) -> str:
        """A path under root, spelled the way the location was given (plain path or URI)."""
        return self.location + path[len(self.root):] if self.location != self.root else path


def safe_name(cell_key: str) -> str:
    """The stem of a cell's file names (its rows, its errors): ``cell_key`` with every character
    outside ``[A-Za-z0-9_.=+-]`` replaced, cut to 120 characters."""
    # Readers ignore names starting with '.' or '_', so a cell file must never start with one.
    name = _UNSAFE.sub("_", cell_key)[:120].lstrip("._")
    return name or "cell"


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


def filter_expression(filters: dict[str, Any]) -> pc.Expression | None:
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

