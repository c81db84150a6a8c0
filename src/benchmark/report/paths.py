"""Where a grid's report lives: its folder and the names of its files.

Light (no matplotlib): the run layer and the command line ask where a report is, and which
grid it was drawn for, without drawing one; :mod:`benchmark.report.grid` writes it there.
"""

from __future__ import annotations

import re
from pathlib import Path

from benchmark.spec.settings import Settings

REPORT_FILE = "report.html"
#: Beside the report: the id of the grid spec it was drawn for. A grid name's report may have been
#: drawn for another spec of that name (one ``--subgrid`` part of a profile, the profile before a
#: baseline was added): the whole grid's report is then still to be drawn.
REPORT_GRID_FILE = "report.grid_id"
TRANSFER_BENEFIT_FILE = "transfer_benefit.png"
TRAINING_TIME_FILE = "training_time.png"


def report_dir(settings: Settings, grid: str) -> Path:
    """Where a grid's report goes: ``<results>/reports/<grid>/`` (:meth:`Settings.local_dir`:
    beside the MLflow store when the results live on an object store; the copy logged to the
    parent MLflow run is then the shared one)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", grid).strip("._") or "grid"
    return settings.local_dir("reports", name)



def mark_report(settings: Settings, grid: str, grid_id: str) -> None:
    """Record that the report of ``grid`` now in its folder was drawn for the spec ``grid_id``."""
    (report_dir(settings, grid) / REPORT_GRID_FILE).write_text(grid_id + "\n")


def report_grid_id(settings: Settings, grid: str) -> str | None:
    """The id of the grid spec the report of ``grid`` was drawn for; None when there is no report
    or it predates the record."""
    report, marker = report_dir(settings, grid) / REPORT_FILE, report_dir(settings, grid) / REPORT_GRID_FILE
    if not (report.is_file() and marker.is_file()):
        return None
    return marker.read_text().strip() or None
