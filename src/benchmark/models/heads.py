"""Forecast heads: what sits on top of a body and turns it into ``horizon`` outputs.

A head is registered in :data:`HEADS` and reads either the body's last state (``dense``) or its
full output sequence (``recurrent``). Every layer a head creates is named ``head_*``: transfer
modes tell body from head by these names only (see :mod:`benchmark.models.transfer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import keras

from benchmark.spec import catalog
from benchmark.spec.catalog import declared
from benchmark.spec.registry import Registry
from benchmark.spec.sections import ModelSpec

# (spec, sequence_output [B, L, U], last_state_output [B, U], horizon, stateful) -> [B, horizon]
HeadBuilder = Callable[[ModelSpec, Any, Any, int, bool], Any]


@dataclass(frozen=True)
class Head:
    """A registered head: ``build(spec, sequence_output, last_state_output, horizon, stateful)``;
    a head with recurrent layers makes them stateful when the model is (the stateful regime)."""

    name: str
    build: HeadBuilder
    description: str


HEADS: Registry[Head] = Registry(catalog.HEADS.kind)


def register_head(name: str, description: str) -> Callable[[HeadBuilder], HeadBuilder]:
    """Decorator: register a head builder under ``name`` (declared in
    :data:`benchmark.spec.catalog.HEADS`)."""
    declared(catalog.HEADS, name)

    def decorator(build: HeadBuilder) -> HeadBuilder:
        HEADS.add(name, Head(name=name, build=build, description=description))
        return build

    return decorator


@register_head("dense", "last body state -> [Dense(head_units, relu)] -> Dense(horizon)")
def dense_head(spec: ModelSpec, sequence_output, last_state_output, horizon: int,
               stateful: bool = False):
    x = last_state_output  # [B, U]
    if spec.head_units > 0:
        x = keras.layers.Dense(spec.head_units, activation="relu", name="head_hidden")(x)  # [B, head_units]
    return keras.layers.Dense(horizon, name="head_output")(x)  # [B, horizon]


@register_head("recurrent", "full body sequence -> fresh LSTM (head_units, else units) -> Dense(horizon)")
def recurrent_head(spec: ModelSpec, sequence_output, last_state_output, horizon: int,
                   stateful: bool = False):
    # The original notebook's recipe: a new LSTM(64) over the pretrained stack's sequence output.
    units = spec.head_units if spec.head_units > 0 else spec.units
    x = keras.layers.LSTM(units, stateful=stateful, name="head_lstm")(sequence_output)  # [B, L, U] -> [B, units]
    return keras.layers.Dense(horizon, name="head_output")(x)  # [B, horizon]
