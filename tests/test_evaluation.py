"""The M4 protocol reproduces the published M4 Hourly figures of the statistical benchmarks, and
scores a pretrained model (by file or registry reference) on its own source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark.forecasters.source import evaluate_source
from benchmark.spec.errors import DataError, TlbenchError, UnknownNameError
from benchmark.spec.sections import DataSpec

M4_HOURLY = DataSpec("m4", {"group": "Hourly"})


def test_seasonal_naive_reproduces_published_m4_hourly(data_dir):
    result = evaluate_source(M4_HOURLY, "seasonal_naive", data_dir, allow_download=False)
    assert result["n_series"] == 414 and result["horizon"] == 48
    assert round(result["smape"], 3) == 13.912
    assert round(result["mase"], 3) == 1.193
    # Naive2, computed alongside: the published 18.383 and 2.395
    assert round(result["smape_naive2"], 3) == 18.383
    assert round(result["mase_naive2"], 3) == 2.395
    # OWA from those: 0.5 * (13.912 / 18.383 + 1.193 / 2.395)
    assert result["owa"] == pytest.approx(0.6275, abs=5e-4)


def test_naive_and_naive2_published_m4_hourly(data_dir):
    naive = evaluate_source(M4_HOURLY, "naive", data_dir, allow_download=False)
    assert (round(naive["smape"], 3), round(naive["mase"], 3)) == (43.003, 11.608)
    naive2 = evaluate_source(M4_HOURLY, "naive2", data_dir, allow_download=False)
    assert (round(naive2["smape"], 3), round(naive2["mase"], 3)) == (18.383, 2.395)
    assert naive2["owa"] == pytest.approx(1.0)


def test_forecaster_callable_and_non_m4_source(tmp_path):
    sine = DataSpec("sine", {"length": 500, "period": 24, "noise": 0.0})
    by_name = evaluate_source(sine, "seasonal_naive", tmp_path)
    assert by_name["smape"] == pytest.approx(0.0, abs=1e-9)  # a clean sine repeats exactly

    def last_season(history, horizon):
        return np.resize(history[-24:], horizon)

    by_callable = evaluate_source(sine, "my_model", tmp_path, forecaster=last_season)
    assert by_callable["method"] == "my_model" and by_callable["source"] == "sine(n=500,p=24)"
    assert by_callable["smape"] == pytest.approx(by_name["smape"], abs=1e-12)
    with pytest.raises(ValueError, match="returned 3 values for series sine, expected horizon 48"):
        evaluate_source(sine, "bad", tmp_path, forecaster=lambda history, horizon: history[:3])


def test_unknown_method_lists_baselines(tmp_path):
    with pytest.raises(UnknownNameError, match="Unknown baseline 'prophet'. Known: arima, ets, mean, mstl, mstl_every_origin, naive"):
        evaluate_source(DataSpec("sine", {}), "prophet", tmp_path)


# --------------------------------------------------------------------------- a model as forecaster


def season_copy_model(model_horizon: int, lookback: int = 24):
    """A linear model whose output j is input ``j % 24``: the value one day before the target, so
    chained recursively or directly it is exactly seasonal naive (period 24)."""
    import keras

    inputs = keras.Input((lookback, 1))
    dense = keras.layers.Dense(model_horizon, use_bias=False)
    outputs = dense(keras.layers.Flatten()(inputs))  # [B, lookback, 1] -> [B, lookback] -> [B, H]
    weights = np.zeros((lookback, model_horizon), dtype="float32")
    weights[np.arange(model_horizon) % 24 + (lookback - 24), np.arange(model_horizon)] = 1.0
    dense.set_weights([weights])
    return keras.Model(inputs, outputs, name=f"season_copy_h{model_horizon}")


@pytest.mark.parametrize("model_horizon, strategy", [(1, "recursive (48 x 1-step)"),
                                                     (5, "recursive (10 x 5-step)"),
                                                     (48, "direct (48-step model)"),
                                                     (60, "direct (60-step model)")])
def test_model_forecaster_chains_to_seasonal_naive(data_dir, model_horizon, strategy):
    from benchmark.forecasters.trained import ModelForecaster

    forecaster = ModelForecaster(season_copy_model(model_horizon))
    assert forecaster.strategy(48) == f"{strategy}, lookback {forecaster.lookback}, normalisation global"
    result = evaluate_source(M4_HOURLY, "season_copy", data_dir, forecaster=forecaster,
                             allow_download=False)
    assert result["n_series"] == 414
    # scaled, forecast in float32, inverse-transformed: seasonal naive up to float32 rounding
    assert result["smape"] == pytest.approx(13.912273, abs=1e-3)
    assert result["mase"] == pytest.approx(1.193210, abs=1e-4)


def test_max_series_scores_the_first_series_against_their_own_naive2(data_dir):
    full = evaluate_source(M4_HOURLY, "seasonal_naive", data_dir, allow_download=False)
    few = evaluate_source(M4_HOURLY, "seasonal_naive", data_dir, allow_download=False, max_series=5)
    assert few["n_series"] == 5 and few["smape"] != pytest.approx(full["smape"])
    assert few["owa"] == pytest.approx(0.5 * (few["smape"] / few["smape_naive2"]
                                              + few["mase"] / few["mase_naive2"]))
    with pytest.raises(TlbenchError, match="max_series must be at least 1, got 0"):
        evaluate_source(M4_HOURLY, "seasonal_naive", data_dir, allow_download=False, max_series=0)


def test_model_forecaster_rejects_what_it_cannot_forecast():
    import keras

    from benchmark.forecasters.trained import ModelForecaster

    inputs = keras.Input((24, 2))
    two_features = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)), name="two")
    with pytest.raises(TlbenchError, match=r"model 'two' maps \(None, 24, 2\) -> \(None, 1\)"):
        ModelForecaster(two_features)
    with pytest.raises(DataError, match="1 series .* 10 points.* shorter than the model's lookback 24"):
        ModelForecaster(season_copy_model(1)).forecast_batch([np.arange(30.0), np.arange(10.0)], 48)


# --------------------------------------------------------------------------- a pretrained model, end to end


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, data_dir):
    """A tiny LSTM (8 units, 1 epoch, 4 M4 series) pretrained, cached and registered by the real
    code path, in a fresh MLflow SQLite store."""
    from benchmark.models.runtime import configure_threads
    from benchmark.run.jobs import PretrainJob, RunContext
    from benchmark.run.pretraining import run_pretraining
    from benchmark.spec.sections import ModelSpec, PretrainSpec, TrainingSpec
    from benchmark.spec.settings import Settings
    from benchmark.tracking.tracker import Tracker

    configure_threads(1, 1)
    root = tmp_path_factory.mktemp("evaluate-source")
    settings = Settings(data_dir=data_dir, results=str(root / "results"), mlflow_dir=root / "mlflow",
                        allow_download=False).resolved()
    Tracker(settings, "tlbench-test").ensure_store()
    context = RunContext("test", "gid", "run", "2024-05-01", "tlbench-test", None, None)
    pretrain = PretrainSpec(max_series=4, windows_per_series=40,
                            training=TrainingSpec(batch_size=256, max_epochs=1))
    ref = run_pretraining(PretrainJob("tinykey", ModelSpec(units=8), pretrain, 24, 1, context), settings)
    return settings, ref


def cli(capsys, settings, *args):
    from benchmark.cli import main

    code = main(["evaluate-source", "--data-dir", str(settings.data_dir), "--results", settings.results,
                 "--tracking-uri", settings.tracking_uri, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_evaluate_source_scores_a_registered_model_and_records_it(capsys, pretrained):
    import json

    from benchmark.forecasters.trained import ModelForecaster
    from benchmark.models.pretrain import load_pretrained
    from benchmark.tracking.tracker import Tracker

    settings, ref = pretrained
    code, out, err = cli(capsys, settings, "--model", "models:/pretrained-lstm-m4-hourly@current", "--json")
    assert code == 0, err
    report = json.loads(out)
    model = report["model"]
    assert model["method"] == "models:/pretrained-lstm-m4-hourly/1" and model["n_series"] == 414
    assert model["strategy"] == "recursive (48 x 1-step), lookback 24, normalisation last_value" and model["mlflow_run_id"] == ref.mlflow_run_id
    assert [row["method"] for row in report["baselines"]] == ["seasonal_naive", "naive2"]
    assert round(report["baselines"][0]["smape"], 3) == 13.912

    # the same figures as the library, on the cached file, and on the pretraining run
    direct = evaluate_source(M4_HOURLY, "tiny", settings.data_dir, allow_download=False,
                             forecaster=ModelForecaster(load_pretrained(ref.path, ref.sha256)))
    for key in ("smape", "mase", "owa"):
        assert model[key] == pytest.approx(direct[key], rel=1e-9)
    run = Tracker(settings, "tlbench-test").get_run(ref.mlflow_run_id)
    assert {name: run.data.metrics[name] for name in ("m4_smape", "m4_mase", "m4_owa")} == \
        pytest.approx({"m4_smape": model["smape"], "m4_mase": model["mase"], "m4_owa": model["owa"]})
    assert run.data.tags["m4_eval"] == "m4/Hourly 48-step test, 414 series, recursive (48 x 1-step), lookback 24, normalisation last_value"
    assert model["smape"] > 0 and model["owa"] > 0
    # and as leaderboard rows of kind 'source', next to seasonal naive and Naive2 (issue #16)
    from benchmark.results.leaderboard import Leaderboard

    rows = Leaderboard(settings.results).read(kind="source", grid="evaluate-source")
    assert sorted(rows["mode"]) == ["naive2", "pretrained", "seasonal_naive"]
    body = rows.loc[rows["mode"] == "pretrained"].iloc[0]
    assert body["owa"] == pytest.approx(model["owa"]) and body["architecture"] == "lstm"


def test_evaluate_source_on_the_cached_file_prints_a_table(capsys, pretrained):
    settings, ref = pretrained
    folder = str(Path(ref.path).parent)
    code, out, err = cli(capsys, settings, "--model", folder)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "m4-hourly: M4 protocol, 48-step test of 414 series (OWA relative to naive2)"
    assert lines[1].lstrip().startswith(f"{ref.path} [recursive (48 x 1-step), lookback 24, normalisation last_value]")
    assert "seasonal_naive" in lines[2] and "sMAPE 13.912  MASE 1.193  OWA 0.628" in lines[2]
    assert "naive2" in lines[3] and "sMAPE 18.383  MASE 2.395  OWA 1.000" in lines[3]
    assert lines[4] == (f"recorded m4_smape, m4_mase, m4_owa on MLflow run {ref.mlflow_run_id}; leaderboard "
                        f"rows of kind 'source' in {settings.results}")

    code, out, err = cli(capsys, settings, "--model", ref.path, "--max-series", "3")
    assert code == 0, err
    assert "48-step test of 3 series" in out
    assert "not recorded in MLflow: --max-series 3 scores a subset" in out


def test_evaluate_source_model_errors(capsys, pretrained, tmp_path):
    settings, ref = pretrained
    code, _, err = cli(capsys, settings, "--model", "pretrained-lstm-m4-hourly@champion")
    assert code == 2
    assert "pretrained model 'pretrained-lstm-m4-hourly' has no version or alias 'champion'" in err
    code, _, err = cli(capsys, settings, "--model", "models:/no-such-model/1")
    assert code == 2 and "'no-such-model' has no version or alias '1'" in err

    broken = tmp_path / "model.keras"
    data = bytearray(Path(ref.path).read_bytes())
    broken.write_bytes(bytes(data[: len(data) // 2]))
    (tmp_path / "meta.json").write_text(Path(ref.path).with_name("meta.json").read_text())
    code, _, err = cli(capsys, settings, "--model", str(broken))
    assert code == 2 and f"pretrained model {broken} is corrupted" in err
