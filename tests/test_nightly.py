"""benchmark.results.nightly: tonight's run against the previous run of the same grid, on a real Parquet
leaderboard: an injected regression is flagged, seed noise and small changes are not, and a run
with nothing to compare says so."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from benchmark.results.leaderboard import Leaderboard
from benchmark.results.nightly import COMPARISON_COLUMNS, previous_aggregate, regression_check
from benchmark.spec.errors import TlbenchError

GRID = "nightly"
NIGHT1, NIGHT2, NIGHT3 = "20240601T010000-aaaaaa", "20240602T010000-bbbbbb", "20240603T010000-cccccc"
SEEDS = (0, 1, 2)
# (size, mode) -> MASE of seeds 0, 1, 2 on night 1. finetune at 960 is noisy on purpose.
NIGHT1_MASE = {
    (240, "scratch"): (1.50, 1.51, 1.49), (240, "finetune"): (1.20, 1.21, 1.19),
    (960, "scratch"): (1.30, 1.31, 1.29), (960, "finetune"): (1.10, 1.30, 0.90),
}


def rows_for(run_id: str, mase: dict, grid: str = GRID) -> list[dict]:
    started = dt.datetime.strptime(run_id[:15], "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc)
    rows = []
    for (size, mode), values in mase.items():
        for seed, value in zip(SEEDS, values):
            rows.append(dict(
                grid_id="g1", grid=grid, run_id=run_id, run_date=f"{started:%Y-%m-%d}",
                cell_key=f"{run_id}-{size}-{mode}-{seed}", kind="model", target="ett/ETTh1:OT",
                target_dataset="ett/ETTh1", target_column="OT", target_size=size, architecture="lstm", mode=mode,
                seed=seed, lookback=24, horizon=1, mse=value, rmse=value, mae=value, mape=value, smape=value,
                mase=float(value), train_seconds=1.0, epochs=3, trainable_params=10, frozen_params=0,
                worker_host="h", device="CPU", package_version="0.1.0", data_fingerprint="fp",
                started_at=started, finished_at=started + dt.timedelta(minutes=5)))
    return rows


def shifted(mase: dict, change: dict) -> dict:
    """Night 1's values, each seed nudged by +-0.5% (seed noise), with ``change`` multiplying some groups."""
    wobble = np.array([1.005, 0.995, 1.0])
    return {key: tuple(np.array(values) * wobble * change.get(key, 1.0)) for key, values in mase.items()}


@pytest.fixture
def board(tmp_path) -> Leaderboard:
    board = Leaderboard(str(tmp_path / "results"))
    board.append_batch(rows_for(NIGHT1, NIGHT1_MASE))
    # night 2: scratch at 240 got 20% worse (a regression); scratch at 960 3% worse (under the
    # 5% threshold); finetune at 960 10% worse but its seeds spread +-0.2 (inside seed noise)
    board.append_batch(rows_for(NIGHT2, shifted(NIGHT1_MASE, {(240, "scratch"): 1.20, (960, "scratch"): 1.03,
                                                              (960, "finetune"): 1.10})))
    board.append_batch(rows_for(NIGHT2, NIGHT1_MASE, grid="other"))  # another grid, same run id: ignored
    return board


def test_an_injected_regression_is_flagged_and_seed_noise_is_not(board):
    report = regression_check(board, GRID, NIGHT2, threshold_pct=5.0)
    assert report.compared_with == NIGHT1 and report.has_regressions
    flagged = report.regressions[["target_size", "architecture", "mode"]].to_records(index=False).tolist()
    assert flagged == [(240, "lstm", "scratch")]
    (row,) = report.regressions.itertuples()
    assert row.change_pct == pytest.approx(20.0, abs=0.5)
    assert "outside seed noise" in row.reason

    comparison = report.comparison.set_index(["target_size", "mode"])
    assert list(report.comparison.columns) == COMPARISON_COLUMNS and len(comparison) == 4
    assert comparison.loc[(960, "finetune"), "change_pct"] > 5  # worse beyond the threshold...
    assert comparison.loc[(960, "finetune"), "current"] - comparison.loc[(960, "finetune"), "previous"] < (
        comparison.loc[(960, "finetune"), "previous_ci95"] + comparison.loc[(960, "finetune"), "current_ci95"])
    assert not comparison.loc[(960, "finetune"), "regressed"]  # ...but inside the seed noise
    assert 0 < comparison.loc[(960, "scratch"), "change_pct"] < 5 and not comparison.loc[(960, "scratch"), "regressed"]

    markdown = report.markdown()
    assert f"compared with run `{NIGHT1}`" in markdown and "**1 regression(s)**" in markdown
    assert "| ett/ETTh1:OT | 240 | lstm | scratch |" in markdown
    assert "1 regression(s) in mase" in report.summary()
    records = report.records()
    json.dumps(records)  # a table artifact's rows: plain JSON values only
    assert records[0]["regressed"] is True and records[0]["target_size"] == 240


def test_a_higher_threshold_flags_nothing(board):
    report = regression_check(board, GRID, NIGHT2, threshold_pct=25.0)
    assert report.compared_with == NIGHT1 and not report.has_regressions
    assert "**no regressions**" in report.markdown()


def test_the_first_run_has_nothing_to_compare_and_says_so(board):
    report = regression_check(board, GRID, NIGHT1)
    assert report.compared_with is None and not report.has_regressions and report.comparison.empty
    assert "no earlier run" in report.note and "**no comparison**" in report.markdown()
    assert previous_aggregate(board, GRID, NIGHT1) is None
    assert previous_aggregate(board, "no-such-grid", NIGHT2) is None


def test_a_run_that_wrote_no_rows_has_nothing_to_compare(board):
    report = regression_check(board, GRID, NIGHT3)  # every cell was already finished: no rows
    assert report.compared_with is None
    assert "wrote no rows" in report.note and "already finished" in report.markdown()


def test_the_most_recent_earlier_run_is_the_one_compared(board):
    board.append_batch(rows_for(NIGHT3, NIGHT1_MASE))  # night 3 is back to night 1's values
    previous = previous_aggregate(board, GRID, NIGHT3)
    assert set(previous["n_seeds"]) == {3} and len(previous) == 4
    scratch_240 = previous.set_index(["target_size", "mode"]).loc[(240, "scratch"), "mase_mean"]
    assert scratch_240 == pytest.approx(1.2 * 1.50, rel=1e-3)  # night 2's regressed value, not night 1's
    report = regression_check(board, GRID, NIGHT3)
    assert report.compared_with == NIGHT2 and not report.has_regressions  # an improvement is no regression
    night1 = previous_aggregate(board, GRID, NIGHT2).set_index(["target_size", "mode"])["mase_mean"]
    compared = regression_check(board, GRID, NIGHT2).comparison.set_index(["target_size", "mode"])["previous"]
    assert night1.sort_index().tolist() == pytest.approx(compared.sort_index().tolist())


def test_an_unknown_run_id_is_a_clear_error(board):
    with pytest.raises(TlbenchError, match="no rows in the leaderboard.*Most recent runs: .*bbbbbb"):
        previous_aggregate(board, GRID, "not-a-run")
    with pytest.raises(TlbenchError, match="threshold_pct"):
        regression_check(board, GRID, NIGHT2, threshold_pct=float("nan"))
