"""Pretraining and the pretrained artefact: atomic save, checksum, safe-mode load."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.models.pretrain import load_pretrained, pretrain_model, save_pretrained
from benchmark.models.regimes import predict
from benchmark.spec.errors import TlbenchError
from benchmark.spec.sections import ModelSpec, TrainingSpec

LOOKBACK, HORIZON = 8, 2


pytestmark = pytest.mark.usefixtures("single_threaded_eager")


def sine_windows(n_points: int):
    """``sin(t / 4)`` cut into windows: x [n, LOOKBACK, 1], y [n, HORIZON]."""
    series = np.sin(np.arange(n_points) / 4.0).astype("float32")
    windows = np.lib.stride_tricks.sliding_window_view(series, LOOKBACK + HORIZON)
    return windows[:, :LOOKBACK, None].copy(), windows[:, LOOKBACK:].copy()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny conv1d_lstm (it has the custom Rescale layer) pretrained for one epoch and saved."""
    x, y = sine_windows(200)
    spec = ModelSpec(architecture="conv1d_lstm", units=8, conv_filters=4, kernel_size=3)
    model, result = pretrain_model(spec, TrainingSpec(batch_size=256, max_epochs=1), (x[:150], y[:150]),
                                   (x[150:], y[150:]), (LOOKBACK, HORIZON), seed=0)
    path = tmp_path_factory.mktemp("pretrained") / "model.keras"
    sha = save_pretrained(model, path)
    return model, result, path, sha, x


def test_pretrain_trains_every_layer(saved):
    model, result, *_ = saved
    assert result.epochs_run == 1 and np.isfinite(result.history["val_loss"]).all()
    assert all(layer.trainable for layer in model.layers)


def test_save_load_gives_identical_predictions(saved):
    model, _, path, sha, x = saved
    assert len(sha) == 64
    assert path.with_name("model.keras.sha256").read_text() == f"{sha}  model.keras\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.keras", "model.keras.sha256"]
    for loaded in (load_pretrained(path, sha), load_pretrained(path)):  # pinned, then from the sidecar
        assert np.array_equal(predict(loaded, x), predict(model, x))


def test_corrupted_file_is_detected_by_checksum(saved, tmp_path):
    _, _, path, sha, _ = saved
    broken = tmp_path / "model.keras"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4] = bytes(b ^ 0xFF for b in data[middle:middle + 4])
    broken.write_bytes(bytes(data))
    with pytest.raises(TlbenchError, match="is corrupted: its sha256 is .* It will not be loaded. "
                                           "The next `tlbench run` pretrains it again"):
        load_pretrained(broken, sha)
    with pytest.raises(TlbenchError, match="has no checksum file model.keras.sha256"):
        load_pretrained(broken)
    with pytest.raises(TlbenchError, match="is missing"):
        load_pretrained(tmp_path / "absent.keras", sha)


def test_bad_inputs_are_reported(tmp_path, saved):
    x, y = sine_windows(50)
    with pytest.raises(TlbenchError, match=r"expected \(n, 8, n_features\) and \(n, 3\)"):
        pretrain_model(ModelSpec(units=8), TrainingSpec(), (x, y), (x, y), (LOOKBACK, 3), seed=0)
    with pytest.raises(TlbenchError, match="must end with .keras"):
        save_pretrained(saved[0], tmp_path / "model.h5")
