"""The linear reference forecasters of LTSF-Linear (Zeng et al. 2023, "Are Transformers Effective
for Time Series Forecasting?"; cure-lab/LTSF-Linear models/NLinear.py and DLinear.py), registered
as window maps (:func:`~benchmark.models.architectures.register_window_map`); what they refuse
(some transfer modes, the stateful regime) is declared in :data:`benchmark.spec.catalog.ARCHITECTURES`.

* ``nlinear``: subtract the window's last value, one ``Dense`` lookback -> horizon (``body_0``),
  add the last value back. Under the ``last_value`` normalisation the subtraction is an exact
  no-op (the normalised window already ends at 0), so nothing is normalised twice.
* ``dlinear``: split the window into a trend (a 25-step moving average, ends padded by repeating
  the end values) and the remainder; one ``Dense`` lookback -> horizon on each (``body_0`` the
  trend, ``body_1`` the remainder), summed.

Both read the one channel the body sees (the target, or the ``input_projection`` of several
features) and have no head: every weight is a body layer, ``lookback * horizon + horizon`` per
``Dense``. ``spec.units``, ``layers``, ``dropout`` and ``head`` do not apply to them.
"""

from __future__ import annotations

import keras

from benchmark.models.architectures import register_window_map
from benchmark.models.layers import MovingAverage, WindowDenorm, WindowNorm
from benchmark.spec.sections import ModelSpec

#: DLinear's moving-average kernel (LTSF-Linear's default ``moving_avg = 25``).
DLINEAR_KERNEL = 25


def _time_linear(x, horizon: int, name: str):
    """``[B, L, 1] -> [B, H]``: one Dense over the time axis (LTSF-Linear's ``nn.Linear(seq_len, pred_len)``)."""
    flat = keras.layers.Flatten(name=f"{name}_flat")(x)  # [B, L, 1] -> [B, L]
    return keras.layers.Dense(horizon, name=name)(flat)  # [B, L] -> [B, H]


@register_window_map("nlinear", default_layers=1, test_params={},
                     description="NLinear: last value removed, one Dense lookback -> horizon, last value restored")
def nlinear(spec: ModelSpec, inputs, horizon: int):
    relative = WindowNorm("last_value", name="nlinear_subtract_last")(inputs)  # [B, L, 1]
    outputs = _time_linear(relative, horizon, "body_0")  # [B, H]
    return WindowDenorm("last_value", name="nlinear_add_last")([outputs, inputs])  # [B, H]


@register_window_map("dlinear", default_layers=2, test_params={},
                     description=f"DLinear: moving-average trend ({DLINEAR_KERNEL} steps) and remainder, "
                                 "one Dense lookback -> horizon each, summed")
def dlinear(spec: ModelSpec, inputs, horizon: int):
    trend = MovingAverage(DLINEAR_KERNEL, name="dlinear_trend")(inputs)  # [B, L, 1]
    remainder = keras.layers.Subtract(name="dlinear_remainder")([inputs, trend])  # [B, L, 1]
    return keras.layers.Add(name="dlinear_sum")([_time_linear(trend, horizon, "body_0"),
                                                  _time_linear(remainder, horizon, "body_1")])  # [B, H]
