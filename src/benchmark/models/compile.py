"""Compiling a model: the optimiser and loss registries and :func:`compile_model`.

Owned here, below both :mod:`benchmark.models.transfer` (which recompiles after every change of
``trainable``) and :mod:`benchmark.training` (which compiles before a fit), so neither imports the
other to compile.
"""

from __future__ import annotations

from typing import Callable

import keras

from benchmark.config import TrainingSpec
from benchmark.registry import Registry

# name -> learning rate -> optimiser
OPTIMIZERS: Registry[Callable[[float], keras.optimizers.Optimizer]] = Registry("optimizer")
OPTIMIZERS.add("adam", lambda lr: keras.optimizers.Adam(learning_rate=lr))
OPTIMIZERS.add("nadam", lambda lr: keras.optimizers.Nadam(learning_rate=lr))
OPTIMIZERS.add("adamw", lambda lr: keras.optimizers.AdamW(learning_rate=lr))
OPTIMIZERS.add("sgd", lambda lr: keras.optimizers.SGD(learning_rate=lr, momentum=0.9))

# name -> () -> loss
LOSSES: Registry[Callable[[], keras.losses.Loss]] = Registry("loss")
LOSSES.add("mse", keras.losses.MeanSquaredError)
LOSSES.add("mae", keras.losses.MeanAbsoluteError)
LOSSES.add("huber", keras.losses.Huber)


def compile_model(model: keras.Model, training: TrainingSpec, learning_rate: float | None = None) -> None:
    """(Re)compile with a fresh optimiser from ``training`` (``learning_rate`` overrides its rate)."""
    rate = training.learning_rate if learning_rate is None else learning_rate
    model.compile(optimizer=OPTIMIZERS.get(training.optimizer)(float(rate)),
                  loss=LOSSES.get(training.loss)())
