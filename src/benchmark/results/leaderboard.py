"""The Parquet leaderboard store: atomic append-only writes, compaction and quarantine.
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

Reading (filtered scans that skip bad files, one row per cell) is
:class:`benchmark.results.reader.LeaderboardReader`, which :class:`Leaderboard` extends; the schema
and the row validation are in :mod:`benchmark.results.schema`; ranking and statistics over the
rows are pure functions in :mod:`benchmark.results.ranking`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from benchmark.results.reader import ERRORS_DIR, LeaderboardReader, filter_expression, safe_name
from benchmark.results.schema import COLUMNS, DEFAULTS, FAILURE_COLUMNS, FAILURE_SCHEMA, SCHEMA, validate_rows
from benchmark.spec.errors import TlbenchError

logger = logging.getLogger(__name__)


class Leaderboard(LeaderboardReader):
    """Append-only Parquet leaderboard at ``location`` (a folder path or a pyarrow filesystem URI):
    everything :class:`LeaderboardReader` reads, plus the writes, compaction and quarantine.
    """

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
        (:func:`benchmark.results.verdicts.forecast_comparisons`). ``row`` gives run_date, grid, cell_key."""
        errors = np.asarray(errors, dtype=np.float64)
        errors = errors.reshape(len(errors), -1)  # [n] -> [n, 1]
        table = pa.table({"origin": pa.array(np.arange(len(errors)), pa.int64()),
                          "cell_key": pa.array([row["cell_key"]] * len(errors), pa.string()),
                          **{f"e{step}": pa.array(errors[:, step]) for step in range(errors.shape[1])}})
        folder = (f"{self.root}/{ERRORS_DIR}/run_date={row['run_date']}/grid={quote(row['grid'], safe='')}")
        final = f"{folder}/{safe_name(row['cell_key'])}.parquet"
        self._write_atomically(table, folder, final)
        return self._display(final)

    def _write(self, subdir: str, rows: list[dict], schema: pa.Schema, name: str | None = None) -> str:
        first = rows[0]
        folder = (f"{self.root}/{subdir}/run_date={first['run_date']}"
                  f"/grid={quote(first['grid'], safe='')}")
        stem = name or f"{safe_name(first['cell_key'])}-{uuid.uuid4().hex[:8]}"
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
        file later costs no row: :func:`benchmark.run.repair.repair` (``tlbench repair``, and every
        grid run that finds an unreadable file) puts the archived copies back. A reader may
        briefly see a row twice (which :meth:`read` dedupes). Run it from one place at a time,
        when no grid is reading (at the end of a grid run, or nightly).

        Returns ``dict(partitions, files_merged, files_written, rows)``.
        """
        self.skipped = []
        counts = dict(partitions=0, files_merged=0, files_written=0, rows=0)
        fragments, scan_schema, fmt = self._fragments("cells", SCHEMA, filter_expression(
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
        """Where compaction keeps the files it merged (:func:`benchmark.run.repair.repair` reads it)."""
        return f"{self.root}/archive/{subdir}"

    def _archive(self, merged: str, sources: list[str], rows: int, digest: str) -> None:
        """Move the merged ``sources`` under :meth:`archive_dir`, with a manifest of ``merged``."""
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


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` as one plain Parquet file at a local ``path`` (a file to log as an artifact, e.g.
    a cell's predictions; not a leaderboard result). Returns ``path``."""
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), str(path))
    return path
