"""Custom Keras layers of the model zoo, all serialisable (``.keras`` files load in safe mode).

Only :class:`Rescale` so far: the Sunspots notebook's output ``Lambda(lambda x: x * 400)``
as a real layer. A ``Lambda`` would make saved models unloadable with ``safe_mode=True``.
Importing :mod:`benchmark.models` registers these classes, which loading a saved model needs.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="tlbench")
class Rescale(keras.layers.Layer):
    """Multiply by a constant: ``y = x * scale``. No weights.

    The notebook scaled raw sunspot counts (``scale=400``); our targets are z-scored, so the
    default is 1.0 and the layer only keeps the recipe's shape.
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs):
        return inputs * self.scale  # [B, H] -> [B, H]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}
