"""Custom Keras layers of the model zoo, all serialisable (``.keras`` files load in safe mode).

:class:`Rescale`: the Sunspots notebook's output ``Lambda(lambda x: x * 400)`` as a real layer.
:class:`MovingAverage`: DLinear's trend (edge-padded moving average).
:class:`WindowNorm` and :class:`WindowDenorm`: the window stage of a normalisation
(:mod:`benchmark.data.normalisation`) inside the model, so every caller (training, forecasts,
recursive loops, zero-shot, the M4 protocol) gets it without knowing of it. None has weights.
A ``Lambda`` would make saved models unloadable with ``safe_mode=True``.
Importing :mod:`benchmark.models` registers these classes, which loading a saved model needs.
"""

from __future__ import annotations

import keras

from benchmark.data.normalisation import WINDOW_STAGES


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


def _stage_stats(stage: str, inputs):
    return WINDOW_STAGES.get(stage).stats(inputs[:, :, :1], keras.ops)  # [B, 1, 1] each


@keras.saving.register_keras_serializable(package="tlbench")
class WindowNorm(keras.layers.Layer):
    """Normalise column 0 (the target) of every input window by that window's own statistics
    (``stage``: a name in ``WINDOW_STAGES``); other columns pass unchanged. ``[B, L, F] -> [B, L, F]``."""

    def __init__(self, stage: str = "window", **kwargs):
        super().__init__(**kwargs)
        self.stage = str(stage)

    def call(self, inputs):
        location, scale = _stage_stats(self.stage, inputs)  # [B, 1, 1]
        target = (inputs[:, :, :1] - location) / scale  # [B, L, 1]
        return keras.ops.concatenate([target, inputs[:, :, 1:]], axis=-1)  # [B, L, F]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "stage": self.stage}


@keras.saving.register_keras_serializable(package="tlbench")
class WindowDenorm(keras.layers.Layer):
    """Undo :class:`WindowNorm` on the outputs: ``[outputs [B, H], inputs [B, L, F]] -> [B, H]``,
    ``outputs * scale + location`` with the statistics of the same input window."""

    def __init__(self, stage: str = "window", **kwargs):
        super().__init__(**kwargs)
        self.stage = str(stage)

    def call(self, values):
        outputs, inputs = values
        location, scale = _stage_stats(self.stage, inputs)  # [B, 1, 1]
        return outputs * scale[:, 0, :] + location[:, 0, :]  # [B, H] * [B, 1] + [B, 1]

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "stage": self.stage}


@keras.saving.register_keras_serializable(package="tlbench")
class TakeFirst(keras.layers.Layer):
    """The first ``steps`` outputs of a longer forecast: ``[B, H] -> [B, steps]``. Lets a zero-shot
    cell use a body pretrained for a longer horizon (its first ``steps`` outputs) as it is."""

    def __init__(self, steps: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.steps = int(steps)

    def call(self, inputs):
        return inputs[:, : self.steps]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.steps)

    def get_config(self) -> dict:
        return {**super().get_config(), "steps": self.steps}


@keras.saving.register_keras_serializable(package="tlbench")
class MovingAverage(keras.layers.Layer):
    """DLinear's trend: a centred moving average over time of ``kernel_size`` steps, the window's
    ends padded by repeating its first and last values (LTSF-Linear's ``moving_avg``), so the
    output keeps the input's length. ``[B, L, C] -> [B, L, C]``. No weights."""

    def __init__(self, kernel_size: int = 25, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)

    def call(self, inputs):
        front = (self.kernel_size - 1) // 2
        end = self.kernel_size - 1 - front  # = front for an odd kernel, as in LTSF-Linear
        padded = keras.ops.concatenate([keras.ops.repeat(inputs[:, :1, :], front, axis=1), inputs,
                                        keras.ops.repeat(inputs[:, -1:, :], end, axis=1)],
                                       axis=1)  # [B, L + kernel_size - 1, C]
        return keras.ops.average_pool(padded, self.kernel_size, strides=1, padding="valid")  # [B, L, C]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "kernel_size": self.kernel_size}
