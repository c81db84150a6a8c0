"""Compiling a model: the optimiser and loss registries and :func:`compile_model`.

Owned here, below both :mod:`benchmark.models.transfer` (which recompiles after every change of
``trainable``) and :mod:`benchmark.models.training` (which compiles before a fit), so neither imports the
other to compile.

Per-layer learning rates (discriminative fine-tuning): Keras 3 has no per-variable rate in one
optimiser, and scaling gradients would not do it (Adam's step does not depend on the gradient's
scale). So every registered optimiser class has a twin (:func:`_with_layer_rates`) whose
``update_step`` multiplies the rate it is given by the factor of the variable's layer; the step of
Adam, Nadam and SGD with momentum is linear in that rate, so a layer at factor ``f`` trains as if
its optimiser ran at ``lr x f`` (AdamW's decoupled weight decay stays at the full rate). The twins
are registered Keras objects, so a model compiled with one saves and loads.
"""

from __future__ import annotations

from typing import Callable, Mapping

import keras

from benchmark.spec import catalog
from benchmark.spec.catalog import declared
from benchmark.spec.errors import TlbenchError
from benchmark.spec.registry import Registry
from benchmark.spec.sections import TrainingSpec

# name -> learning rate -> optimiser (names declared in benchmark.spec.catalog.OPTIMIZERS)
OPTIMIZERS: Registry[Callable[[float], keras.optimizers.Optimizer]] = Registry(catalog.OPTIMIZERS.kind)
# name -> () -> loss (names declared in benchmark.spec.catalog.LOSSES)
LOSSES: Registry[Callable[[], keras.losses.Loss]] = Registry(catalog.LOSSES.kind)


def _add(registry: Registry, declarations: Registry, name: str, builder: Callable) -> None:
    declared(declarations, name)  # refuses a name the catalogue does not declare
    registry.add(name, builder)


def _with_layer_rates(base: type) -> type:
    """``base`` (an optimiser class) whose ``update_step`` scales the learning rate per layer:
    ``layer_lr_factors`` maps a layer name to its factor (1 for a layer it does not name)."""

    @keras.saving.register_keras_serializable(package="tlbench", name=f"LayerRates{base.__name__}")
    class LayerRates(base):
        def __init__(self, *args, layer_lr_factors: Mapping[str, float] | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.layer_lr_factors = {str(k): float(v) for k, v in (layer_lr_factors or {}).items()}
            self._factors: list[float] = []

        def build(self, variables):
            super().build(variables)
            # a variable's path starts with its layer's name (``body_0/lstm_cell/kernel``)
            self._factors = [next((self.layer_lr_factors[part] for part in v.path.split("/")
                                   if part in self.layer_lr_factors), 1.0) for v in variables]

        def update_step(self, gradient, variable, learning_rate):
            factor = self._factors[self._get_variable_index(variable)]
            super().update_step(gradient, variable, learning_rate if factor == 1.0 else learning_rate * factor)

        def get_config(self) -> dict:
            return {**super().get_config(), "layer_lr_factors": dict(self.layer_lr_factors)}

    LayerRates.__name__ = LayerRates.__qualname__ = f"LayerRates{base.__name__}"
    return LayerRates


_LAYER_RATES: dict[type, type] = {}


def _add_optimizer(name: str, base: type, **options) -> None:
    """Register optimiser ``name`` (``base(learning_rate=lr, **options)``) and its per-layer-rate twin."""
    _add(OPTIMIZERS, catalog.OPTIMIZERS, name, lambda lr: base(learning_rate=lr, **options))
    _LAYER_RATES[base] = _with_layer_rates(base)


_add_optimizer("adam", keras.optimizers.Adam)
_add_optimizer("nadam", keras.optimizers.Nadam)
_add_optimizer("adamw", keras.optimizers.AdamW)
_add_optimizer("sgd", keras.optimizers.SGD, momentum=0.9)
_add(LOSSES, catalog.LOSSES, "mse", keras.losses.MeanSquaredError)
_add(LOSSES, catalog.LOSSES, "mae", keras.losses.MeanAbsoluteError)
_add(LOSSES, catalog.LOSSES, "huber", keras.losses.Huber)


def compile_model(model: keras.Model, training: TrainingSpec, learning_rate: float | None = None,
                  layer_lr_factors: Mapping[str, float] | None = None) -> None:
    """(Re)compile with a fresh optimiser from ``training`` (``learning_rate`` overrides its rate).

    ``layer_lr_factors``: layer name -> factor; those layers train at ``rate x factor`` (0: not at
    all), the others at ``rate``. Raises TlbenchError for a layer ``model`` lacks or a factor < 0.
    """
    rate = training.learning_rate if learning_rate is None else learning_rate
    optimizer = OPTIMIZERS.get(training.optimizer)(float(rate))
    if layer_lr_factors:
        names = {layer.name for layer in model.layers}
        problems = [f"layer {k!r} is not in model {model.name!r}" for k in layer_lr_factors if k not in names]
        problems += [f"layer {k!r} has factor {v}, below 0" for k, v in layer_lr_factors.items() if not v >= 0]
        if problems:
            raise TlbenchError(f"per-layer learning-rate factors: {'; '.join(problems)}. Factors are >= 0 "
                               f"and name layers of the model ({', '.join(sorted(names))}).")
        optimizer = _LAYER_RATES[type(optimizer)].from_config(
            {**optimizer.get_config(), "layer_lr_factors": dict(layer_lr_factors)})
    model.compile(optimizer=optimizer, loss=LOSSES.get(training.loss)())
