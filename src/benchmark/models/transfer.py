"""Transfer modes as data, and the few functions that apply them.

A :class:`TransferMode` says whether the pretrained body (and head) is loaded, which training
:class:`Phase` s follow, each with what to freeze, its share of ``max_epochs`` and learning-rate
factors (the whole model's, and the body's on top of it), and whether the starting weights compete
with the trained ones for the best-weights restore (``keep_start``). :func:`apply_freezing` is the
one place that sets ``trainable``, and it always recompiles: Keras raises when a model is unfrozen
without recompiling. Weights move from a pretrained model by layer name and value
(:func:`load_pretrained_weights`), never by sharing layer objects.

What a mode loads (``load_body``, ``load_head``, ``start_from_head``) and whether it trains is declared once, in
:data:`benchmark.spec.catalog.TRANSFER_MODES`; :func:`register_mode` reads the entry of the same
name and checks the phases against it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable

import keras
import numpy as np

from benchmark.data.normalisation import NORMALISATIONS
from benchmark.models.architectures import (
    ARCHITECTURES,
    body_layer_names,
    build_model,
    head_layer_names,
    window_stage_of,
)
from benchmark.models.compile import compile_model
from benchmark.models.layers import TakeFirst
from benchmark.spec import catalog
from benchmark.spec.catalog import TransferModeFacts, declared
from benchmark.spec.errors import TlbenchError
from benchmark.spec.registry import Registry
from benchmark.spec.sections import ModelSpec, TrainingSpec, TransferSpec

log = logging.getLogger(__name__)

# Phase fields that name a TransferSpec knob instead of holding a number.
_REST = "rest"  # epochs_fraction: whatever share of max_epochs the earlier phases left


@dataclass(frozen=True)
class Phase:
    """One training phase.

    ``freeze``: a rule in :data:`FREEZE_RULES` (``none``, ``body``, ``first_k``, ``all``).
    ``epochs_fraction``: share of ``max_epochs``; a number, the name of a :class:`TransferSpec`
    field (``"probe_epochs_fraction"``), or ``"rest"`` (one minus the earlier phases' shares).
    ``lr_factor``: multiplies ``training.learning_rate``; a number or a TransferSpec field name.
    ``body_lr_factor``: multiplies the body layers' rate on top of ``lr_factor`` (the head and the
    input projection keep ``lr x lr_factor``); a number or a TransferSpec field name.
    """

    freeze: str
    epochs_fraction: float | str = 1.0
    lr_factor: float | str = 1.0
    body_lr_factor: float | str = 1.0


@dataclass(frozen=True)
class TransferMode:
    """How a mode trains (``phases`` in order); what it loads from the pretrained model is its
    catalogue entry's (``facts``: ``load_body``, ``load_head``, ``start_from_head``, read through
    those properties). ``keep_start``: the model as it starts is scored on the validation data
    before the first epoch and competes with every epoch for the restored best weights, so
    training cannot end worse on validation than it started."""

    name: str
    phases: tuple[Phase, ...]
    description: str = ""
    facts: TransferModeFacts = TransferModeFacts(load_body=False)
    keep_start: bool = False

    @property
    def load_body(self) -> bool:
        return self.facts.load_body

    @property
    def load_head(self) -> bool:
        return self.facts.load_head

    @property
    def start_from_head(self) -> bool:
        return self.facts.start_from_head

    def resolved_phases(self, transfer: TransferSpec) -> tuple[Phase, ...]:
        """The phases with every symbolic field replaced by its number from ``transfer``."""
        resolved: list[Phase] = []
        used = 0.0
        for phase in self.phases:
            fraction = (max(0.0, 1.0 - used) if phase.epochs_fraction == _REST
                        else _knob(phase.epochs_fraction, transfer, self.name))
            resolved.append(replace(phase, epochs_fraction=fraction,
                                    lr_factor=_knob(phase.lr_factor, transfer, self.name),
                                    body_lr_factor=_knob(phase.body_lr_factor, transfer, self.name)))
            used += fraction
        return tuple(resolved)


def _knob(value: float | str, transfer: TransferSpec, mode: str) -> float:
    if isinstance(value, str):
        if not hasattr(transfer, value):
            raise TlbenchError(f"transfer mode {mode!r} refers to transfer.{value}, which TransferSpec "
                               "does not have; fix the mode's Phase.")
        return float(getattr(transfer, value))
    return float(value)


TRANSFER_MODES: Registry[TransferMode] = Registry(catalog.TRANSFER_MODES.kind)


def register_mode(name: str, phases: tuple[Phase, ...], description: str,
                  keep_start: bool = False) -> TransferMode:
    """Register transfer mode ``name`` with the facts :data:`benchmark.spec.catalog.TRANSFER_MODES`
    declares for it; its phases must agree with the declared ``trains`` (no phases: no training)."""
    facts = declared(catalog.TRANSFER_MODES, name)
    if facts.trains != bool(phases):
        raise TlbenchError(f"transfer mode {name!r} has {len(phases)} training phase(s) but "
                           f"benchmark.spec.catalog.TRANSFER_MODES declares trains={facts.trains}; "
                           "make the two agree.")
    mode = TransferMode(name, tuple(phases), description, facts, keep_start)
    TRANSFER_MODES.add(name, mode)
    return mode


register_mode("scratch", (Phase("none"),), "random init, all layers trained (the baseline)")
register_mode("frozen", (Phase("body"),), "pretrained body frozen; a fresh head trained")
register_mode("finetune", (Phase("none"),), "pretrained body, everything trained")
register_mode("lp_ft", (Phase("body", epochs_fraction="probe_epochs_fraction"),
                        Phase("none", epochs_fraction=_REST, lr_factor="finetune_lr_factor")),
              "linear probe (body frozen), then everything at lr x finetune_lr_factor")
register_mode("partial", (Phase("first_k"),),
              "first transfer.partial_frozen_layers body layers frozen, rest trained")
register_mode("zeroshot", (), "pretrained body and head used as is, no training")
register_mode("ft_from_head", (Phase("none", body_lr_factor="body_lr_factor"),),
              "pretrained body and head (its first horizon outputs where the horizon fits, else a fresh "
              "head), everything trained, the body at lr x body_lr_factor; the starting weights are "
              "kept when no epoch beats them on validation", keep_start=True)


# --------------------------------------------------------------------------- freezing

# freeze rule: (model, transfer) -> names of the layers to freeze
FreezeRule = Callable[[keras.Model, TransferSpec], list[str]]
FREEZE_RULES: Registry[FreezeRule] = Registry("freeze rule")


@FREEZE_RULES.register("none")
def _freeze_none(model: keras.Model, transfer: TransferSpec) -> list[str]:
    return []


@FREEZE_RULES.register("body")
def _freeze_body(model: keras.Model, transfer: TransferSpec) -> list[str]:
    return body_layer_names(model)


@FREEZE_RULES.register("first_k")
def _freeze_first_k(model: keras.Model, transfer: TransferSpec) -> list[str]:
    body = body_layer_names(model)
    k = transfer.partial_frozen_layers
    if not 0 <= k <= len(body):
        raise TlbenchError(f"transfer.partial_frozen_layers={k}, but model {model.name!r} has "
                           f"{len(body)} body layers ({', '.join(body)}); use 0..{len(body)}.")
    if k == 0:
        log.warning("transfer.partial_frozen_layers=0: mode 'partial' freezes nothing (same as finetune)")
    return body[:k]


@FREEZE_RULES.register("all")
def _freeze_all(model: keras.Model, transfer: TransferSpec) -> list[str]:
    return [layer.name for layer in model.layers if layer.weights]


def frozen_layer_names(model: keras.Model, phase: Phase, transfer: TransferSpec) -> list[str]:
    """Names of the layers ``phase`` freezes in ``model`` (``partial`` reads ``transfer``)."""
    return FREEZE_RULES.get(phase.freeze)(model, transfer)


def apply_freezing(model: keras.Model, frozen_names: list[str], training: TrainingSpec,
                   learning_rate: float, body_lr_factor: float = 1.0) -> None:
    """Freeze exactly ``frozen_names`` (every other layer trainable), then recompile.

    The only function that sets ``trainable``. Recompiling is not optional: unfreezing a model
    after a fit without it raises in Keras (the optimizer only knows its original variables).
    ``body_lr_factor`` != 1: the body layers train at ``learning_rate x body_lr_factor``, every
    other layer at ``learning_rate`` (:func:`~benchmark.models.compile.compile_model`'s layer rates).
    """
    names = {layer.name for layer in model.layers}
    unknown = sorted(set(frozen_names) - names)
    if unknown:
        raise TlbenchError(f"cannot freeze {', '.join(unknown)}: model {model.name!r} has no such "
                           f"layer. Its layers: {', '.join(sorted(names))}.")
    frozen = set(frozen_names)
    for layer in model.layers:
        layer.trainable = layer.name not in frozen
    factors = {name: body_lr_factor for name in body_layer_names(model)} if body_lr_factor != 1.0 else None
    compile_model(model, training, learning_rate, layer_lr_factors=factors)


# --------------------------------------------------------------------------- loading weights


def load_pretrained_weights(model: keras.Model, pretrained: keras.Model,
                            include_head: bool = False, first_outputs: int | None = None) -> list[str]:
    """Copy the body (and, with ``include_head``, the head) of ``pretrained`` into ``model``.

    Copies values layer by layer by name (``get_weights``/``set_weights``): no layer object, and so
    no variable or trainable flag, is shared. Returns the names copied. Raises TlbenchError when a
    layer is missing, of another class or of another shape: the pretrained and target model specs
    (architecture, units, layers, head) must match. The ``input_projection`` of a multi-feature
    target is never copied (the pretrained body has none; it starts as "take the target"), and
    the ``stateful`` flag of the recurrent layers does not change their weights, so a stateless
    pretrained body loads into a stateful model and back. ``first_outputs``: ``model``'s horizon
    ``H`` when ``pretrained`` forecasts more steps; a weight whose last axis is longer than the
    target's ``H`` and that differs in nothing else (a head's output kernel ``[U, H_body]`` and bias
    ``[H_body]``, or a linear window map's ``[L, H_body]``) is cut to its first ``H`` entries, so
    ``model``'s outputs are ``pretrained``'s first ``H``.
    """
    how = ("The pretrained and target model specs must match (architecture, units, layers, "
           "conv_filters, kernel_size, head); a multi-feature target reaches a single-feature body "
           "through its input_projection. Pretrain again with the target's model spec.")
    target_body, source_body = body_layer_names(model), body_layer_names(pretrained)
    if target_body != source_body:
        raise TlbenchError(f"pretrained model {pretrained.name!r} has body layers {source_body}, "
                           f"target {model.name!r} has {target_body}. {how}")
    names = target_body + (head_layer_names(model) if include_head else [])
    for name in names:
        target = model.get_layer(name)
        try:
            source = pretrained.get_layer(name)
        except ValueError:
            raise TlbenchError(f"pretrained model {pretrained.name!r} has no layer {name!r} "
                               f"(needed to load the head). {how}") from None
        if type(source) is not type(target):
            raise TlbenchError(f"layer {name!r}: pretrained is {type(source).__name__}, target is "
                               f"{type(target).__name__}. {how}")
        values = source.get_weights()  # numpy copies
        if first_outputs is not None:  # a head's output layer, or a window map's lookback -> horizon map
            values = [_first_outputs(v, tuple(w.shape), first_outputs) for v, w in zip(values, target.weights)]
        source_shapes = [tuple(v.shape) for v in values]
        target_shapes = [tuple(w.shape) for w in target.weights]
        if source_shapes != target_shapes:
            raise TlbenchError(f"layer {name!r}: pretrained weight shapes {source_shapes} != target "
                               f"shapes {target_shapes}. {how}")
        target.set_weights([np.array(v, copy=True) for v in values])
    log.debug("loaded %s from %s into %s", names, pretrained.name, model.name)
    return names


def _first_outputs(value: np.ndarray, target_shape: tuple, steps: int) -> np.ndarray:
    """``value`` cut to its first ``steps`` entries on the last axis where that is the only
    difference from ``target_shape`` (``[U, H_body] -> [U, H]``, ``[H_body] -> [H]``); else as is."""
    if (value.shape != target_shape and value.shape[:-1] == target_shape[:-1]
            and target_shape[-1] == steps <= value.shape[-1]):
        return value[..., :steps]
    return value


def prepare_for_mode(mode_name: str, spec: ModelSpec, lookback: int | None, n_features: int,
                     horizon: int, pretrained: keras.Model | None,
                     stateful: bool = False) -> keras.Model:
    """A fresh model for one cell, with the pretrained weights the mode asks for (uncompiled).

    ``[batch, lookback, n_features] -> [batch, horizon]`` (``stateful``: batch 1, state kept
    between calls; see :func:`~benchmark.models.architectures.build_model`). Raises TlbenchError
    when the architecture refuses the mode (``Architecture.refused_modes``) or the mode loads
    weights and ``pretrained`` is None.
    """
    mode = TRANSFER_MODES.get(mode_name)
    name = f"{spec.architecture}_{mode.name}"
    refusal = ARCHITECTURES.get(spec.architecture).refusal(mode.name)
    if refusal:  # grid validation refuses the same pair before anything trains
        raise TlbenchError(f"{refusal}.")
    if mode.load_body and pretrained is None:
        raise TlbenchError(f"transfer mode {mode.name!r} loads a pretrained body, but no pretrained "
                           "model was given; pretrain first (tlbench runs pretraining before the "
                           "cells) or use mode 'scratch'.")
    if not mode.load_body:
        if pretrained is not None:
            log.debug("mode %r ignores the pretrained model %r", mode.name, pretrained.name)
        return build_model(spec, lookback, n_features, horizon, name=name, stateful=stateful)
    check_normalisation(spec, pretrained)
    body_horizon = int(pretrained.output_shape[-1])
    if mode.start_from_head:
        return _start_from_head(mode.name, spec, (lookback, n_features, horizon), pretrained, stateful)
    if not mode.load_head or body_horizon == horizon:
        model = build_model(spec, lookback, n_features, horizon, name=name, stateful=stateful)
        load_pretrained_weights(model, pretrained, include_head=mode.load_head)
        return model
    # The head is used as it is: a body pretrained for a longer horizon (M4 Hourly's 48 steps)
    # forecasts a shorter one with its first `horizon` outputs.
    if body_horizon < horizon:
        raise TlbenchError(f"mode {mode.name!r} uses the pretrained head as it is, but it forecasts "
                           f"{body_horizon} steps and the cell needs {horizon}; pretrain with "
                           f"pretrain.horizon >= {horizon} or drop {mode.name!r}.")
    inner = build_model(spec, lookback, n_features, body_horizon, name=f"{name}_full", stateful=stateful)
    load_pretrained_weights(inner, pretrained, include_head=True)
    outputs = TakeFirst(horizon, name="head_take_first")(inner.output)  # [B, H_body] -> [B, H]
    return keras.Model(inner.input, outputs, name=name)


def _start_from_head(mode: str, spec: ModelSpec, sizes: tuple[int | None, int, int],
                     pretrained: keras.Model, stateful: bool) -> keras.Model:
    """A model of the cell's size (``sizes``: lookback, n_features, horizon; the same network as
    ``scratch``'s) with the pretrained body and, where the horizon fits in the body's and the head
    is of the same kind, the pretrained head's first ``horizon`` outputs; else a fresh head."""
    lookback, n_features, horizon = sizes
    model = build_model(spec, lookback, n_features, horizon, name=f"{spec.architecture}_{mode}", stateful=stateful)
    body_horizon = int(pretrained.output_shape[-1])
    same_head = head_layer_names(model) == head_layer_names(pretrained)
    if horizon <= body_horizon and same_head:
        load_pretrained_weights(model, pretrained, include_head=True, first_outputs=horizon)
        return model
    log.info("mode %r: a fresh head (the pretrained one forecasts %d steps with layers %s, the cell %d "
             "with %s)", mode, body_horizon, head_layer_names(pretrained), horizon, head_layer_names(model))
    load_pretrained_weights(model, pretrained)
    return model


def check_normalisation(spec: ModelSpec, pretrained: keras.Model) -> None:
    """Refuse a pretrained body whose window normalisation differs from the cell's: its layers
    learnt windows scaled another way (docs/models.md, "Normalisation"). Bodies tlbench pretrains
    for a grid always match (the normalisation is part of their key); a pinned registry version
    may not."""
    wanted = NORMALISATIONS.get(spec.normalisation).window
    found = window_stage_of(pretrained)
    if wanted != found:
        found_names = [n for n in NORMALISATIONS if NORMALISATIONS.get(n).window == found]
        raise TlbenchError(f"the pretrained model {pretrained.name!r} was trained with window stage "
                           f"{found or 'none'} (normalisation {' or '.join(found_names)}), this cell uses "
                           f"normalisation {spec.normalisation!r} ({wanted or 'no window stage'}). Set "
                           f"model.normalisation to {found_names[0]!r}, or pretrain a body with "
                           f"{spec.normalisation!r} (unset transfer.pretrained_version).")
