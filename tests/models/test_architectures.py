"""Structure of every registered architecture and head: layer names, shapes, parameter counts
(checked against closed-form formulas), unknown names, and safe-mode save/load."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.models import (
    ARCHITECTURES,
    HEADS,
    body_layer_names,
    build_model,
    param_counts,
)
from benchmark.models.layers import Rescale
from benchmark.models.regimes import predict
from benchmark.models.runtime import seed_everything
from benchmark.spec.errors import TlbenchError, UnknownNameError
from benchmark.spec.sections import ModelSpec

LOOKBACK, HORIZON = 8, 3


pytestmark = pytest.mark.usefixtures("single_threaded_eager")


def lstm_params(units: int, inputs: int) -> int:
    return 4 * (units * (inputs + units) + units)  # 4 gates: kernel, recurrent kernel, bias


def gru_params(units: int, inputs: int) -> int:
    return 3 * (units * (inputs + units) + 2 * units)  # reset_after=True: two biases per gate


# architecture -> (has a Conv1D in front, recurrent cell formula): the visible expectations
BODY_FORMULAS = {"lstm": (False, lstm_params), "gru": (False, gru_params),
                 "stacked_lstm": (False, lstm_params), "conv1d_lstm": (True, lstm_params)}
# linear forecaster -> its Dense(lookback -> horizon) body layers; no head (tests/models/test_linear.py)
LINEAR_BODIES = {"nlinear": 1, "dlinear": 2}


def expected_layer_params(spec: ModelSpec, n_features: int, horizon: int) -> dict[str, int]:
    """Parameters per weighted layer, from the spec alone."""
    counts, width, index = {}, n_features, 0
    if n_features > 1:  # the input projection Dense(1) in front of the single-channel body
        counts["input_projection"] = n_features + 1
        width = 1
    if spec.architecture in LINEAR_BODIES:  # lookback x horizon weights and horizon biases each
        return counts | {f"body_{i}": LOOKBACK * horizon + horizon
                         for i in range(LINEAR_BODIES[spec.architecture])}
    has_conv, cell = BODY_FORMULAS[spec.architecture]
    if has_conv:
        counts["body_0"] = spec.kernel_size * width * spec.conv_filters + spec.conv_filters
        width, index = spec.conv_filters, 1
    for _ in range(ARCHITECTURES.get(spec.architecture).n_layers(spec)):
        counts[f"body_{index}"] = cell(spec.units, width)
        width, index = spec.units, index + 1
    if spec.head == "recurrent":
        head_units = spec.head_units or spec.units
        counts["head_lstm"] = lstm_params(head_units, width)
        width = head_units
    elif spec.head_units:
        counts["head_hidden"] = width * spec.head_units + spec.head_units
        width = spec.head_units
    counts["head_output"] = width * horizon + horizon
    return counts


def test_every_architecture_is_covered_by_the_formulas():
    assert set(ARCHITECTURES) == set(BODY_FORMULAS) | set(LINEAR_BODIES), "add the new architecture to BODY_FORMULAS"
    assert set(HEADS) == {"dense", "recurrent"}


def test_default_lstm_matches_known_parameter_counts():
    model = build_model(ModelSpec(), lookback=24, n_features=1, horizon=1)
    assert body_layer_names(model) == ["body_0", "body_1"]
    assert model.get_layer("body_0").count_params() == 16_896
    assert model.get_layer("body_1").count_params() == 33_024
    assert model.get_layer("head_output").count_params() == 65
    assert param_counts(model) == {"trainable": 49_985, "non_trainable": 0, "total": 49_985}


@pytest.mark.parametrize("head", ["dense", "recurrent"])
@pytest.mark.parametrize("architecture", ARCHITECTURES.names())
def test_structure_and_parameter_counts(architecture, head):
    for params in ({}, dict(ARCHITECTURES.get(architecture).test_params)):  # defaults and tiny
        spec = ModelSpec(architecture=architecture, head=head, **params)
        model = build_model(spec, LOOKBACK, 2, HORIZON)  # 2 features: with the input projection
        assert model.input_shape == (None, LOOKBACK, 2)
        assert model.output_shape == (None, HORIZON)
        expected = expected_layer_params(spec, 2, HORIZON)
        actual = {layer.name: layer.count_params() for layer in model.layers if layer.weights}
        assert actual == expected
        assert param_counts(model)["total"] == sum(expected.values())
        names = [layer.name for layer in model.layers]
        assert names[0] == "inputs"
        # the default normalisation's window stage wraps the network: weightless layers first and last
        assert names[1:3] == ["norm_window", "input_projection"] and names[-1] == "norm_restore"
        # a linear forecaster's weightless steps carry its name (nlinear_add_last, dlinear_trend)
        assert all(n.startswith(("body_", "head_", f"{architecture}_")) for n in names[3:-1]), names
        body = body_layer_names(model)
        assert body == [f"body_{i}" for i in range(len(body))]
        # Every body recurrent layer returns sequences; only the last also returns its state.
        recurrent = [model.get_layer(n) for n in body if hasattr(model.get_layer(n), "return_state")]
        assert [layer.return_state for layer in recurrent] == ([False] * (len(recurrent) - 1) + [True]
                                                               if recurrent else [])  # linear: none
        assert all(layer.recurrent_dropout == 0 for layer in recurrent)  # keeps cuDNN


def test_depth_and_sunspots_recipe():
    assert ARCHITECTURES.get("stacked_lstm").default_layers == 3
    deeper = build_model(ModelSpec(architecture="stacked_lstm", units=8, layers=4), LOOKBACK, 1, 1)
    assert body_layer_names(deeper) == ["body_0", "body_1", "body_2", "body_3"]
    model = build_model(ModelSpec(architecture="conv1d_lstm", units=8, conv_filters=4, kernel_size=3),
                        LOOKBACK, 1, 1)
    conv = model.get_layer("body_0")
    assert type(conv).__name__ == "Conv1D" and conv.padding == "causal"
    assert conv.get_config()["activation"] == "relu"
    assert [type(model.get_layer(n)).__name__ for n in ("body_1", "body_2")] == ["LSTM", "LSTM"]
    rescale = model.get_layer("head_rescale")
    assert isinstance(rescale, Rescale) and rescale.scale == 1.0
    assert not any(type(layer).__name__ == "Lambda" for layer in model.layers)


def test_dense_head_hidden_layer():
    model = build_model(ModelSpec(units=8, head_units=5), LOOKBACK, 1, HORIZON)
    assert model.get_layer("head_hidden").units == 5


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UnknownNameError, match="Unknown architecture 'lstmm'. Known: conv1d_lstm, dlinear, "
                                               "gru, lstm, nlinear, stacked_lstm."):
        build_model(ModelSpec(architecture="lstmm"), LOOKBACK, 1, 1)
    with pytest.raises(UnknownNameError, match="Unknown head 'mlp'. Known: dense, recurrent."):
        build_model(ModelSpec(head="mlp"), LOOKBACK, 1, 1)
    with pytest.raises(TlbenchError, match="horizon must be a positive integer, got 0"):
        build_model(ModelSpec(), LOOKBACK, 1, 0)


def test_rescale_multiplies_and_serialises():
    layer = Rescale(400.0)
    assert np.allclose(np.asarray(layer(np.ones((2, 3), "float32"))), 400.0)
    assert Rescale.from_config(layer.get_config()).scale == 400.0


@pytest.mark.parametrize("architecture,head", [("conv1d_lstm", "dense"), ("gru", "recurrent")])
def test_safe_mode_round_trip(tmp_path, architecture, head):
    import keras

    seed_everything(0)
    spec = ModelSpec(architecture=architecture, head=head, **ARCHITECTURES.get(architecture).test_params)
    model = build_model(spec, LOOKBACK, 1, HORIZON)
    x = np.random.default_rng(0).normal(size=(5, LOOKBACK, 1)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    assert np.array_equal(predict(model, x), predict(loaded, x))
