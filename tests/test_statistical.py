"""The statsforecast baselines (benchmark.forecasters.statistical): visible synthetic series, the test origins
of the grid's baseline stage, failure rows, validation, the M4 protocol and the Theta reproduction."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from benchmark.forecasters.baselines import BASELINES
from benchmark.forecasters.contract import Forecaster
from benchmark.forecasters.statistical import (
    ARIMA_MAX_HISTORY,
    METHODS,
    FitError,
    StatisticalForecaster,
    forecast,
    mstl_seasons,
    time_limit,
)
from benchmark.spec.errors import DataError, SpecError, TlbenchError

STATISTICAL = ["arima", "ets", "mstl", "theta"]


def sine(n: int, period: int = 24, level: float = 10.0) -> np.ndarray:
    return level + np.sin(2 * np.pi * np.arange(n) / period)


def noisy(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return sine(n) + 0.3 * rng.standard_normal(n) + 0.002 * np.arange(n)


def at_origins(name: str, values: np.ndarray, history_start: int, test_start: int, origins: np.ndarray,
               horizon: int, season_length: int) -> np.ndarray:
    """The grid's baseline stage: fit on values[history_start:test_start], forecast every origin."""
    forecaster = BASELINES.get(name).forecaster(season_length, 60.0)
    assert isinstance(forecaster, Forecaster)
    forecaster.fit(values[history_start:test_start])
    return forecaster.forecast(values[history_start:], np.asarray(origins) - history_start, horizon)


def test_registered_beside_the_others_with_a_description():
    for name in STATISTICAL:
        assert name in BASELINES and BASELINES.get(name).description
    assert BASELINES.get("arima").max_history == ARIMA_MAX_HISTORY


@pytest.mark.parametrize("name", STATISTICAL)
def test_a_pure_sine_is_forecast_almost_exactly(name):
    history = sine(24 * 7 * 2 + 7 if name == "mstl" else 103)  # mstl: its weekly period too; ends mid-cycle
    forecast = BASELINES.get(name).forecast(history, 48, 24)
    np.testing.assert_allclose(forecast, sine(len(history) + 48)[len(history):], atol=1e-3)


@pytest.mark.parametrize("name", ["ets", "theta", "arima"])
def test_a_constant_series_is_forecast_constant(name):
    forecast = BASELINES.get(name).forecast(np.full(120, 7.0), 12, 24)
    np.testing.assert_allclose(forecast, 7.0, atol=1e-6)


def test_mstl_periods_follow_the_history_length():
    assert mstl_seasons(24, 336) == [24, 168]
    assert mstl_seasons(24, 335) == [24]
    assert mstl_seasons(24, 48) == [24]
    with pytest.raises(DataError, match="mstl needs at least two seasons"):
        mstl_seasons(24, 47)


@pytest.mark.parametrize("name", STATISTICAL)
@pytest.mark.parametrize("horizon", [1, 6])
def test_forecast_at_an_origin_ignores_values_from_it_on(name, horizon):
    values = noisy(200)
    origins = np.array([150, 165, 190])
    reference = at_origins(name, values, 20, 150, origins, horizon, 24)
    assert reference.shape == (3, horizon)
    for i, t in enumerate(origins):
        changed = values.copy()
        changed[t:] = 1e4
        changed[:20] = -1e4  # before the history: never used either
        again = at_origins(name, changed, 20, 150, origins[:i + 1], horizon, 24)
        np.testing.assert_allclose(again[i], reference[i], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["ets"])
def test_one_step_fitted_values_are_the_forecasts_from_each_origin(name):
    """The fast one-step path (one pass of fitted values) equals a forecast from every origin with
    the same fixed parameters: the same origins and numbers as the multi-step path at h=1."""
    values, origins = noisy(360, seed=3), np.arange(300, 360, 7)
    method = METHODS[name]
    model = method.build(24, 300).fit(values[:300])
    by_origin = np.array([model.forward(values[:t], h=1)["mean"][0] for t in origins])
    fast = at_origins(name, values, 0, 300, origins, 1, 24)[:, 0]
    np.testing.assert_allclose(fast, by_origin, rtol=1e-6)


def test_one_step_matches_the_existing_baselines_positions():
    """Every test origin t is the forecast of values[t] (naive's positions): on a slowly drifting
    series ets' one-step forecast sits right next to the value before t, not after it."""
    values = 5 + 0.01 * np.arange(200) ** 1.5
    naive = BASELINES.get("naive").one_step(values, 0, 150, 200, 24)
    ets = BASELINES.get("ets").one_step(values, 0, 150, 200, 24)
    assert ets.shape == naive.shape == (50,)
    assert np.all(np.abs(ets - values[150:200]) < np.abs(naive - values[150:200]) + 0.05)


def test_a_fit_over_its_time_limit_fails_clearly():
    started = time.monotonic()
    with pytest.raises(FitError, match=r"baseline ets on .*time limit of 0\.05 s"):
        forecast("ets", noisy(900), 24, 24, fit_seconds=0.05)  # about 0.7 s unloaded
    with pytest.raises(FitError, match=r"baseline ets on the test origins after 900 .*time limit of 0\.05 s"):
        BASELINES.get("ets").forecaster(24, fit_seconds=0.05).fit(noisy(900))  # the grid's path
    assert time.monotonic() - started < 10  # interrupted, not run to its end


def test_the_time_limit_is_passed_not_held_globally():
    quick = BASELINES.get("ets").forecaster(24, fit_seconds=0.05)
    slow = BASELINES.get("ets").forecaster(24, fit_seconds=60)
    assert (quick.fit_seconds, slow.fit_seconds) == (0.05, 60)
    assert BASELINES.get("ets").forecaster(24).fit_seconds == 60.0  # FIT_SECONDS by default
    with pytest.raises(TlbenchError, match="must be positive"):
        with time_limit(0, "nothing"):
            pass


def test_time_limit_outside_the_main_thread_fails_after_the_fact():
    import threading

    caught = []

    def work():
        try:
            with time_limit(0.01, "a slow fit"):
                time.sleep(0.05)
        except FitError as exc:
            caught.append(str(exc))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert caught and "a slow fit" in caught[0]


def test_arima_refuses_a_long_history():
    with pytest.raises(DataError, match=f"limited to {ARIMA_MAX_HISTORY} history points"):
        BASELINES.get("arima").forecast(noisy(ARIMA_MAX_HISTORY + 1), 4, 24)


def test_validation_refuses_arima_above_its_cap():
    from benchmark.run.validation import grid_problems
    from benchmark.spec.tree import GridSpec

    spec = GridSpec(target_sizes=(240, 2000), baselines=("naive", "arima"))
    problems = [p for p in grid_problems(spec) if p.startswith("grid.baselines")]
    assert problems == [f"grid.baselines[1]: arima fits at most {ARIMA_MAX_HISTORY} history points but "
                        f"grid.target_sizes has 2000; drop arima or use sizes <= {ARIMA_MAX_HISTORY}"]
    assert not [p for p in grid_problems(GridSpec(baselines=("ets", "theta", "mstl", "arima")))
                if p.startswith("grid.baselines")]


def _baseline_job(target_size: int, baselines: tuple[str, ...], horizon: int = 1):
    from benchmark.run.jobs import BaselineJob, RunContext, expand
    from benchmark.spec.sections import DataSpec, SplitSpec
    from benchmark.spec.tree import GridSpec

    spec = GridSpec(name="stat", targets=(DataSpec("ett", {"file": "ETTh1", "column": "OT"}),),
                    target_sizes=(target_size,), modes=("scratch",), baselines=baselines,
                    split=SplitSpec(horizon=horizon, test_size=96, lookback=24))
    cell = expand(spec)[0]
    context = RunContext("stat", "g1", "r1", "2026-12-04", "tlbench-stat", None, None)
    return BaselineJob(cell, baselines, "fingerprint", context)


@pytest.mark.parametrize("horizon", [1, 24])
def test_grid_stage_scores_statistical_baselines_on_the_same_origins(settings, horizon):
    from benchmark.results.leaderboard import Leaderboard
    from benchmark.run.baselines import run_baselines

    job = _baseline_job(240, ("naive", "ets", "theta"), horizon)
    outcomes = run_baselines(job, settings)
    assert [o.status for o in outcomes] == ["finished"] * 3
    board = Leaderboard(settings.results)
    rows = board.read(grid="stat")
    assert sorted(rows["mode"]) == ["ets", "naive", "theta"]
    errors = board.read_errors(rows["cell_key"].tolist())
    shapes = {errors[key].shape for key in rows["cell_key"]}
    assert len(shapes) == 1 and next(iter(shapes))[1] == horizon  # the same origins for all three


def test_grid_stage_writes_a_failure_row_and_goes_on(settings):
    from benchmark.results.leaderboard import Leaderboard
    from benchmark.run.baselines import run_baselines

    settings = dataclasses.replace(settings, baseline_fit_seconds=0.05)
    job = _baseline_job(960, ("ets", "naive"))  # AutoETS on 960 points: about 0.7 s unloaded
    outcomes = {o.label.split("/")[-1]: o for o in run_baselines(job, settings)}
    assert outcomes["naive"].status == "finished"
    assert outcomes["ets"].status == "failed"
    assert "baseline ets on the test origins after" in outcomes["ets"].error
    assert "time limit of 0.05 s" in outcomes["ets"].error
    failures = Leaderboard(settings.results).failures()
    row = failures.loc[failures["cell_key"] == job.key("ets")].iloc[0]
    assert row["mode"] == "ets" and row["architecture"] == "baseline" and "time limit" in row["error"]
    assert sorted(Leaderboard(settings.results).read(grid="stat")["mode"]) == ["naive"]


def test_grid_stage_fails_mstl_on_too_short_a_history(settings):
    from benchmark.run.baselines import run_baselines

    job = _baseline_job(40, ("mstl",))  # below two daily cycles
    (outcome,) = run_baselines(job, settings)
    assert outcome.status == "failed" and "mstl needs at least two seasons" in outcome.error


def test_evaluate_source_lists_failed_series_and_scores_them_as_naive2(data_dir):
    from benchmark.forecasters.source import evaluate_source
    from benchmark.spec.sections import DataSpec

    source = DataSpec("m4", {"group": "Hourly"})
    forecaster = StatisticalForecaster("mstl", 24, workers=1)
    forecaster.season_length = 10_000  # no M4 Hourly series holds two such seasons: every fit fails
    result = evaluate_source(source, "mstl", data_dir, forecaster, allow_download=False, max_series=2)
    assert len(result["failed_series"]) == 2
    assert all("mstl needs at least two seasons" in why for why in result["failed_series"].values())
    assert result["smape"] == pytest.approx(result["smape_naive2"])


def test_evaluate_source_fits_in_two_processes(data_dir):
    from benchmark.forecasters.source import evaluate_source
    from benchmark.spec.sections import DataSpec

    source = DataSpec("m4", {"group": "Hourly"})
    result = evaluate_source(source, "theta", data_dir, allow_download=False, max_series=4)
    assert result["n_series"] == 4 and result["failed_series"] == {}
    assert 0 < result["owa"] < 2


@pytest.mark.e2e
def test_evaluate_source_theta_reproduces_m4_published_theta(data_dir, tmp_path):
    """M4's published Theta on Hourly: sMAPE 18.138, MASE 2.455 (within 1%)."""
    env = {"TLBENCH_DATA_DIR": str(data_dir), "TLBENCH_OFFLINE": "1", "TLBENCH_RESULTS": str(tmp_path / "r"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "benchmark.cli", "evaluate-source", "--source", "m4-hourly",
                           "--method", "theta", "--json"], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["n_series"] == 414 and result["failed_series"] == {} and result["recorded_in"]
    assert result["smape"] == pytest.approx(18.138, rel=0.01)
    assert result["mase"] == pytest.approx(2.455, rel=0.01)
    # a pretraining's source scoring adds the reference methods once per results location: the row
    # evaluate-source wrote counts, a missing one is scored and recorded, a second call adds nothing
    from benchmark.results.leaderboard import Leaderboard
    from benchmark.run.source import ensure_source_references
    from benchmark.spec.sections import DataSpec
    from benchmark.spec.settings import Settings

    settings = Settings(data_dir=data_dir, results=str(tmp_path / "r"), allow_download=False).resolved()
    source = DataSpec("m4", {"group": "Hourly"})
    assert ensure_source_references(settings, source, (48, 24), methods=("theta", "naive")) == ["naive"]
    assert ensure_source_references(settings, source, (48, 24), methods=("theta", "naive")) == []
    rows = Leaderboard(settings.results).read(grid="evaluate-source", kind="source")
    assert sorted(rows["mode"]) == ["naive", "theta"]
    assert rows.loc[rows["mode"] == "naive", "smape"].iloc[0] == pytest.approx(43.0, rel=0.1)


def _ensure_naive_on_m4(data_dir, results, barrier, answers):
    from benchmark.run.source import ensure_source_references
    from benchmark.spec.sections import DataSpec
    from benchmark.spec.settings import Settings

    settings = Settings(data_dir=data_dir, results=results, allow_download=False).resolved()
    barrier.wait()
    answers.put(ensure_source_references(settings, DataSpec("m4", {"group": "Hourly"}), (48, 24),
                                         methods=("naive",)))


def test_two_bodies_scored_at_once_score_the_references_once(data_dir, tmp_path):
    """Two bodies pretrained side by side (``--concurrency 2``) both ask for the source's reference
    rows at the same moment: one scores them, the other finds its rows (before the lock both
    scored MSTL, and the leaderboard held a duplicate row)."""
    import multiprocessing

    from benchmark.results.leaderboard import Leaderboard

    spawn = multiprocessing.get_context("spawn")
    barrier, answers = spawn.Barrier(2), spawn.Queue()
    workers = [spawn.Process(target=_ensure_naive_on_m4, args=(data_dir, str(tmp_path / "r"), barrier, answers))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    got = sorted([answers.get(timeout=300), answers.get(timeout=300)])
    for worker in workers:
        worker.join(timeout=60)
    assert got == [[], ["naive"]]
    rows = Leaderboard(str(tmp_path / "r")).read(grid="evaluate-source", kind="source")
    assert list(rows["mode"]) == ["naive"] and len(rows) == 1


def test_the_fit_time_limit_is_a_setting():
    from benchmark.spec.errors import TlbenchError
    from benchmark.spec.settings import Settings

    assert Settings.from_env({}).baseline_fit_seconds == 60.0
    settings = Settings.from_env({"TLBENCH_BASELINE_FIT_SECONDS": "5"})
    assert settings.baseline_fit_seconds == 5.0
    assert Settings.from_env(settings.to_env()).baseline_fit_seconds == 5.0  # a worker gets it too
    with pytest.raises(TlbenchError, match="TLBENCH_BASELINE_FIT_SECONDS='soon' must be a number"):
        Settings.from_env({"TLBENCH_BASELINE_FIT_SECONDS": "soon"})
