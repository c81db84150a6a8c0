"""The ``ett_standard`` metric scale through the real cell path (``cells.train_and_evaluate``):
a tiny real ETTh1 cell per input normalisation is trained, forecast and scored, and its
``mse_z``/``mae_z`` are its original-scale errors on the protocol's z-scale (the training rows
[0, 8640)), whatever the model's normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.data.sources import load_source
from benchmark.run.cells import train_and_evaluate
from benchmark.spec.sections import DataSpec, ModelSpec, PretrainSpec, SplitSpec, TrainingSpec, TransferSpec
from benchmark.spec.tree import CellSpec

pytestmark = pytest.mark.usefixtures("single_threaded_eager")

ETTH1_OT = DataSpec("ett", {"file": "ETTh1", "column": "OT"})


def tiny_cell(normalisation: str) -> CellSpec:
    # 4 units, lookback 24, one epoch, every 48th test origin: a few seconds, but every stage of a real cell
    return CellSpec(grid="ett-scale-test", target=ETTH1_OT, target_size=240, mode="scratch", seed=0,
                    split=SplitSpec(protocol="ett_standard", lookback=24, horizon=24, test_stride=48),
                    model=ModelSpec(units=4, normalisation=normalisation),
                    training=TrainingSpec(max_epochs=1, batch_size=64), transfer=TransferSpec(),
                    pretrain=PretrainSpec())


@pytest.mark.parametrize("normalisation", ["last_value", "window", "global"])
def test_a_real_ett_standard_cell_is_scored_on_the_protocols_scale(normalisation, settings, data_dir):
    result = train_and_evaluate(tiny_cell(normalisation), settings, None)
    values = load_source(ETTH1_OT, data_dir, False)["y"].to_numpy()
    reference = values[:8640]  # the protocol's z-reference: the whole training part, not the 240 rows
    error = result.data.y_test_true - result.y_pred  # original scale
    assert result.data.y_test_true.shape == (60, 24)
    assert result.metrics["mse_z"] == pytest.approx(np.mean(error ** 2) / reference.var(), rel=1e-6)
    assert result.metrics["mae_z"] == pytest.approx(np.mean(np.abs(error)) / reference.std(), rel=1e-6)
    assert result.metrics["mse_z"] == pytest.approx(result.metrics["mse"] / reference.var(), rel=1e-6)
