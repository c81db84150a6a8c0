"""End to end in local mode: a grid over both regimes and a feature set on a real ETTh1 slice
(tiny model), with a transfer mode, lands both regimes in the leaderboard and the HTML report."""

from __future__ import annotations

from benchmark.run.engines import LocalEngine
from benchmark.run.grid import run_grid
from benchmark.spec.profiles import load_grid


def test_stateless_and_stateful_with_features_run_end_to_end(settings):
    spec = load_grid("smoke", [
        "targets=[{source: ett, options: {file: ETTh1, column: OT}}]", "target_sizes=[96]",
        "split.test_size=24", "split.lookback=12", "model.units=8", "training.max_epochs=2",
        "modes=[scratch, finetune]", "regimes=[stateless, stateful]", "model.normalisation=global",
        "feature_sets=[[rolling_mean:24, hour_of_day, covariate:HUFL]]", "baselines=[seasonal_naive]",
        "pretrain.max_series=4", "pretrain.windows_per_series=20", "pretrain.training.max_epochs=1"])
    result = run_grid(spec, settings, LocalEngine(1))
    assert result.counts() == {"finished": 5}, [o.error for o in result.failed]
    models = result.leaderboard[result.leaderboard["kind"] == "model"]
    assert sorted(models["regime"]) == ["stateful", "stateful", "stateless", "stateless"]
    assert set(models["features"]) == {"y+rolling_mean:24+hour_of_day+covariate:HUFL"}
    assert models["mase"].notna().all()
    page = open(result.report_path, encoding="utf-8").read()
    assert "lstm · stateful · y+rolling_mean:24+hour_of_day+covariate:HUFL" in page
    assert "lstm · y+rolling_mean:24+hour_of_day+covariate:HUFL" in page  # the stateless variant
