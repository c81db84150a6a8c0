"""The Parquet leaderboard store: atomic append-only writes, reads, compaction and quarantine.
The only module that writes Parquet (results, aggregates, and the frames logged as artifacts).

Layout under a location (a local folder or any URI ``pyarrow.fs.FileSystem.from_uri`` opens:
``file:///...``, ``s3://bucket/prefix``, ...); every byte goes through the pyarrow filesystem::

    {location}/cells/run_date=YYYY-MM-DD/grid=<grid>/<cell_key>-<uuid8>.parquet   one finished cell
    {location}/failures/run_date=YYYY-MM-DD/grid=<grid>/<cell_key>-<uuid8>.parquet one failed cell
    {location}/leaderboard.parquet                                                the last aggregate
    {location}/quarantine/{cells|failures}/...                                   unreadable files, moved aside
    {location}/archive/cells/...                  the files a compaction merged, and its manifest

Grid names are percent-encoded in folder names (pyarrow decodes them on read); the partition
columns are also stored inside each file, so a file is self-describing.

Writes are atomic: a file is written under a hidden name (``.tmp-<uuid>.parquet``, ignored by
readers) in its final folder and then moved to its final, unique name. On a local disk the move
is a rename; on object stores a PUT is atomic by itself. Concurrent writers (threads or
processes, one machine or many) never collide, because every name holds a fresh uuid. A crash
can leave a hidden temp file behind; readers ignore it. One file per cell is simple and safe
but costs readers about a millisecond per file: :meth:`Leaderboard.compact` merges a partition's
files into one (``benchmarks/leaderboard_query.py`` measures both layouts).

The schema and the row validation are in :mod:`benchmark.schema` (re-exported here); ranking and
statistics over the rows are pure functions in :mod:`benchmark.ranking`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from benchmark.errors import TlbenchError
from benchmark.schema import (COLUMNS, DEFAULTS, FAILURE_COLUMNS, FAILURE_SCHEMA, KINDS,  # noqa: F401
                              PARTITION_COLUMNS, SCHEMA, Column, LeaderboardSchemaError,
                              schema_markdown, validate_rows)

logger = logging.getLogger(__name__)


_PARTITIONING = ds.partitioning(pa.schema([(c, pa.string()) for c in PARTITION_COLUMNS]), flavor="hive")
_HIDDEN_PREFIXES = [".", "_"]
#: How many more times a read lists its folder when files it listed were gone (a compaction ran).
RELISTS = 3
_ERRORS = "errors"  # per-origin forecast errors, one file per cell (Leaderboard.write_errors)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]")


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
        self._vanished = False  # a file listed by the current read was gone when it was read

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

    def write_errors(self, row: dict, errors: np.ndarray) -> str:
        """A cell's (or baseline's) per-origin forecast errors on its test segment, ``errors``
        ``[n_origins, horizon]`` (``y - y_pred``, original scale), beside the rows under
        ``errors/run_date=/grid=/<cell_key>.parquet``: what the Diebold-Mariano comparisons read
        (:func:`benchmark.verdicts.forecast_comparisons`). ``row`` gives run_date, grid, cell_key."""
        errors = np.asarray(errors, dtype=np.float64)
        errors = errors.reshape(len(errors), -1)  # [n] -> [n, 1]
        table = pa.table({"origin": pa.array(np.arange(len(errors)), pa.int64()),
                          "cell_key": pa.array([row["cell_key"]] * len(errors), pa.string()),
                          **{f"e{step}": pa.array(errors[:, step]) for step in range(errors.shape[1])}})
        folder = (f"{self.root}/{_ERRORS}/run_date={row['run_date']}/grid={quote(row['grid'], safe='')}")
        final = f"{folder}/{_safe_name(row['cell_key'])}.parquet"
        self._write_atomically(table, folder, final)
        return self._display(final)

    def read_errors(self, cell_keys) -> dict[str, np.ndarray]:
        """``{cell_key: errors [n_origins, horizon]}`` of those of ``cell_keys`` that have them
        (any run date or grid); unreadable files are skipped and logged."""
        wanted = {_safe_name(key): key for key in cell_keys}
        out: dict[str, np.ndarray] = {}
        selector = pafs.FileSelector(f"{self.root}/{_ERRORS}", recursive=True, allow_not_found=True)
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

    def _write_atomically(self, table: pa.Table, folder: str, final: str,
                          check: Callable[[str], str | None] | None = None) -> str | None:
        """Write ``table`` under a hidden name in ``folder``, run ``check(temporary path)`` on it
        (it raises to refuse the file), then give it its ``final`` name; nothing is left on
        failure. Returns what ``check`` returned."""
        fs = self.filesystem
        fs.create_dir(folder, recursive=True)
        temporary = f"{folder}/.tmp-{uuid.uuid4().hex}.parquet"
        try:
            with fs.open_output_stream(temporary) as out:
                pq.write_table(table, out)
            result = check(temporary) if check is not None else None
            fs.move(temporary, final)
            return result
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
        reported in ``skipped``.

        One file must never hold the only copy of a partition's rows: the merged file is written
        under a hidden name, read back and compared with what was merged (row count and content)
        before it gets its final name, and only then are its sources moved, not deleted, to
        ``{location}/archive/cells/<same partition>/`` (outside what readers scan), beside a
        manifest ``<merged file>.json`` (rows, sha256 of its bytes, sources). A damaged merged
        file later costs no row: :func:`benchmark.repair.repair` (``tlbench repair``, and every
        grid run that finds an unreadable file) puts the archived copies back. A reader may
        briefly see a row twice (which :meth:`read` dedupes). Run it from one place at a time,
        when no grid is reading (at the end of a grid run, or nightly).

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
                final = f"{folder}/compacted-{uuid.uuid4().hex[:8]}.parquet"
                digest = self._write_verified(merged, folder, final)
            except (pa.ArrowException, ValueError, OSError) as exc:
                logger.warning("leaderboard: not compacting %s (its files stay as they are): %s",
                               self._display(folder), exc)
                continue
            self._archive(final, sorted(done), merged.num_rows, digest)
            counts["partitions"] += 1
            counts["files_merged"] += len(done)
            counts["files_written"] += 1
            counts["rows"] += merged.num_rows
        self._report_skipped()
        logger.info("leaderboard at %s: compacted %s", self.location, counts)
        return counts

    def _write_verified(self, table: pa.Table, folder: str, final: str) -> str:
        """Write ``table`` as :meth:`_write_atomically` does, after reading it back and comparing
        row count and content; returns the sha256 of its bytes. Raises (nothing left) on a mismatch."""
        import hashlib

        def verify(temporary: str) -> str:
            with self.filesystem.open_input_file(temporary) as handle:
                data = handle.read()
            back = pq.read_table(pa.BufferReader(data)).cast(table.schema)
            # pandas' equals: NaN metrics in the same places count as equal (Arrow's do not)
            if back.num_rows != table.num_rows or not back.to_pandas().equals(table.to_pandas()):
                raise ValueError(f"the merged file read back {back.num_rows} rows that differ from the "
                                 f"{table.num_rows} merged")
            return hashlib.sha256(data).hexdigest()

        return self._write_atomically(table, folder, final, check=verify)

    def archive_dir(self, subdir: str = "cells") -> str:
        """Where compaction keeps the files it merged (:func:`benchmark.repair.repair` reads it)."""
        return f"{self.root}/archive/{subdir}"

    def _archive(self, merged: str, sources: list[str], rows: int, digest: str) -> None:
        """Move the merged ``sources`` under :meth:`archive_dir`, with a manifest of ``merged``."""
        import json

        relative = merged[len(f"{self.root}/cells/"):]
        manifest = {"file": relative, "rows": rows, "sha256": digest,
                    "sources": [path.rsplit("/", 1)[1] for path in sources]}
        folder = f"{self.archive_dir()}/{relative.rsplit('/', 1)[0]}"
        self.filesystem.create_dir(folder, recursive=True)
        with self.filesystem.open_output_stream(f"{folder}/{relative.rsplit('/', 1)[1]}.json") as out:
            out.write(json.dumps(manifest, indent=1).encode())
        for path in sources:
            try:
                self.filesystem.move(path, f"{folder}/{path.rsplit('/', 1)[1]}")
            except FileNotFoundError:
                pass  # another compaction got there first

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
        """Read ``subdir`` as a hive-partitioned dataset, skipping (and reporting) bad files.

        A file that is gone by the time it is read was moved to the archive by a compaction (or
        :meth:`quarantine`) running meanwhile, its rows already in the merged file: the folder is
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
        for shown, reason in self.skipped:
            logger.warning("leaderboard: skipping %s: %s", shown, reason)


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


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` as one plain Parquet file at a local ``path`` (a file to log as an artifact, e.g.
    a cell's predictions; not a leaderboard result). Returns ``path``."""
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), str(path))
    return path
