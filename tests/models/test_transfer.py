"""The contract of every architecture x every transfer mode, and the freezing/loading rules.

One parametrised test trains each (architecture, mode) for one epoch on a tiny sine series and
checks the output shape, finite losses, parameter counts, an architecture identical across modes,
and the mode's semantics: layers frozen in every phase stay bit-identical to what was loaded,
every other layer changes, loaded layers equal the pretrained ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.models import (
    ARCHITECTURES,
    TRANSFER_MODES,
    Phase,
    body_layer_names,
    build_model,
    param_counts,
    prepare_for_mode,
)
from benchmark.models.compile import compile_model
from benchmark.models.regimes import predict
from benchmark.models.runtime import seed_everything
from benchmark.models.training import train_for_mode
from benchmark.models.transfer import apply_freezing, frozen_layer_names, load_pretrained_weights
from benchmark.spec.errors import TlbenchError, UnknownNameError
from benchmark.spec.sections import ModelSpec, TrainingSpec, TransferSpec

LOOKBACK, HORIZON = 8, 2
TRAINING = TrainingSpec(learning_rate=1e-2, batch_size=256, max_epochs=1, patience=3)  # one batch per epoch
TRANSFER = TransferSpec(partial_frozen_layers=1)


pytestmark = pytest.mark.usefixtures("single_threaded_eager")


def sine_windows(n_points: int, lookback: int = LOOKBACK, horizon: int = HORIZON):
    """``sin(t / 4)`` cut into windows: x [n, lookback, 1], y [n, horizon]."""
    series = np.sin(np.arange(n_points) / 4.0).astype("float32")
    windows = np.lib.stride_tricks.sliding_window_view(series, lookback + horizon)
    return windows[:, :lookback, None].copy(), windows[:, lookback:].copy()


@pytest.fixture(scope="module")
def data():
    x, y = sine_windows(240)
    return (x[:160], y[:160]), (x[160:], y[160:])


def tiny_spec(architecture: str) -> ModelSpec:
    return ModelSpec(architecture=architecture, **ARCHITECTURES.get(architecture).test_params)


@pytest.fixture(scope="module")
def pretrained():
    """One 'pretrained' model per architecture: built under another seed, so its weights differ
    from every cell's initialisation (the weights' provenance does not matter to these tests)."""
    seed_everything(1234)
    return {name: build_model(tiny_spec(name), LOOKBACK, 1, HORIZON, name=f"pretrained_{name}")
            for name in ARCHITECTURES}


@pytest.fixture(scope="module")
def reference_signatures(pretrained):
    """Layer names, classes and weight shapes of each architecture: every mode must match them."""
    return {name: signature(model) for name, model in pretrained.items()}


def signature(model) -> list:
    return [(layer.name, type(layer).__name__, [tuple(w.shape) for w in layer.weights])
            for layer in model.layers]


def layer_weights(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("mode_name", TRANSFER_MODES.names())
@pytest.mark.parametrize("architecture", ARCHITECTURES.names())
def test_contract(architecture, mode_name, data, pretrained, reference_signatures):
    train, val = data
    spec, mode, source = tiny_spec(architecture), TRANSFER_MODES.get(mode_name), pretrained[architecture]
    refusal = ARCHITECTURES.get(architecture).refusal(mode_name)
    if refusal:  # e.g. frozen for a linear forecaster: refused with the reason and the fix, not skipped
        assert "nothing to train" in refusal or "no stack of body layers" in refusal
        with pytest.raises(TlbenchError, match=f"architecture '{architecture}' cannot use transfer mode "
                                               f"'{mode_name}': .*use finetune or zeroshot"):
            prepare_for_mode(mode_name, spec, LOOKBACK, 1, HORIZON, source)
        return
    seed_everything(0)
    model = prepare_for_mode(mode_name, spec, LOOKBACK, 1, HORIZON, source if mode.load_body else None)
    assert signature(model) == reference_signatures[architecture]  # the same in every mode

    loaded = layer_weights(model)
    source_weights = layer_weights(source)
    for name, values in loaded.items():
        is_loaded = mode.load_body and (name.startswith("body_") or mode.load_head or mode.start_from_head)
        assert same(values, source_weights[name]) == is_loaded, f"{name}: loaded={is_loaded}"

    result = train_for_mode(model, mode, train, val, TRAINING, TRANSFER)
    prediction = predict(model, val[0])
    assert prediction.shape == (len(val[0]), HORIZON)
    assert np.isfinite(prediction).all()

    phases = mode.resolved_phases(TRANSFER)
    assert len(result.phases) == len(phases)
    assert result.epochs_run == len(phases) * TRAINING.max_epochs == len(result.history["loss"])
    assert len(result.history["val_loss"]) == result.epochs_run
    assert np.isfinite(result.history["loss"] + result.history["val_loss"]).all()
    if not phases:  # zeroshot: the pretrained model as is
        assert result.seconds == 0 and result.best_epoch == 0
        assert np.array_equal(prediction, predict(source, val[0]))
        assert np.isfinite(np.mean((prediction - val[1]) ** 2))

    # Layers frozen in every phase are bit-identical to what was loaded; all others trained.
    frozen_always = (set.intersection(*(set(p["frozen_layers"]) for p in result.phases))
                     if result.phases else set(loaded))
    after = layer_weights(model)
    for name in loaded:
        assert same(after[name], loaded[name]) == (name in frozen_always), name

    expected_frozen = result.phases[-1]["frozen_layers"] if result.phases else list(loaded)
    frozen_params = sum(model.get_layer(n).count_params() for n in expected_frozen)
    counts = param_counts(model)
    assert counts["non_trainable"] == frozen_params
    assert counts["trainable"] == counts["total"] - frozen_params
    assert counts["total"] == model.count_params()


def test_modes_declare_what_they_do():
    assert set(TRANSFER_MODES) == {"scratch", "frozen", "finetune", "lp_ft", "partial", "zeroshot", "ft_from_head"}
    assert not TRANSFER_MODES.get("scratch").load_body
    assert TRANSFER_MODES.get("zeroshot").phases == () and TRANSFER_MODES.get("zeroshot").load_head
    phases = TRANSFER_MODES.get("lp_ft").resolved_phases(
        TransferSpec(probe_epochs_fraction=0.3, finetune_lr_factor=0.1))
    assert phases == (Phase("body", 0.3, 1.0), Phase("none", 0.7, 0.1))
    # the new mode is the only one that starts from the head, keeps its start or reads body_lr_factor
    head = TRANSFER_MODES.get("ft_from_head")
    assert head.load_body and head.start_from_head and head.keep_start and not head.load_head
    assert head.resolved_phases(TransferSpec(body_lr_factor=0.25)) == (Phase("none", 1.0, 1.0, 0.25),)
    assert head.resolved_phases(TransferSpec()) == (Phase("none", 1.0, 1.0, 0.1),)
    others = [TRANSFER_MODES.get(name) for name in TRANSFER_MODES if name != "ft_from_head"]
    assert not any(m.start_from_head or m.keep_start for m in others)
    assert all(p.body_lr_factor == 1.0 for m in others for p in m.resolved_phases(TransferSpec(body_lr_factor=0.5)))


def test_ft_from_head_starts_from_the_heads_first_outputs(data):
    """A body pretrained for 6 steps, a cell of 2: the model has scratch's shapes and, before any
    training, forecasts exactly the body's first 2 outputs (the zero-shot forecast); its start
    score is the zero-shot validation score. A cell of 8 steps gets a fresh head on the body."""
    train, val = data
    spec = tiny_spec("lstm")
    seed_everything(7)
    source = build_model(spec, LOOKBACK, 1, 6, name="body_for_6")
    seed_everything(0)
    model = prepare_for_mode("ft_from_head", spec, LOOKBACK, 1, HORIZON, source)
    assert signature(model) == signature(build_model(spec, LOOKBACK, 1, HORIZON))  # scratch's shapes
    kernel, bias = model.get_layer("head_output").get_weights()
    source_kernel, source_bias = source.get_layer("head_output").get_weights()
    assert np.array_equal(kernel, source_kernel[:, :HORIZON]) and np.array_equal(bias, source_bias[:HORIZON])
    zeroshot = prepare_for_mode("zeroshot", spec, LOOKBACK, 1, HORIZON, source)
    start = predict(model, val[0])
    np.testing.assert_allclose(start, predict(source, val[0])[:, :HORIZON], rtol=0, atol=1e-6)
    np.testing.assert_allclose(start, predict(zeroshot, val[0]), rtol=0, atol=1e-6)

    result = train_for_mode(model, TRANSFER_MODES.get("ft_from_head"), train, val, TRAINING, TransferSpec())
    assert result.start_loss == pytest.approx(float(np.mean((predict(zeroshot, val[0]) - val[1]) ** 2)), rel=1e-5)
    assert result.phases[0]["body_lr_factor"] == 0.1
    assert model.optimizer.layer_lr_factors == {"body_0": 0.1, "body_1": 0.1}

    longer = prepare_for_mode("ft_from_head", spec, LOOKBACK, 1, 8, source)  # 8 > 6: a fresh head
    assert longer.get_layer("head_output").get_weights()[0].shape == (spec.units, 8)
    for name in body_layer_names(longer):
        assert same(longer.get_layer(name).get_weights(), source.get_layer(name).get_weights())
    recurrent = prepare_for_mode("ft_from_head", ModelSpec(units=8, head="recurrent"), LOOKBACK, 1, HORIZON, source)
    assert not same(recurrent.get_layer("head_output").get_weights(), [kernel, bias])  # another kind: fresh


def one_step_moves(factor: float, training: TrainingSpec, spec: ModelSpec, start: list, batch) -> dict:
    """How far each layer's weights move in one optimizer step on ``batch`` from ``start`` with the
    body at ``factor`` x the rate (the production path: apply_freezing's recompile)."""
    model = build_model(spec, LOOKBACK, 1, HORIZON)
    model.set_weights(start)
    before = layer_weights(model)
    apply_freezing(model, [], training, training.learning_rate, body_lr_factor=factor)
    model.train_on_batch(*batch)
    after = layer_weights(model)
    return {name: [a - b for a, b in zip(after[name], before[name])] for name in before}


@pytest.mark.parametrize("optimizer,rate,eager,factors", [("adam", 1e-2, True, (1.0, 0.1, 0.0)),
                                                         ("adam", 1e-2, False, (1.0, 0.1)),
                                                         ("sgd", 1.0, True, (1.0, 0.1, 0.0))])
def test_body_lr_factor_scales_the_bodys_steps_and_not_the_heads(data, optimizer, rate, eager, factors):
    """Keras 3 has no per-variable rate: the optimiser twin scales the rate per layer. After one
    step from the same weights on the same batch, the body moves factor x what it moves at factor
    1 (0: not at all) and the head moves the same, eager and in the compiled (graph) path."""
    import tensorflow as tf

    spec = ModelSpec(units=8, layers=1)
    seed_everything(0)
    start = build_model(spec, LOOKBACK, 1, HORIZON).get_weights()
    batch = (data[0][0][:64], data[0][1][:64])
    tf.config.run_functions_eagerly(eager)
    try:
        moves = {factor: one_step_moves(factor, TrainingSpec(optimizer=optimizer, learning_rate=rate), spec,
                                        start, batch) for factor in factors}
    finally:
        tf.config.run_functions_eagerly(True)
    assert min(np.abs(m).max() for m in moves[1.0]["body_0"]) > 1e-3  # the body does move at factor 1
    # weights are float32 near 1: a difference of two of them is exact to about 1e-7
    for full, tenth in zip(moves[1.0]["body_0"], moves[0.1]["body_0"]):
        np.testing.assert_allclose(tenth, 0.1 * full, rtol=1e-3, atol=2e-7)
    if 0.0 in moves:
        assert not any(m.any() for m in moves[0.0]["body_0"])
    for factor in factors[1:]:
        for a, b in zip(moves[factor]["head_output"], moves[1.0]["head_output"]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-7)


def test_a_model_compiled_with_layer_rates_saves_and_loads(tmp_path, data):
    import keras

    model = build_model(ModelSpec(units=8, layers=1), LOOKBACK, 1, HORIZON)
    apply_freezing(model, [], TRAINING, 1e-3, body_lr_factor=0.1)
    model.train_on_batch(*data[0])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.optimizer).__name__ == "LayerRatesAdam"
    assert loaded.optimizer.layer_lr_factors == {"body_0": 0.1}
    assert np.array_equal(predict(loaded, data[1][0]), predict(model, data[1][0]))
    with pytest.raises(TlbenchError, match=r"layer 'body_9' is not in model .*; layer 'body_0' has factor -1"):
        compile_model(model, TRAINING, layer_lr_factors={"body_9": 1.0, "body_0": -1.0})


def test_partial_freezes_exactly_the_first_k(pretrained):
    model = prepare_for_mode("partial", tiny_spec("stacked_lstm"), LOOKBACK, 1, HORIZON,
                             pretrained["stacked_lstm"])
    phase = TRANSFER_MODES.get("partial").phases[0]
    for k in range(4):
        assert frozen_layer_names(model, phase, TransferSpec(partial_frozen_layers=k)) == \
            ["body_0", "body_1", "body_2"][:k]
    apply_freezing(model, ["body_0", "body_1"], TRAINING, 1e-3)
    assert [layer.trainable for layer in model.layers if layer.weights] == [False, False, True, True]
    with pytest.raises(TlbenchError, match="partial_frozen_layers=4, but model .* has 3 body layers"):
        frozen_layer_names(model, phase, TransferSpec(partial_frozen_layers=4))
    with pytest.raises(TlbenchError, match="cannot freeze body_9"):
        apply_freezing(model, ["body_9"], TRAINING, 1e-3)


def test_unfreezing_without_recompiling_is_the_trap_we_avoid(data):
    """Raw Keras: unfreeze after a frozen fit without recompiling and the fit raises (eager) or
    silently keeps the body frozen (graph). lp_ft goes through apply_freezing, which recompiles."""
    train, val = data
    seed_everything(0)
    model = build_model(tiny_spec("lstm"), LOOKBACK, 1, HORIZON)
    for name in body_layer_names(model):
        model.get_layer(name).trainable = False
    compile_model(model, TRAINING)
    model.fit(*train, epochs=1, verbose=0)
    for layer in model.layers:
        layer.trainable = True
    with pytest.raises(ValueError, match="Unknown variable"):
        model.fit(*train, epochs=1, verbose=0)


def test_lp_ft_recompiles_in_graph_mode(data):
    """In graph mode a missed recompile would not raise: the body would silently stay frozen. Show
    that lp_ft's second phase really trains the body, in the compiled (production) path."""
    import tensorflow as tf

    train, val = data
    spec = ModelSpec(units=8, layers=1)  # one body layer: graph tracing is the cost here
    seed_everything(1)
    source = build_model(spec, LOOKBACK, 1, HORIZON)
    seed_everything(0)
    model = prepare_for_mode("lp_ft", spec, LOOKBACK, 1, HORIZON, source)
    snapshots = []  # body weights after each epoch, before any best-weights restore
    tf.config.run_functions_eagerly(False)
    try:
        result = train_for_mode(model, TRANSFER_MODES.get("lp_ft"), train, val, TRAINING, TRANSFER,
                                on_epoch_end=lambda epoch, logs: snapshots.append(
                                    model.get_layer("body_0").get_weights()))
    finally:
        tf.config.run_functions_eagerly(True)
    assert [p["frozen_layers"] for p in result.phases] == [["body_0"], []]
    assert [p["learning_rate"] for p in result.phases] == pytest.approx([1e-2, 1e-3])
    assert same(snapshots[0], source.get_layer("body_0").get_weights())  # phase 1: probe only
    assert not same(snapshots[1], snapshots[0])  # phase 2: the body trains


def test_loading_checks_that_specs_match(pretrained):
    source = pretrained["lstm"]
    wider = build_model(ModelSpec(units=16), LOOKBACK, 1, HORIZON)
    with pytest.raises(TlbenchError, match=r"layer 'body_0': pretrained weight shapes \[\(1, 32\).*"
                                           r"!= target shapes \[\(1, 64\).*specs must match"):
        load_pretrained_weights(wider, source)
    # Two features reach the one-channel body through the input projection, which is not copied.
    two_features = build_model(tiny_spec("lstm"), LOOKBACK, 2, HORIZON)
    assert load_pretrained_weights(two_features, source) == ["body_0", "body_1"]
    with pytest.raises(TlbenchError, match="pretrained is GRU, target is LSTM"):
        load_pretrained_weights(build_model(tiny_spec("lstm"), LOOKBACK, 1, HORIZON), pretrained["gru"])
    with pytest.raises(TlbenchError, match=r"has body layers \['body_0', 'body_1'\], target .* has "
                                           r"\['body_0', 'body_1', 'body_2'\]"):
        load_pretrained_weights(build_model(tiny_spec("stacked_lstm"), LOOKBACK, 1, HORIZON), source)
    # The lookback does not enter the weights: a body pretrained on 8 steps loads for 16.
    longer = build_model(tiny_spec("lstm"), 16, 1, HORIZON)
    assert load_pretrained_weights(longer, source) == ["body_0", "body_1"]


def test_loading_never_shares_layers_or_flags(pretrained):
    source = pretrained["lstm"]
    model = prepare_for_mode("frozen", tiny_spec("lstm"), LOOKBACK, 1, HORIZON, source)
    apply_freezing(model, body_layer_names(model), TRAINING, 1e-3)
    assert all(layer.trainable for layer in source.layers)
    source_ids = {id(v) for v in source.weights}
    assert not any(id(v) in source_ids for v in model.weights)


def test_mode_errors():
    with pytest.raises(TlbenchError, match="mode 'frozen' loads a pretrained body, but no pretrained"):
        prepare_for_mode("frozen", tiny_spec("lstm"), LOOKBACK, 1, HORIZON, None)
    with pytest.raises(UnknownNameError, match="Unknown transfer mode 'lpft'. Known: finetune, frozen"):
        prepare_for_mode("lpft", tiny_spec("lstm"), LOOKBACK, 1, HORIZON, None)
