"""Shared fixtures: the real data directory (``TLBENCH_DATA_DIR``, default ``../shared/data``)
and per-test settings whose results and MLflow store live in the test's own tmp folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("TLBENCH_DATA_DIR", REPO_ROOT.parent / "shared" / "data")).resolve()
    if not (path / "m4" / "datasets" / "Hourly-train.csv").is_file():
        pytest.fail(f"real data not found under {path}: set TLBENCH_DATA_DIR to the shared data folder")
    return path


@pytest.fixture
def settings(tmp_path, data_dir):
    from benchmark.settings import Settings

    return Settings(data_dir=data_dir, results=str(tmp_path / "results"),
                    mlflow_dir=tmp_path / "mlflow", allow_download=False).resolved()
