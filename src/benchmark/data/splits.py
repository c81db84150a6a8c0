"""How a series is cut and scaled: the target split (history before a fixed test segment, the
history's tail held out for validation), the z-score scaler, and the arrays one cell trains and
is tested on; plus the per-series arrays for pretraining on a panel (M4).

Layout of a target of ``n_total`` points (positions into the full series)::

    [0 ........ history_start ...... val_start ...... test_start ........ end = n_total)
     unused     | training part    | validation part | test segment (fixed) |
                |<------------ history: target_size ->|

* The test segment is the last ``test_length(n_total, split)`` points: it depends only on the
  series and the split, so it is identical for every ``target_size``.
* The history is the ``target_size`` points right before it; nothing before ``history_start`` is
  ever used, so ``target_size`` is exactly the amount of target data a model sees.
* Training windows lie wholly inside the training part (inputs and targets); validation windows
  have their targets in the validation part and may take inputs from the training part; test
  windows have their targets in the test segment and take inputs from the history and earlier
  test points (observed values, as in deployment, not leakage).
* The scaler is fitted on the training part only. No test value reaches a scaler fit or a
  training or validation target.
* With input features (:mod:`benchmark.data.features`) the inputs are a ``[T, F]`` matrix whose
  column 0 is the target; every column gets its own scaler, fitted on the training part only. The
  targets ``y_*`` are always the target alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from typing import Mapping, Sequence

from benchmark.config import SplitSpec
from benchmark.data.features import build_inputs, feature_columns
from benchmark.data.validation import check_length
from benchmark.data.windows import make_windows, target_windows
from benchmark.errors import DataError


def test_length(n_total: int, split: SplitSpec) -> int:
    """Points in the fixed test segment: ``split.test_size``, else ``ceil(test_fraction * n)``."""
    if split.test_size is not None:
        return int(split.test_size)
    return int(math.ceil(split.test_fraction * n_total))


test_length.__test__ = False  # a library function named test_*, not a pytest test


@dataclass(frozen=True)
class TargetSplit:
    """Integer positions into the full series (see the module docstring for the layout)."""

    history_start: int
    val_start: int
    test_start: int
    end: int
    n_total: int

    @property
    def target_size(self) -> int:
        return self.test_start - self.history_start

    @property
    def n_train(self) -> int:
        return self.val_start - self.history_start

    @property
    def n_val(self) -> int:
        return self.test_start - self.val_start

    @property
    def n_test(self) -> int:
        return self.end - self.test_start

    def to_dict(self) -> dict[str, int]:
        return {"history_start": self.history_start, "val_start": self.val_start,
                "test_start": self.test_start, "end": self.end, "n_total": self.n_total}


def split_target(n_total: int, target_size: int, split: SplitSpec, label: str) -> TargetSplit:
    """Cut a target of ``n_total`` points for one ``target_size``.

    Validation is the last ``ceil(val_fraction * target_size)`` points of the history, at least
    ``horizon`` (one validation window) and at most what leaves ``lookback + horizon`` training
    points (one training window). Raises :class:`DataError` when the series or the history is too
    short.
    """
    lookback, horizon = split.lookback, split.horizon
    n_test = test_length(n_total, split)
    if n_test < horizon:
        raise DataError(f"target {label}: the test segment has {n_test} points, fewer than "
                        f"horizon {horizon}: raise split.test_size or split.test_fraction.")
    minimum = lookback + 2 * horizon
    if target_size < minimum:
        raise DataError(f"target {label}: target_size {target_size} is too small for lookback "
                        f"{lookback} and horizon {horizon}, which need at least {minimum} points "
                        f"(lookback {lookback} + horizon {horizon} for one training window, "
                        f"+ horizon {horizon} for one validation window): choose a target_size "
                        f">= {minimum} or a shorter lookback.")
    check_length(n_total, target_size + n_test, f"target {label}",
                 f"target_size {target_size} + test {n_test}")
    test_start = n_total - n_test
    history_start = test_start - target_size
    n_val = int(math.ceil(split.val_fraction * target_size))
    n_val = min(max(n_val, horizon), target_size - (lookback + horizon))
    return TargetSplit(history_start=history_start, val_start=test_start - n_val,
                       test_start=test_start, end=n_total, n_total=n_total)


class Scaler:
    """Z-score scaling, ``(x - mean) / std`` per feature; a constant feature gets std 1.

    Works on (n,) or (n, F) arrays; ``fit`` on the training part only.
    """

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

    def to_dict(self) -> dict[str, float | list[float]]:
        self._check()
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "Scaler":
        return cls(mean=data["mean"], std=data["std"])

    def __repr__(self) -> str:
        return f"Scaler(mean={self.mean!r}, std={self.std!r})"


@dataclass
class CellData:
    """Everything one cell trains and is tested on.

    Scaled float32 arrays: ``x_*`` (n, lookback, F) and ``y_*`` (n, horizon); ``F`` is 1 (the
    target) plus the input features' columns (``columns`` names them, ``"y"`` first). ``inputs``
    is the whole scaled input matrix (n_total, F), float32, for the stateful regime, which reads
    the series in order instead of windows; ``input_scaler`` scaled it (per column, fitted on the
    training part), ``scaler`` is the target's own (column 0's). ``y_test_true``
    (n_test_windows, horizon) float64 and ``test_ds`` (same shape, timestamps or step indices)
    are the test targets on the original scale. ``insample`` is the original-scale training part
    ``values[history_start:val_start]``, the data the model is fitted on, whose seasonal-naive
    error is the MASE scale (models and baselines must share it); ``values`` is the whole
    original series (1-D), for the one-step baselines.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    y_test_true: np.ndarray
    insample: np.ndarray
    test_ds: np.ndarray
    scaler: Scaler
    split: TargetSplit
    values: np.ndarray
    inputs: np.ndarray | None = None
    input_scaler: Scaler | None = None
    columns: tuple[str, ...] = ("y",)


def make_cell_data(frame: pd.DataFrame, target_size: int, split: SplitSpec, label: str,
                   features: Sequence[str] = (),
                   covariates: Mapping[str, np.ndarray] | None = None) -> CellData:
    """Split, scale and window a single-series tidy frame for one ``target_size``.

    ``features``: registered input features (:mod:`benchmark.data.features`) besides the target;
    ``covariates``: the covariate columns they read, aligned with ``frame``
    (:func:`~benchmark.data.features.load_covariates`).
    """
    ids = frame["unique_id"].unique()
    if len(ids) != 1:
        raise DataError(f"target {label} has {len(ids)} series ({', '.join(map(str, ids[:5]))}"
                        f"{', ...' if len(ids) > 5 else ''}); a target must be a single series: "
                        "choose one column/series in the source options.")
    values = frame["y"].to_numpy(dtype=np.float64)
    cut = split_target(len(values), target_size, split, label)
    lookback, horizon = split.lookback, split.horizon
    raw_inputs = build_inputs(frame, features, label, covariates)  # [T, F], column 0 = values
    input_scaler = Scaler().fit(raw_inputs[cut.history_start:cut.val_start])
    scaler = Scaler(input_scaler.mean[0], input_scaler.std[0])  # the target's, for forecasts
    scaled = input_scaler.transform(raw_inputs)  # [T, F]
    history = scaled[cut.history_start:cut.val_start]  # only the training part: no later input
    x_train, y_train = make_windows(history, lookback, horizon)
    x_val, y_val = make_windows(scaled, lookback, horizon, start=cut.val_start, end=cut.test_start)
    x_test, y_test = make_windows(scaled, lookback, horizon, start=cut.test_start, end=cut.end)
    y_test_true = target_windows(values, lookback, horizon, start=cut.test_start, end=cut.end)
    test_ds = target_windows(frame["ds"].to_numpy(), lookback, horizon, cut.test_start, cut.end)
    return CellData(x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test,
                    y_test=y_test, y_test_true=y_test_true,
                    insample=values[cut.history_start:cut.val_start].copy(), test_ds=test_ds,
                    scaler=scaler, split=cut, values=values, inputs=scaled.astype(np.float32),
                    input_scaler=input_scaler, columns=tuple(feature_columns(features)))


@dataclass
class SourceArrays:
    """Pretraining arrays of a panel: scaled float32 ``x_*`` (n, lookback, 1), ``y_*``
    (n, horizon); ``n_series`` series used; each series' scaler, by id."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_series: int
    scalers: dict[str, Scaler]


def source_arrays(frame: pd.DataFrame, lookback: int, horizon: int, val_fraction: float,
                  windows_per_series: int | None = None,
                  max_series: int | None = None) -> SourceArrays:
    """Windows of every series of a panel for pretraining.

    Per series of ``n`` points: targets are positions ``[lookback, n)``; the last
    ``ceil(val_fraction * (n - lookback))`` of them form the validation part, whose windows may
    take inputs from before it; training windows lie wholly before it. Each series is z-scored
    with a scaler fitted on its own training part. ``windows_per_series`` keeps the last k
    training windows of each series; ``max_series`` the first k series in sorted id order.
    Series too short for a training window are left out (not counted in ``n_series``).
    """
    ids = np.sort(frame["unique_id"].unique())
    if max_series is not None:
        ids = ids[:max_series]
    positions = frame.groupby("unique_id", sort=False).indices  # id -> row positions
    y_all = frame["y"].to_numpy(dtype=np.float64)
    parts: dict[str, list[np.ndarray]] = {"x_train": [], "y_train": [], "x_val": [], "y_val": []}
    scalers: dict[str, Scaler] = {}
    for uid in ids:
        values = y_all[positions[uid]]
        n_targets = len(values) - lookback
        n_val = int(math.ceil(val_fraction * n_targets)) if n_targets > 0 else 0
        val_start = len(values) - n_val
        if val_start - lookback < horizon:
            continue
        scaler = Scaler().fit(values[:val_start])
        scaled = scaler.transform(values)
        x_train, y_train = make_windows(scaled[:val_start], lookback, horizon)
        if windows_per_series is not None:
            keep = max(len(x_train) - windows_per_series, 0)
            x_train, y_train = x_train[keep:], y_train[keep:]
        x_val, y_val = make_windows(scaled, lookback, horizon, start=val_start)
        for key, array in (("x_train", x_train), ("y_train", y_train), ("x_val", x_val),
                           ("y_val", y_val)):
            parts[key].append(array)
        scalers[str(uid)] = scaler
    if not scalers:
        raise DataError(f"no series of the pretraining source is long enough for lookback "
                        f"{lookback} + horizon {horizon} with val_fraction {val_fraction}: "
                        "choose a shorter lookback or another source.")
    arrays = {key: np.concatenate(chunks) for key, chunks in parts.items()}
    return SourceArrays(**arrays, n_series=len(scalers), scalers=scalers)
