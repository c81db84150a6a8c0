"""The baselines stage: every baseline of a grid scored on one (target, size), on the same test
origins and horizons as the model cells, one leaderboard row each (kind ``baseline``,
architecture ``baseline``, mode = the baseline's name, seed 0). NumPy and statsforecast only:
engines run it in the calling process."""

from __future__ import annotations

import numpy as np

from benchmark.data.loading import load_data
from benchmark.data.sources import source_label
from benchmark.data.splits import scale_metrics, split_target, test_origins
from benchmark.forecasters.baselines import BASELINES
from benchmark.forecasters.metrics import compute_metrics
from benchmark.results.leaderboard import Leaderboard
from benchmark.run.jobs import BaselineJob, CellNames, CellOutcome, now
from benchmark.run.rows import identity_columns, record_failure, result_row
from benchmark.spec.errors import TlbenchError
from benchmark.spec.settings import Settings


def run_baselines(job: BaselineJob, settings: Settings) -> list[CellOutcome]:
    """Rows of kind 'baseline' (architecture 'baseline', mode = the baseline's name, seed 0)."""
    cell, label = job.cell, source_label(job.cell.target)
    values = load_data(cell.target, settings, cell.split)["y"].to_numpy(dtype=float)
    split = split_target(len(values), cell.target_size, cell.split, label)
    insample = values[split.history_start:split.val_start]
    horizon, m = cell.split.horizon, cell.split.season_length
    # The same targets the models are scored on: one row per test origin, `horizon` steps each.
    origins = test_origins(split, cell.split)
    truth = values[origins[:, None] + np.arange(horizon)]  # [n_origins, horizon]
    leaderboard = Leaderboard(settings.results)
    outcomes, rows, finished = [], [], leaderboard.finished_keys()
    for name in job.baselines:
        key, text = job.key(name), f"{label} n={cell.target_size} baseline/{name}"
        if key in finished:
            outcomes.append(CellOutcome(key, "skipped", text))
            continue
        started, baseline = now(), BASELINES.get(name)
        try:  # a fit that fails or times out (benchmark.forecasters.statistical) is this baseline's failure row
            forecaster = baseline.forecaster(m, settings.baseline_fit_seconds)  # the contract: fit, forecast
            forecaster.fit(values[split.history_start:split.test_start])
            forecast = forecaster.forecast(values[split.history_start:], origins - split.history_start, horizon)
        except TlbenchError as exc:
            record_failure(leaderboard, job, key, str(exc),
                           CellNames(label, int(cell.target_size), "baseline", name, 0))
            outcomes.append(CellOutcome(key, "failed", text, error=str(exc)))
            continue
        metrics = compute_metrics(truth, forecast, insample, m)
        metrics.update(scale_metrics(cell.split, split, values, truth, forecast))
        identity = {**identity_columns(job.context, cell, key, job.data_fingerprint), "kind": "baseline",
                    "architecture": "baseline", "mode": name, "seed": 0, "pretrain_seed": None}
        rows.append(result_row(identity, metrics, started))
        leaderboard.write_errors(rows[-1], truth - forecast)
        outcomes.append(CellOutcome(key, "finished", text, dict(metrics)))
    if rows:
        leaderboard.append(rows)
    return outcomes
