"""Input normalisation, as named registry entries: how a series is scaled before a model sees it,
and how forecasts are brought back to the original scale before any metric.

A :class:`Normalisation` has two stages, each optional:

1. a **series scaler** (:data:`SCALERS`), fitted on the training part only (per series on a
   panel source) and applied to the whole series: ``zscore`` or ``minmax``;
2. a **window stage** (:data:`WINDOW_STAGES`), applied inside the model to every input window
   (column 0, the target) and undone on the model's outputs with the same window's statistics:
   ``last_value`` subtracts the window's last observed value (the model learns a correction to
   the naive forecast); ``window`` removes the window's mean and standard deviation (reversible
   instance normalisation, RevIN without the affine weights), with a floor on the standard
   deviation so a flat window does not divide by zero.

The window stage's statistics come from the input window alone, so no value after the window's
end (and no test value) can reach them; the series scaler is fitted on the training part alone.
Both stages live in exactly one place each: the series scaler in
:func:`benchmark.data.splits.make_cell_data` / :func:`~benchmark.data.splits.source_arrays` and
the window stage in the model (:class:`benchmark.models.layers.WindowNorm` and
``WindowDenorm``, which call :func:`window_statistics` below through ``keras.ops``). Forecasts
leave the model on the series-scaled scale and the series scaler's ``inverse_transform`` brings
them back before any metric.

=============  ===============  =============  =====================================================
name           series scaler    window stage   meaning
=============  ===============  =============  =====================================================
``global``     zscore           (none)         z-score fitted on the training part (per series on M4)
``last_value`` zscore           last_value     each window relative to its last value
``window``     zscore           window         per-window mean/std removed, restored on the outputs
``minmax``     minmax           (none)         the seed notebooks' [0, 1] scaling (training part)
=============  ===============  =============  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from benchmark.spec.registry import Registry

#: Smallest standard deviation the ``window`` stage divides by (on series-scaled values, where
#: a typical window's standard deviation is 0.1-1): a flat window is only centred.
WINDOW_STD_FLOOR = 1e-3


class Scaler:
    """Z-score scaling, ``(x - mean) / std`` per feature; a constant feature gets std 1.

    Works on (n,) or (n, F) arrays; ``fit`` on the training part only.
    """

    kind = "zscore"

    def __init__(self, mean: np.ndarray | float | None = None,
                 std: np.ndarray | float | None = None):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)

    def fit(self, values: np.ndarray) -> "Scaler":
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            raise ValueError("cannot fit a scaler on an empty array")
        self.mean = values.mean(axis=0)
        std = values.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        return self

    def _check(self) -> None:
        if self.mean is None:
            raise RuntimeError("Scaler is not fitted: call fit(values) first")

    def transform(self, values: np.ndarray) -> np.ndarray:
        self._check()
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.std

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        self._check()
        return np.asarray(values, dtype=np.float64) * self.std + self.mean

    def column(self, index: int) -> "Scaler":
        """The scaler of one feature column (the target's is column 0)."""
        self._check()
        return type(self)(np.atleast_1d(self.mean)[index], np.atleast_1d(self.std)[index])

    def to_dict(self) -> dict[str, float | list[float]]:
        self._check()
        return {"kind": self.kind, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "Scaler":
        return SCALERS.get(data.get("kind", "zscore"))(data["mean"], data["std"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean!r}, std={self.std!r})"


class MinMaxScaler(Scaler):
    """The seed notebooks' ``MinMaxScaler``: ``(x - min) / (max - min)`` per feature, fitted on the
    training part here (the notebooks fitted it on the whole target: that flaw is the ``notebook``
    protocol's, not this scaler's). Stored as ``mean = min`` and ``std = max - min`` (1 when flat),
    so the affine inverse is shared with :class:`Scaler`."""

    kind = "minmax"

    def fit(self, values: np.ndarray) -> "MinMaxScaler":
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            raise ValueError("cannot fit a scaler on an empty array")
        low, span = values.min(axis=0), values.max(axis=0) - values.min(axis=0)
        self.mean, self.std = low, np.where(span > 0, span, 1.0)
        return self


#: series scaler name -> class (``cls()`` unfitted, ``cls(mean, std)`` fitted)
SCALERS: Registry[type[Scaler]] = Registry("series scaler")
SCALERS.add("zscore", Scaler)
SCALERS.add("minmax", MinMaxScaler)


# --------------------------------------------------------------------------- window stage


def _last_value_stats(window0, ops):
    """``window0`` [B, L, 1] -> (location [B, 1, 1] = the last value, scale [B, 1, 1] = 1)."""
    location = window0[:, -1:, :]
    return location, ops.ones_like(location)


def _window_stats(window0, ops):
    """``window0`` [B, L, 1] -> (mean [B, 1, 1], max(std, floor) [B, 1, 1]) over the window."""
    mean = ops.mean(window0, axis=1, keepdims=True)
    std = ops.sqrt(ops.mean(ops.square(window0 - mean), axis=1, keepdims=True))
    return mean, ops.maximum(std, WINDOW_STD_FLOOR)


@dataclass(frozen=True)
class WindowStage:
    """Per-window statistics ``stats(window0 [B, L, 1], ops) -> (location, scale)``, each
    [B, 1, 1]; ``ops`` is ``numpy`` or ``keras.ops`` (one formula for tests and models)."""

    name: str
    stats: Callable
    description: str


WINDOW_STAGES: Registry[WindowStage] = Registry("window normalisation stage")
WINDOW_STAGES.add("last_value", WindowStage("last_value", _last_value_stats,
                                            "subtract the window's last value; add it back"))
WINDOW_STAGES.add("window", WindowStage("window", _window_stats,
                                        "remove the window's mean and std; restore them"))


class _NumpyOps:
    """The few ``keras.ops`` functions the window stages use, on NumPy arrays."""

    mean = staticmethod(np.mean)
    sqrt = staticmethod(np.sqrt)
    square = staticmethod(np.square)
    maximum = staticmethod(np.maximum)
    ones_like = staticmethod(np.ones_like)


def window_statistics(stage: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` [B, L, F] (target in column 0) -> (location, scale), each [B, 1], in NumPy."""
    x = np.asarray(x, dtype=np.float64)
    location, scale = WINDOW_STAGES.get(stage).stats(x[:, :, :1], _NumpyOps)
    return location[:, 0, :], scale[:, 0, :]  # [B, 1, 1] -> [B, 1]


def normalise_windows(stage: str, x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """NumPy reference of the model's input stage: column 0 of ``x`` [B, L, F] normalised by its
    window's statistics (other columns untouched). Returns the new array and the statistics."""
    x = np.asarray(x, dtype=np.float64)
    location, scale = window_statistics(stage, x)  # [B, 1]
    out = x.copy()
    out[:, :, 0] = (x[:, :, 0] - location) / scale
    return out, (location, scale)


def denormalise_outputs(y: np.ndarray, stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """NumPy reference of the model's output stage: ``y`` [B, H] * scale + location."""
    location, scale = stats
    return np.asarray(y, dtype=np.float64) * scale + location


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Normalisation:
    """A named normalisation: its series scaler (:data:`SCALERS`) and its window stage
    (:data:`WINDOW_STAGES`, or None), with one line of documentation."""

    name: str
    scaler: str
    window: str | None
    description: str

    def new_scaler(self) -> Scaler:
        """An unfitted series scaler of this normalisation."""
        return SCALERS.get(self.scaler)()


NORMALISATIONS: Registry[Normalisation] = Registry("normalisation")
for _entry in (
    Normalisation("global", "zscore", None,
                  "z-score fitted on the training part (per series on a panel source)"),
    Normalisation("last_value", "zscore", "last_value",
                  "z-score, then every window relative to its last value (learns a correction to naive)"),
    Normalisation("window", "zscore", "window",
                  "z-score, then per-window mean and std removed and restored on the outputs (RevIN)"),
    Normalisation("minmax", "minmax", None,
                  "the seed notebooks' [0, 1] min-max scaling, fitted on the training part"),
):
    NORMALISATIONS.add(_entry.name, _entry)
