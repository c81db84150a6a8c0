"""Compiling a model: the optimiser and loss registries and :func:`compile_model`.

Owned here, below both :mod:`benchmark.models.transfer` (which recompiles after every change of
``trainable``) and :mod:`benchmark.models.training` (which compiles before a fit), so neither imports the
other to compile.
"""

from __future__ import annotations

from typing import Callable

import keras

from benchmark.spec import catalog
from benchmark.spec.catalog import declared
from benchmark.spec.registry import Registry
from benchmark.spec.sections import TrainingSpec

# name -> learning rate -> optimiser (names declared in benchmark.spec.catalog.OPTIMIZERS)
OPTIMIZERS: Registry[Callable[[float], keras.optimizers.Optimizer]] = Registry(catalog.OPTIMIZERS.kind)
# name -> () -> loss (names declared in benchmark.spec.catalog.LOSSES)
LOSSES: Registry[Callable[[], keras.losses.Loss]] = Registry(catalog.LOSSES.kind)


def _add(registry: Registry, declarations: Registry, name: str, builder: Callable) -> None:
    declared(declarations, name)  # refuses a name the catalogue does not declare
    registry.add(name, builder)


_add(OPTIMIZERS, catalog.OPTIMIZERS, "adam", lambda lr: keras.optimizers.Adam(learning_rate=lr))
_add(OPTIMIZERS, catalog.OPTIMIZERS, "nadam", lambda lr: keras.optimizers.Nadam(learning_rate=lr))
_add(OPTIMIZERS, catalog.OPTIMIZERS, "adamw", lambda lr: keras.optimizers.AdamW(learning_rate=lr))
_add(OPTIMIZERS, catalog.OPTIMIZERS, "sgd", lambda lr: keras.optimizers.SGD(learning_rate=lr, momentum=0.9))
_add(LOSSES, catalog.LOSSES, "mse", keras.losses.MeanSquaredError)
_add(LOSSES, catalog.LOSSES, "mae", keras.losses.MeanAbsoluteError)
_add(LOSSES, catalog.LOSSES, "huber", keras.losses.Huber)


def compile_model(model: keras.Model, training: TrainingSpec, learning_rate: float | None = None) -> None:
    """(Re)compile with a fresh optimiser from ``training`` (``learning_rate`` overrides its rate)."""
    rate = training.learning_rate if learning_rate is None else learning_rate
    model.compile(optimizer=OPTIMIZERS.get(training.optimizer)(float(rate)),
                  loss=LOSSES.get(training.loss)())
