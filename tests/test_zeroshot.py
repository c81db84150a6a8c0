"""Zero-shot transfer: a real ``zeroshot`` cell predicts exactly what the pretrained model predicts
on the target, scaled with the target's own training part, and trains nothing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmark.data.loading import load_data
from benchmark.data.splits import Scaler, source_arrays
from benchmark.models.pretrain import load_pretrained, pretrain_model, save_pretrained
from benchmark.models.regimes import predict
from benchmark.run.cells import train_and_evaluate
from benchmark.run.jobs import PretrainedRef
from benchmark.spec.sections import DataSpec, ModelSpec, PretrainSpec, SplitSpec, TrainingSpec, TransferSpec
from benchmark.spec.tree import CellSpec

LOOKBACK, TARGET_SIZE, TEST_SIZE, VAL_FRACTION = 24, 120, 48, 0.2
MODEL = ModelSpec(units=8)
M4_HOURLY = DataSpec("m4", {"group": "Hourly"})
ETTH1_OT = DataSpec("ett", {"file": "ETTh1", "column": "OT"})


pytestmark = pytest.mark.usefixtures("single_threaded_eager")


@pytest.fixture(scope="module", params=[1, 3], ids=["horizon1", "horizon3"])
def pretrained(request, tmp_path_factory, data_dir):
    """A tiny LSTM pretrained for one epoch on the last windows of 4 M4 Hourly series, saved."""
    from benchmark.spec.settings import Settings

    horizon = request.param
    root = tmp_path_factory.mktemp(f"zeroshot-h{horizon}")
    settings = Settings(data_dir=data_dir, results=str(root / "results"), mlflow_dir=root / "mlflow",
                        allow_download=False).resolved()
    arrays = source_arrays(load_data(M4_HOURLY, settings),
                           PretrainSpec(windows_per_series=40, max_series=4, sampling="last"),
                           LOOKBACK, horizon)
    model, _ = pretrain_model(MODEL, TrainingSpec(batch_size=256, max_epochs=1),
                              (arrays.x_train, arrays.y_train), (arrays.x_val, arrays.y_val),
                              (LOOKBACK, horizon), seed=0)
    path = root / "pretrained" / "model.keras"
    sha = save_pretrained(model, path)
    ref = PretrainedRef("tiny", str(path), sha, None, 1.0, False)
    return horizon, settings, ref


def zeroshot_cell(horizon: int) -> CellSpec:
    return CellSpec(grid="zeroshot-test", target=ETTH1_OT, target_size=TARGET_SIZE, mode="zeroshot", seed=0,
                    split=SplitSpec(lookback=LOOKBACK, horizon=horizon, test_size=TEST_SIZE,
                                    val_fraction=VAL_FRACTION),
                    model=MODEL, training=TrainingSpec(max_epochs=3), transfer=TransferSpec(),
                    pretrain=PretrainSpec())


def test_zeroshot_predicts_what_the_pretrained_model_predicts(pretrained, data_dir):
    horizon, settings, ref = pretrained
    result = train_and_evaluate(zeroshot_cell(horizon), settings, ref)

    # The expectation, built independently from the CSV: the target's layout is
    # [... | training part (96) | validation (24) | test (48)], and the scaler sees only the
    # training part.
    values = pd.read_csv(data_dir / "ett" / "ETTh1.csv")["OT"].to_numpy(dtype=np.float64)
    test_start = len(values) - TEST_SIZE
    history_start = test_start - TARGET_SIZE
    val_start = test_start - max(math.ceil(VAL_FRACTION * TARGET_SIZE), horizon)
    origins = np.arange(test_start, len(values) - horizon + 1)  # every target inside the test
    source_model = load_pretrained(ref.path, ref.sha256)

    def pretrained_forecast(scaler: Scaler) -> np.ndarray:
        scaled = scaler.transform(values)
        x_test = np.stack([scaled[t - LOOKBACK:t] for t in origins])[:, :, None]  # [n, lookback, 1]
        return scaler.inverse_transform(predict(source_model, x_test))  # [n, horizon]

    expected = pretrained_forecast(Scaler().fit(values[history_start:val_start]))

    assert result.y_pred.shape == (TEST_SIZE - horizon + 1, horizon) == expected.shape
    np.testing.assert_allclose(result.y_pred, expected, rtol=1e-6, atol=1e-9)
    truth = np.stack([values[t:t + horizon] for t in origins])
    np.testing.assert_array_equal(result.data.y_test_true, truth)

    # The scaler matters: one fitted on the whole history (validation included) gives other values.
    leaky = pretrained_forecast(Scaler().fit(values[history_start:test_start]))
    assert not np.allclose(result.y_pred, leaky, rtol=1e-4)


def test_zeroshot_trains_nothing(pretrained):
    horizon, settings, ref = pretrained
    result = train_and_evaluate(zeroshot_cell(horizon), settings, ref)
    fit = result.fit
    assert fit.epochs_run == 0 and fit.seconds == 0.0 and fit.best_epoch == 0
    assert fit.history == {"loss": [], "val_loss": []}
    assert result.params["trainable"] == 0 and result.params["non_trainable"] > 0
    assert all(np.isfinite(result.metrics[name]) for name in ("mae", "mse", "smape", "mase"))
