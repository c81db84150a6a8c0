"""Repairing the leaderboard ledger after a damaged file: :func:`repair` moves unreadable files
(and, when asked, compacted files whose bytes no longer match their manifest) to quarantine, then
puts back the archived copies of every row that is now missing, and says what it recovered, from
where, and what it could not recover (those cells run again on the next run of their grid): file
by file in the log, and in one line (:meth:`RepairReport.summary`) where a person reads it.
:func:`repair_preview` says, without moving anything, what a repair would restore (the start line
of ``tlbench run`` counts it).

Redundancy comes from :meth:`benchmark.results.leaderboard.Leaderboard.compact`: it moves the files it
merged to ``{location}/archive/cells/`` instead of deleting them, so a compacted file is never the
only copy of its rows. Files are only read and moved here; nothing is written as Parquet.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from benchmark.data.sources import source_label
from benchmark.results.leaderboard import Leaderboard
from benchmark.results.reader import safe_name
from benchmark.run.jobs import RunContext
from benchmark.run.plan import plan_grid

log = logging.getLogger(__name__)


@dataclass
class RepairReport:
    """What :func:`repair` did. ``recovered``: ``(archived file, cell keys it gave back)``;
    ``unrecovered``: quarantined files whose rows have no archived copy (their cells run again)."""

    quarantined: list[tuple[str, str]] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    recovered: list[tuple[str, list[str]]] = field(default_factory=list)
    unrecovered: list[str] = field(default_factory=list)

    @property
    def recovered_keys(self) -> set[str]:
        return {key for _, keys in self.recovered for key in keys}

    def lines(self) -> list[str]:
        out = [f"checksum mismatch: {path} differs from its manifest; moved to quarantine"
               for path in self.mismatched]
        out += [f"moved unreadable {old} to {new}" for old, new in self.quarantined]
        out += [f"recovered {len(keys)} row(s) from {path}: {', '.join(sorted(keys)[:6])}"
                + (" ..." if len(keys) > 6 else "") for path, keys in self.recovered]
        out += [f"not recoverable: {path} has no archived copy; its cells run again on the next "
                "run of their grid" for path in self.unrecovered]
        return out or ["nothing to repair: every leaderboard file is readable"]

    def summary(self) -> str | None:
        """The whole repair in one line (None when there was nothing to repair), e.g. ``ledger
        repaired: 1 unreadable file quarantined, 18 rows recovered from the archive, nothing to
        retrain``; :meth:`lines` has the details, file by file."""
        if not (self.quarantined or self.mismatched or self.recovered or self.unrecovered):
            return None
        parts = [_count(len(self.quarantined), "unreadable file") + " quarantined"]
        if self.mismatched:
            parts.append(_count(len(self.mismatched), "file") + " differing from its manifest quarantined")
        parts.append(_count(len(self.recovered_keys), "row") + " recovered from the archive")
        if not self.unrecovered:
            return "ledger repaired: " + ", ".join(parts) + ", nothing to retrain"
        lost = _count(len(self.unrecovered), "file") + (" had" if len(self.unrecovered) == 1 else " have")
        return (f"ledger repaired: {', '.join(parts)}; {lost} no archived copy, its cells run again: "
                + ", ".join(self.unrecovered))


@dataclass(frozen=True)
class RepairPreview:
    """What :func:`repair` (as a grid run calls it) would do now, found without moving anything:
    ``files`` unreadable ledger files to quarantine, ``restorable`` the cell keys whose rows it
    would put back from the archive."""

    files: int = 0
    restorable: frozenset[str] = frozenset()


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def repair_preview(board: Leaderboard) -> RepairPreview:
    """Read-only: the unreadable files a grid run's repair will quarantine and the rows it will
    restore, so that a run's start line can count them before the repair has run."""
    live = board.finished_keys()
    files = sum(1 for _, reason in board.skipped if reason.startswith("unreadable"))
    if not files:
        return RepairPreview()
    archived: set[str] = set()
    for path in _archived(board, ".parquet"):
        archived |= _archived_keys(board, path) or set()
    return RepairPreview(files, frozenset(archived - live))


def repair(board: Leaderboard, full: bool = True) -> RepairReport:
    """Quarantine unreadable files and restore the rows they held from the archive.

    ``full``: also check every compacted file against its manifest's sha256 (reads them all) and
    restore any row missing from ``cells/`` even when nothing was quarantined (a file deleted by
    hand); ``False`` (what a grid run does) restores only after a file was quarantined.
    """
    report = RepairReport()
    if full:
        report.mismatched = _quarantine_mismatched(board)
    report.quarantined = board.quarantine()
    if not (full or report.quarantined):
        return report
    live = board.finished_keys()
    restored_names = set()
    for path in _archived(board, ".parquet"):
        keys = _archived_keys(board, path)
        if keys is None:
            log.warning("leaderboard repair: archived %s is unreadable too", path)
            continue
        missing = keys - live
        if missing:
            _restore(board, path)
            live |= keys
            restored_names.add(path.rsplit("/", 1)[1])
            report.recovered.append((board._display(path), sorted(missing)))
    compacted = {m["file"].rsplit("/", 1)[1] for m in _manifests(board)}
    live_names = {safe_name(key) for key in live}
    for old in [old for old, _ in report.quarantined] + report.mismatched:
        name = old.rsplit("/", 1)[1]
        if name in compacted:  # its sources were archived (and restored above when needed)
            continue
        if name.rsplit("-", 1)[0] not in live_names:  # a per-cell file: <cell key>-<uuid8>.parquet
            report.unrecovered.append(old)
    for line in report.lines():  # the details, file by file, in the log
        log.info("leaderboard repair: %s", line)
    if report.summary():
        log.warning("%s", report.summary())
    return report


def _archived_keys(board: Leaderboard, path: str) -> set[str] | None:
    """The cell keys of an archived file (None when it cannot be read)."""
    try:
        with board.filesystem.open_input_file(path) as handle:
            return set(pq.read_table(handle, columns=["cell_key"]).column("cell_key").to_pylist())
    except (OSError, pa.ArrowException) as exc:
        log.debug("archived %s is unreadable: %s", path, exc)
        return None


def _archived(board: Leaderboard, suffix: str) -> list[str]:
    selector = pafs.FileSelector(board.archive_dir(), recursive=True, allow_not_found=True)
    return sorted(info.path for info in board.filesystem.get_file_info(selector)
                  if info.type == pafs.FileType.File and info.path.endswith(suffix))


def _manifests(board: Leaderboard) -> list[dict]:
    out = []
    for path in _archived(board, ".json"):
        try:
            with board.filesystem.open_input_file(path) as handle:
                out.append(json.loads(handle.read()))
        except (OSError, ValueError) as exc:
            log.warning("leaderboard repair: unreadable manifest %s: %s", path, exc)
    return out


def _restore(board: Leaderboard, archived: str) -> None:
    """Move an archived file back to its partition under ``cells/`` (readers see it again; the
    next compaction merges and archives it again)."""
    relative = archived[len(board.archive_dir()) + 1:]
    target = f"{board.root}/cells/{relative}"
    if board.filesystem.get_file_info(target).type != pafs.FileType.NotFound:
        target = target.removesuffix(".parquet") + "-restored.parquet"
    board.filesystem.create_dir(target.rsplit("/", 1)[0], recursive=True)
    board.filesystem.move(archived, target)


def _quarantine_mismatched(board: Leaderboard) -> list[str]:
    """Compacted files whose bytes differ from the sha256 of their manifest, moved to quarantine."""
    moved = []
    for manifest in _manifests(board):
        path = f"{board.root}/cells/{manifest['file']}"
        try:
            with board.filesystem.open_input_file(path) as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
        except FileNotFoundError:
            continue  # merged again since, or already quarantined
        except OSError:
            continue  # unreadable: quarantine() moves it
        if digest != manifest["sha256"]:
            target = f"{board.root}/quarantine/cells/{manifest['file']}"
            board.filesystem.create_dir(target.rsplit("/", 1)[0], recursive=True)
            board.filesystem.move(path, target)
            moved.append(board._display(path))
    return moved


def to_retrain(spec, settings) -> list[str]:
    """Labels of the cells of grid ``spec`` that have no leaderboard row: what its next run trains
    (baselines are listed as ``<target> n=<size> baseline/<name>``)."""
    plan = plan_grid(spec, settings)
    context = RunContext(plan.spec.name, plan.grid_id, "repair", "", "", None, None)
    finished = Leaderboard(settings.results).finished_keys()
    jobs = plan.cell_jobs(context)
    labels = [job.names.label for job in jobs if job.cell_key not in finished]
    for job in plan.baseline_jobs(jobs, context):
        where = f"{source_label(job.cell.target)} n={job.cell.target_size}"
        labels += [f"{where} baseline/{name}" for name in job.baselines
                   if job.key(name) not in finished]
    return labels
