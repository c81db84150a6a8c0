"""The feature-count rule: a multi-feature target reaches a single-feature pretrained body through
a trainable input projection that starts as "take the target" and is never frozen."""

from __future__ import annotations

import numpy as np

from benchmark.models import TRANSFER_MODES, build_model, param_counts, prepare_for_mode
from benchmark.models.architectures import INPUT_PROJECTION
from benchmark.models.runtime import configure_threads, seed_everything
from benchmark.models.training import train_for_mode
from benchmark.spec.sections import ModelSpec, TrainingSpec, TransferSpec

SPEC = ModelSpec(architecture="gru", units=8)
LOOKBACK, HORIZON = 8, 1


def test_single_feature_body_loads_behind_a_pass_through_projection():
    configure_threads(1, 1)
    seed_everything(0)
    pretrained = build_model(SPEC, LOOKBACK, 1, HORIZON, name="pretrained")
    assert INPUT_PROJECTION not in [layer.name for layer in pretrained.layers]  # F = 1: none
    target = prepare_for_mode("frozen", SPEC, LOOKBACK, 3, HORIZON, pretrained)
    kernel, bias = target.get_layer(INPUT_PROJECTION).get_weights()
    np.testing.assert_array_equal(kernel, [[1.0], [0.0], [0.0]])
    np.testing.assert_array_equal(bias, [0.0])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, LOOKBACK, 3)).astype("float32")
    # starts out as the pretrained model on the target column (head weights copied for the check)
    target.get_layer("head_output").set_weights(pretrained.get_layer("head_output").get_weights())
    np.testing.assert_allclose(target.predict_on_batch(x), pretrained.predict_on_batch(x[..., :1]),
                               rtol=1e-5, atol=1e-6)

    y = x[:, -1, 1:2] + 0.5 * x[:, -2, 2:3]  # depends on the covariates, not the target
    fit = train_for_mode(target, TRANSFER_MODES.get("frozen"), (x, y), (x[:4], y[:4]),
                         TrainingSpec(learning_rate=1e-2, max_epochs=2, patience=5), TransferSpec())
    assert fit.epochs_run == 2
    assert target.get_layer(INPUT_PROJECTION).trainable and not target.get_layer("body_0").trainable
    assert not np.array_equal(target.get_layer(INPUT_PROJECTION).get_weights()[0], kernel)  # it learned
    for name in ("body_0", "body_1"):  # the frozen body is still the pretrained one
        for a, b in zip(target.get_layer(name).get_weights(), pretrained.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert param_counts(target)["trainable"] == 3 + 1 + 8 + 1  # projection + head only


def test_every_mode_of_a_cell_builds_the_same_network_with_features():
    pretrained = build_model(SPEC, LOOKBACK, 1, HORIZON, name="pretrained")
    shapes = {mode: [tuple(w.shape) for w in prepare_for_mode(mode, SPEC, LOOKBACK, 4, HORIZON, pretrained).weights]
              for mode in ("scratch", "frozen", "finetune")}
    assert shapes["scratch"] == shapes["frozen"] == shapes["finetune"]
