"""Where a grid's report lives: its folder and the names of its files.

Light (no matplotlib): the run layer and the command line ask where a report is without
drawing one; :mod:`benchmark.report.grid` writes it there.
"""

from __future__ import annotations

import re
from pathlib import Path

from benchmark.spec.settings import Settings

REPORT_FILE = "report.html"
TRANSFER_BENEFIT_FILE = "transfer_benefit.png"
TRAINING_TIME_FILE = "training_time.png"


def report_dir(settings: Settings, grid: str) -> Path:
    """Where a grid's report goes: ``<results>/reports/<grid>/`` (:meth:`Settings.local_dir`:
    beside the MLflow store when the results live on an object store; the copy logged to the
    parent MLflow run is then the shared one)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", grid).strip("._") or "grid"
    return settings.local_dir("reports", name)

