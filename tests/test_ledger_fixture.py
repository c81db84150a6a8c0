"""A ledger written before the layout change resumes with nothing to retrain.

``tests/fixtures/ledger-12d075e/`` holds the ``cells/`` partition that ``tlbench run --profile
smoke`` wrote with main at commit 12d075e (the flat layout, before the packages by layer): 6 cells
and 12 baseline rows. Planning the same grid on the same data with today's code must find every
key in it: a cell key that moved under a refactor would retrain that cell on every team's ledger.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmark.results.leaderboard import Leaderboard
from benchmark.run.plan import plan_grid
from benchmark.run.resume import pending_keys
from benchmark.spec.profiles import load_grid
from benchmark.spec.settings import Settings

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ledger-12d075e"


def test_a_ledger_from_before_the_layout_resumes_with_nothing_to_retrain(tmp_path, data_dir):
    results = tmp_path / "results"
    shutil.copytree(FIXTURE, results)
    settings = Settings(data_dir=data_dir, results=str(results), mlflow_dir=tmp_path / "mlflow",
                        allow_download=False).resolved()
    finished = Leaderboard(settings.results).finished_keys()
    assert len(finished) == 18  # 6 cells + 2 sizes x 6 baselines, as written at 12d075e

    # the smoke profile's baselines at 12d075e: mstl joined them later (issue 35), a new row, not a moved key
    plan = plan_grid(load_grid("smoke", ["baselines=[naive, seasonal_naive, naive2, mean, ets, theta]"]), settings)

    assert pending_keys(plan, settings) == []
