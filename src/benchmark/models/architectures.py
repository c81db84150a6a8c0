"""The architecture zoo: recurrent bodies, the one model builder, and layer bookkeeping.

An :class:`Architecture` builds a *body* (``body_0``, ``body_1``, ... in order) from a
:class:`~benchmark.spec.sections.ModelSpec`; :func:`build_model` puts a registered head on it. Every
model obeys one contract, uncompiled: ``[batch, lookback, n_features] -> [batch, horizon]``.

The last recurrent body layer returns its full sequence *and* its final state, so one body serves
both heads (``dense`` reads the state, ``recurrent`` the sequence) and a pretrained body loads into
a target whatever its head. All earlier recurrent layers return sequences.

Two options of :func:`build_model` keep the body's weights the same shapes, so a pretrained body
loads unchanged (docs/models.md):

* ``n_features > 1``: a trainable ``Dense(1)`` named ``input_projection`` maps the ``F`` inputs to
  the one channel the body was pretrained on, initialised to pass the target (input 0) through,
  so a transferred model starts out as the pretrained one. It is built for every mode of a cell
  (one network per cell) and is never frozen by the body rules.
* ``stateful=True``: a fixed batch of 1, a free time axis, every recurrent layer ``stateful``
  (state carried from one call to the next until ``reset_state``), for the stateful regime. Only architectures with
  ``stateful_capable`` (pure recurrent stacks) accept it.

A *window map* (:func:`register_window_map`; the linear forecasters of
:mod:`benchmark.models.linear`) is a whole forecaster ``[B, L, 1] -> [B, H]`` with no separate head:
all its weights are body layers, it needs a fixed lookback, and it may refuse transfer modes
(``refused_modes``) that :func:`benchmark.models.transfer.prepare_for_mode` and grid validation refuse.

Facts (``stateful_capable``, ``why_not_stateful``, ``refused_modes``, ``window_sized``) are declared
once, in :data:`benchmark.spec.catalog.ARCHITECTURES`: registering a name reads its entry there
(and refuses a name declared nowhere), so planning and building cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import keras
import numpy as np

from benchmark.data.normalisation import NORMALISATIONS
from benchmark.models.heads import HEADS
from benchmark.models.layers import Rescale, WindowDenorm, WindowNorm
from benchmark.spec import catalog
from benchmark.spec.catalog import ArchitectureFacts, declared
from benchmark.spec.errors import TlbenchError
from benchmark.spec.registry import Registry
from benchmark.spec.sections import ModelSpec

# (spec, inputs [B, L, F], stateful) -> (sequence_output [B, L, U], last_state_output [B, U])
BodyBuilder = Callable[[ModelSpec, Any, bool], tuple[Any, Any]]
# (spec, inputs [B, L, 1], horizon) -> outputs [B, horizon]: body and head in one (no HEADS entry)
WindowMapBuilder = Callable[[ModelSpec, Any, int], Any]

INPUT_PROJECTION = "input_projection"
WINDOW_NORM, WINDOW_RESTORE = "norm_window", "norm_restore"  # the window stage's layers

_BODY_NAME = re.compile(r"^body_(\d+)$")

_RNN_CUDNN = ("cuDNN on GPU only with tanh/sigmoid activations, recurrent_dropout=0, unroll=False "
              "and use_bias=True (all fixed here except recurrent_dropout)")


@dataclass(frozen=True)
class Architecture:
    """A registered body: its default depth, its builder, tiny test settings and cuDNN caveats.

    ``test_params`` are :class:`ModelSpec` overrides small enough for the contract test.
    ``output_scale``: when set, a :class:`~benchmark.models.layers.Rescale` named
    ``head_rescale`` multiplies the output (the Sunspots recipe; 1.0 on z-scored data).
    ``build_window_map``: set for a window map (then ``build_body`` is None). ``facts``: the
    catalogue's entry of the same name (:class:`~benchmark.spec.catalog.ArchitectureFacts`):
    ``stateful_capable`` (whether the stateful regime may use it; ``why_not_stateful`` says why
    not), ``refused_modes`` ((transfer mode, why not and the fix) pairs) and ``window_sized`` (the
    weights' shapes depend on lookback and horizon, so a pretrained model loads only with the
    cell's), read through the properties of the same names.
    """

    name: str
    default_layers: int
    build_body: BodyBuilder | None
    test_params: Mapping[str, Any] = field(default_factory=dict)
    cudnn_note: str = ""
    output_scale: float | None = None
    description: str = ""
    build_window_map: WindowMapBuilder | None = None
    facts: ArchitectureFacts = field(default_factory=ArchitectureFacts)

    @property
    def stateful_capable(self) -> bool:
        return self.facts.stateful_capable

    @property
    def why_not_stateful(self) -> str:
        return self.facts.why_not_stateful

    @property
    def refused_modes(self) -> tuple[tuple[str, str], ...]:
        return self.facts.refused_modes

    @property
    def window_sized(self) -> bool:
        return self.facts.window_sized

    def refusal(self, mode: str) -> str | None:
        """Why this architecture refuses transfer ``mode`` (None when it accepts it)."""
        return self.facts.refusal(self.name, mode)

    def n_layers(self, spec: ModelSpec) -> int:
        """Recurrent layers of the body: ``spec.layers`` or this architecture's default."""
        return self.default_layers if spec.layers is None else spec.layers


ARCHITECTURES: Registry[Architecture] = Registry(catalog.ARCHITECTURES.kind)


def register_architecture(name: str, *, default_layers: int, test_params: Mapping[str, Any],
                          cudnn_note: str, description: str,
                          output_scale: float | None = None) -> Callable[[BodyBuilder], BodyBuilder]:
    """Decorator: register a body builder as architecture ``name``, with the facts that
    :data:`benchmark.spec.catalog.ARCHITECTURES` declares for it."""
    facts = declared(catalog.ARCHITECTURES, name)

    def decorator(build_body: BodyBuilder) -> BodyBuilder:
        ARCHITECTURES.add(name, Architecture(name=name, default_layers=default_layers,
                                             build_body=build_body, test_params=dict(test_params),
                                             cudnn_note=cudnn_note, output_scale=output_scale,
                                             description=description, facts=facts))
        return build_body

    return decorator


def register_window_map(name: str, *, default_layers: int, test_params: Mapping[str, Any],
                        description: str) -> Callable[[WindowMapBuilder], WindowMapBuilder]:
    """Decorator: register a whole lookback -> horizon forecaster (no head, never stateful) as
    architecture ``name``; ``default_layers`` is its number of body layers. Its catalogue entry
    must say so (``window_sized``, not ``stateful_capable``)."""
    facts = declared(catalog.ARCHITECTURES, name)
    if facts.stateful_capable or not facts.window_sized:
        raise TlbenchError(f"window map {name!r}: its entry in benchmark.spec.catalog.ARCHITECTURES must "
                           "say window_sized=True and stateful_capable=False (it maps a fixed window "
                           f"and has no recurrent state), got {facts}.")

    def decorator(build: WindowMapBuilder) -> WindowMapBuilder:
        ARCHITECTURES.add(name, Architecture(name=name, default_layers=default_layers, build_body=None,
                                             test_params=dict(test_params), description=description,
                                             build_window_map=build, facts=facts))
        return build

    return decorator


def recurrent_stack(layer_class: type, spec: ModelSpec, x, n_layers: int, first_index: int = 0,
                    stateful: bool = False):
    """``n_layers`` recurrent layers named ``body_{first_index}``...; ``[B, L, F] -> ([B, L, U], [B, U])``.

    Dropout is the layers' input dropout (keeps cuDNN); ``recurrent_dropout > 0`` loses cuDNN.
    ``stateful`` only changes whether the state persists between calls, never the weights.
    """
    if n_layers < 1:
        raise TlbenchError(f"model.layers must be at least 1, got {n_layers}.")
    for i in range(n_layers):
        last = i == n_layers - 1
        layer = layer_class(spec.units, return_sequences=True, return_state=last,
                            dropout=spec.dropout, recurrent_dropout=spec.recurrent_dropout,
                            stateful=stateful, name=f"body_{first_index + i}")
        if not last:
            x = layer(x)  # [B, L, *] -> [B, L, U]
            continue
        # LSTM returns (sequence, h, c), GRU (sequence, h); h is the last step's output.
        sequence_output, last_state_output, *_ = layer(x)  # [B, L, U], [B, U]
        return sequence_output, last_state_output
    raise AssertionError("unreachable")


@register_architecture("lstm", default_layers=2, test_params={"units": 8},
                       cudnn_note=_RNN_CUDNN, description="stack of LSTM layers")
def lstm_body(spec: ModelSpec, inputs, stateful: bool = False):
    return recurrent_stack(keras.layers.LSTM, spec, inputs, ARCHITECTURES.get("lstm").n_layers(spec),
                           stateful=stateful)


@register_architecture("gru", default_layers=2, test_params={"units": 8},
                       cudnn_note=_RNN_CUDNN + "; GRU also needs reset_after=True (the default, kept)",
                       description="stack of GRU layers (reset_after=True)")
def gru_body(spec: ModelSpec, inputs, stateful: bool = False):
    return recurrent_stack(keras.layers.GRU, spec, inputs, ARCHITECTURES.get("gru").n_layers(spec),
                           stateful=stateful)


@register_architecture("stacked_lstm", default_layers=3, test_params={"units": 8},
                       cudnn_note=_RNN_CUDNN, description="deeper LSTM stack (3 layers by default)")
def stacked_lstm_body(spec: ModelSpec, inputs, stateful: bool = False):
    return recurrent_stack(keras.layers.LSTM, spec, inputs,
                           ARCHITECTURES.get("stacked_lstm").n_layers(spec), stateful=stateful)


@register_architecture("conv1d_lstm", default_layers=2,
                       test_params={"units": 8, "conv_filters": 4, "kernel_size": 3},
                       cudnn_note=_RNN_CUDNN + " (the LSTM layers); the Conv1D is unaffected",
                       description="causal Conv1D(relu) then LSTM layers (the Sunspots recipe)",
                       output_scale=1.0)
def conv1d_lstm_body(spec: ModelSpec, inputs, stateful: bool = False):
    if stateful:
        raise TlbenchError(f"conv1d_lstm cannot be stateful: "
                           f"{ARCHITECTURES.get('conv1d_lstm').why_not_stateful}.")
    if spec.conv_filters < 1 or spec.kernel_size < 1:
        raise TlbenchError(f"conv1d_lstm needs model.conv_filters >= 1 and model.kernel_size >= 1, "
                           f"got {spec.conv_filters} and {spec.kernel_size}.")
    # Causal padding: step t sees only steps <= t, and the sequence keeps its length.
    x = keras.layers.Conv1D(spec.conv_filters, spec.kernel_size, padding="causal", activation="relu",
                            name="body_0")(inputs)  # [B, L, F] -> [B, L, C]
    return recurrent_stack(keras.layers.LSTM, spec, x, ARCHITECTURES.get("conv1d_lstm").n_layers(spec),
                           first_index=1)


def build_model(spec: ModelSpec, lookback: int | None, n_features: int, horizon: int,
                name: str = "model", stateful: bool = False) -> keras.Model:
    """A fresh, UNCOMPILED model ``[batch, lookback, n_features] -> [batch, horizon]``.

    ``lookback=None``: sequences of any length. ``stateful``: batch fixed at 1, recurrent state
    kept between calls (see the module docstring); refused for architectures that are not
    ``stateful_capable``. ``n_features > 1`` adds the ``input_projection`` layer.
    Unknown ``spec.architecture`` or ``spec.head`` raises :class:`UnknownNameError` listing the
    known names (a window map ignores ``spec.head``: it is its own head). Layers: ``inputs``,
    [``norm_window``], [``input_projection``], ``body_0..``, ``head_*``, [``norm_restore``] (the
    window stage of ``spec.normalisation``, when it has one).
    """
    architecture = ARCHITECTURES.get(spec.architecture)
    head = HEADS.get(spec.head)
    sizes = [("n_features", n_features), ("horizon", horizon)]
    for label, value in sizes + ([("lookback", lookback)] if lookback is not None else []):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise TlbenchError(f"build_model: {label} must be a positive integer, got {value!r}.")
    if spec.units < 1:
        raise TlbenchError(f"model.units must be at least 1, got {spec.units}.")
    if stateful and not architecture.stateful_capable:
        raise TlbenchError(f"architecture {spec.architecture!r} cannot be stateful: "
                           f"{architecture.why_not_stateful}.")
    if architecture.build_window_map is not None and lookback is None:
        raise TlbenchError(f"architecture {spec.architecture!r} maps a fixed window of lookback steps; "
                           "build_model needs lookback as a positive integer, not None.")
    # A stateful model reads chunks of `lookback` in training but warms on whole histories and
    # then feeds one step at a time: its time axis is free.
    steps = None if lookback is None or stateful else int(lookback)
    if stateful:
        inputs = keras.Input(batch_shape=(1, steps, int(n_features)), name="inputs")  # [1, L, F]
    else:
        inputs = keras.Input(shape=(steps, int(n_features)), name="inputs")  # [B, L, F]
    stage = _window_stage(spec, stateful)
    # The normalisation's window stage (docs/models.md): each input window's own statistics,
    # removed here and restored on the outputs below; the layers have no weights.
    x = WindowNorm(stage, name=WINDOW_NORM)(inputs) if stage else inputs  # [B, L, F]
    if n_features > 1:
        # Starts as "take the target": kernel e_0, so a pretrained body first sees what it knows.
        kernel = np.zeros((int(n_features), 1), dtype=np.float32)
        kernel[0, 0] = 1.0
        x = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(kernel),
                               name=INPUT_PROJECTION)(x)  # [B, L, F] -> [B, L, 1]
    if architecture.build_window_map is not None:
        outputs = architecture.build_window_map(spec, x, int(horizon))  # [B, L, 1] -> [B, H], no head
    else:
        sequence_output, last_state_output = architecture.build_body(spec, x, stateful)  # [B, L, U], [B, U]
        outputs = head.build(spec, sequence_output, last_state_output, int(horizon), stateful)  # [B, H]
    if architecture.output_scale is not None:
        outputs = Rescale(architecture.output_scale, name="head_rescale")(outputs)  # [B, H]
    if stage:
        outputs = WindowDenorm(stage, name=WINDOW_RESTORE)([outputs, inputs])  # [B, H]
    return keras.Model(inputs, outputs, name=name)


def _window_stage(spec: ModelSpec, stateful: bool) -> str | None:
    """The window stage of ``spec.normalisation`` (None for a series-scaler-only one)."""
    stage = NORMALISATIONS.get(spec.normalisation).window
    if stage and stateful:
        raise TlbenchError(f"normalisation {spec.normalisation!r} normalises each input window, but a "
                           "stateful model reads the series in chunks whose statistics differ from "
                           "call to call; use normalisation 'global' or 'minmax' with the stateful regime.")
    return stage


def window_stage_of(model: keras.Model) -> str | None:
    """The window stage a built or loaded model applies (None when it has none)."""
    for layer in model.layers:
        if layer.name == WINDOW_NORM:
            return layer.stage
    return None


def body_layer_names(model: keras.Model) -> list[str]:
    """Names of the body layers in build order: ``["body_0", "body_1", ...]``."""
    found = [(int(m.group(1)), layer.name) for layer in model.layers
             if (m := _BODY_NAME.match(layer.name))]
    return [name for _, name in sorted(found)]


def head_layer_names(model: keras.Model) -> list[str]:
    """Names of the head layers (``head_*``), in model order."""
    return [layer.name for layer in model.layers if layer.name.startswith("head_")]


def _count(weights) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


def param_counts(model: keras.Model) -> dict[str, int]:
    """``{"trainable", "non_trainable", "total"}`` scalar counts, per the layers' trainable flags."""
    trainable = _count(model.trainable_weights)
    non_trainable = _count(model.non_trainable_weights)
    return {"trainable": trainable, "non_trainable": non_trainable, "total": trainable + non_trainable}


def layer_param_count(model: keras.Model, names: list[str]) -> int:
    """Number of scalar weights in the named layers."""
    return _count([w for name in names for w in model.get_layer(name).weights])
