"""Where a grid's report lives: its folder and the names of its files.

Light (no matplotlib): the run layer and the command line ask where a report is, and which
grid it was drawn for, without drawing one; :mod:`benchmark.report.grid` writes it there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmark.spec.settings import Settings

REPORT_FILE = "report.html"
#: Beside the report: the id of the grid spec it was drawn for and its rows' keys. A grid name's
#: report may have been drawn for another spec of that name (one ``--subgrid`` part of a profile,
#: the profile before a baseline was added): the whole grid's report is then still to be drawn, and
#: ``tlbench report`` redraws the grid as it was last reported.
REPORT_GRID_FILE = "report.grid.json"
TRANSFER_BENEFIT_FILE = "transfer_benefit.png"
TRAINING_TIME_FILE = "training_time.png"


def report_dir(settings: Settings, grid: str) -> Path:
    """Where a grid's report goes: ``<results>/reports/<grid>/`` (:meth:`Settings.local_dir`:
    beside the MLflow store when the results live on an object store; the copy logged to the
    parent MLflow run is then the shared one)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", grid).strip("._") or "grid"
    return settings.local_dir("reports", name)



def mark_report(settings: Settings, grid: str, grid_id: str, keys: list[str]) -> None:
    """Record that the report of ``grid`` now in its folder was drawn for the spec ``grid_id``
    from the rows of ``keys``."""
    record = {"grid_id": grid_id, "keys": sorted(set(keys))}
    (report_dir(settings, grid) / REPORT_GRID_FILE).write_text(json.dumps(record) + "\n")


def reported_grid(settings: Settings, grid: str) -> dict | None:
    """``{"grid_id": ..., "keys": [...]}`` of the report of ``grid`` now in its folder; None when
    there is none, or it predates the record, or the record cannot be read."""
    folder = report_dir(settings, grid)
    if not (folder / REPORT_FILE).is_file():
        return None
    try:
        record = json.loads((folder / REPORT_GRID_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and {"grid_id", "keys"} <= set(record) else None
