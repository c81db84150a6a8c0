"""How a series is cut and scaled: the target split (history before a fixed test segment, the
history's tail held out for validation), the z-score scaler, and the arrays one cell trains and
is tested on; plus the per-series arrays for pretraining on a panel (M4).

Layout of a target of ``n_total`` points (positions into the full series)::

    [0 ........ history_start ...... val_start ...... test_start ........ end = n_total)
     unused     | training part    | validation part | test segment (fixed) |
                |<------------ history: target_size ->|

* This layout is the ``tlbench`` protocol's cut; ``split.protocol`` picks another from
  :data:`CUTS` (``ett_standard``: fixed row boundaries), the rows the series scaler is fitted on
  (:data:`SCALER_RANGES`; ``notebook``: the whole series, on purpose) and the time order of the
  input windows (:data:`LAG_ORDERS`). See :mod:`benchmark.data.protocols` and docs/protocols.md.
* The test segment is the last ``test_length(n_total, split)`` points: it depends only on the
  series and the split, so it is identical for every ``target_size``.
* The history is the ``target_size`` points right before it; nothing before ``history_start`` is
  ever used, so ``target_size`` is exactly the amount of target data a model sees.
* Training windows lie wholly inside the training part (inputs and targets); validation windows
  have their targets in the validation part and may take inputs from the training part; test
  windows have their targets in the test segment and take inputs from the history and earlier
  test points (observed values, as in deployment, not leakage).
* The series scaler of the cell's normalisation (:mod:`benchmark.data.normalisation`) is fitted
  on the training part only. No test value reaches a scaler fit or a training or validation
  target. A normalisation's window stage lives in the model and reads each input window alone.
* Test origins: every ``split.test_stride``-th first-target position of the test segment
  (:func:`test_origins`), the same for models and baselines; each is scored over ``horizon`` steps.
  A ``recursive`` forecast (``split.forecast``) trains on one-step windows and is scored on the
  same origins and steps as a ``direct`` one.
* With input features (:mod:`benchmark.data.features`) the inputs are a ``[T, F]`` matrix whose
  column 0 is the target; every column gets its own scaler, fitted on the training part only. The
  targets ``y_*`` are always the target alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from benchmark.data.features import build_inputs, feature_columns
from benchmark.data.normalisation import NORMALISATIONS, Scaler
from benchmark.data.protocols import PROTOCOLS
from benchmark.data.validation import check_length
from benchmark.data.windows import FORECASTS, make_windows, target_range, target_windows
from benchmark.spec.errors import DataError
from benchmark.spec.registry import Registry
from benchmark.spec.sections import PretrainSpec, SplitSpec

__all__ = ["CUTS", "CellData", "LAG_ORDERS", "SCALER_RANGES", "Scaler", "SourceArrays", "TargetSplit",
           "make_cell_data", "scale_metrics", "source_arrays", "split_target", "test_length",
           "test_origins", "sample_positions"]


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
    """Cut a target of ``n_total`` points for one ``target_size``, by the cut of ``split.protocol``
    (:data:`CUTS`; docs/protocols.md). Raises :class:`DataError` when the series or the history is
    too short, or the size does not fit the protocol."""
    protocol = PROTOCOLS.get(split.protocol)
    return CUTS.get(protocol.cut)(n_total, target_size, split, label, **protocol.cut_options)


def _tail_cut(n_total: int, target_size: int, split: SplitSpec, label: str,
              validation: bool = True) -> TargetSplit:
    """The tail cut (``tlbench``, ``notebook``): a fixed test segment at the end, the history the
    ``target_size`` points right before it.

    With ``validation``, the history's last ``ceil(val_fraction * target_size)`` points are held
    out, at least ``horizon`` (one validation window) and at most what leaves ``lookback +
    horizon`` training points (one training window); without it the whole history trains.
    """
    lookback, horizon = split.lookback, split.horizon
    n_test = test_length(n_total, split)
    if n_test < horizon:
        raise DataError(f"target {label}: the test segment has {n_test} points, fewer than "
                        f"horizon {horizon}: raise split.test_size or split.test_fraction.")
    minimum = lookback + (2 if validation else 1) * horizon
    if target_size < minimum:
        held_out = f", + horizon {horizon} for one validation window" if validation else ""
        raise DataError(f"target {label}: target_size {target_size} is too small for lookback "
                        f"{lookback} and horizon {horizon}, which need at least {minimum} points "
                        f"(lookback {lookback} + horizon {horizon} for one training window"
                        f"{held_out}): choose a target_size >= {minimum} or a shorter lookback.")
    check_length(n_total, target_size + n_test, f"target {label}",
                 f"target_size {target_size} + test {n_test}")
    test_start = n_total - n_test
    history_start = test_start - target_size
    n_val = 0
    if validation:
        n_val = int(math.ceil(split.val_fraction * target_size))
        n_val = min(max(n_val, horizon), target_size - (lookback + horizon))
    return TargetSplit(history_start=history_start, val_start=test_start - n_val,
                       test_start=test_start, end=n_total, n_total=n_total)


def _fixed_cut(n_total: int, target_size: int, split: SplitSpec, label: str, train_end: int,
               val_end: int, test_end: int) -> TargetSplit:
    """A fixed split by row position (``ett_standard``): training ``[0, train_end)``, validation
    ``[train_end, val_end)``, test ``[val_end, test_end)``; rows from ``test_end`` on are never
    used. ``target_size`` N is the training part's last N rows ``[train_end - N, train_end)``.
    Validation and test windows take their lookback from the part before them."""
    lookback, horizon = split.lookback, split.horizon
    if target_size > train_end:
        raise DataError(f"target {label}: target_size {target_size} is larger than the fixed "
                        f"training part of split.protocol {split.protocol!r} ({train_end} rows, "
                        f"[0, {train_end})); choose a target_size <= {train_end}.")
    if target_size < lookback + horizon:
        raise DataError(f"target {label}: target_size {target_size} is too small for lookback "
                        f"{lookback} + horizon {horizon} (one training window); choose a "
                        f"target_size >= {lookback + horizon} or a shorter lookback.")
    if min(val_end - train_end, test_end - val_end) < horizon:
        raise DataError(f"target {label}: horizon {horizon} is longer than the validation or test "
                        f"part of split.protocol {split.protocol!r}.")
    if n_total < test_end:
        raise DataError(f"target {label} has {n_total} rows; split.protocol {split.protocol!r} "
                        f"needs at least {test_end} (training [0, {train_end}), validation "
                        f"[{train_end}, {val_end}), test [{val_end}, {test_end})): use a target "
                        "that long (ETTh1, ETTh2) or another protocol.")
    return TargetSplit(history_start=train_end - target_size, val_start=train_end,
                       test_start=val_end, end=test_end, n_total=n_total)


#: cut name -> ``fn(n_total, target_size, split, label, **cut_options) -> TargetSplit``
CUTS: Registry[Callable[..., TargetSplit]] = Registry("cut")
CUTS.add("tail", _tail_cut)
CUTS.add("fixed", _fixed_cut)

#: Which rows a scaler is fitted on: name -> ``fn(cut) -> (start, end)`` positions.
SCALER_RANGES: Registry[Callable[[TargetSplit], tuple[int, int]]] = Registry("scaler range")
SCALER_RANGES.add("training", lambda cut: (cut.history_start, cut.val_start))
SCALER_RANGES.add("whole_series", lambda cut: (0, cut.n_total))
SCALER_RANGES.add("before_validation", lambda cut: (0, cut.val_start))

#: The time order of an input window: name -> ``fn(x [n, L, F]) -> [n, L, F]``.
LAG_ORDERS: Registry[Callable[[np.ndarray], np.ndarray]] = Registry("lag order")
LAG_ORDERS.add("oldest_first", lambda x: x)
LAG_ORDERS.add("newest_first", lambda x: np.ascontiguousarray(x[:, ::-1, :]))  # step L-1 first


def scale_metrics(split: SplitSpec, cut: TargetSplit, values: np.ndarray, y_true: np.ndarray,
                  y_pred: np.ndarray) -> dict[str, float]:
    """The metrics of ``split.protocol``'s extra scales: ``{"mse_z", "mae_z"}`` on the z-score
    fitted on its ``z_reference`` rows of ``values`` (the original series) when it scores the
    ``z`` scale, else ``{}``. ``y_true``/``y_pred``: original scale, any matching shape."""
    protocol = PROTOCOLS.get(split.protocol)
    if "z" not in protocol.scales:
        return {}
    start, end = SCALER_RANGES.get(protocol.z_reference)(cut)
    reference = Scaler().fit(values[start:end])
    error = (np.asarray(y_true, np.float64) - np.asarray(y_pred, np.float64)) / reference.std
    return {"mse_z": float(np.mean(error ** 2)), "mae_z": float(np.mean(np.abs(error)))}


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
    forecast: str = "direct"  # split.forecast: how the test forecasts are made
    test_stride: int = 1  # split.test_stride: the test windows are every k-th origin
    ds: np.ndarray | None = None  # the timestamps (or step indices) of ``values``, for time ranges


def test_origins(cut: TargetSplit, split: SplitSpec) -> np.ndarray:
    """First-target positions of the scored test windows: every ``split.test_stride``-th position
    ``t`` in the test segment whose ``lookback`` inputs and ``horizon`` targets fit the series."""
    first, last = target_range(cut.end, split.lookback, split.horizon, cut.test_start, cut.end)
    return np.arange(first, last, max(1, int(split.test_stride)))


test_origins.__test__ = False  # a library function named test_*, not a pytest test


def make_cell_data(frame: pd.DataFrame, target_size: int, split: SplitSpec, label: str,
                   features: Sequence[str] = (),
                   covariates: Mapping[str, np.ndarray] | None = None,
                   normalisation: str = "global") -> CellData:
    """Split, scale and window a single-series tidy frame for one ``target_size``.

    ``features``: registered input features (:mod:`benchmark.data.features`) besides the target;
    ``covariates``: the covariate columns they read, aligned with ``frame``
    (:func:`~benchmark.data.features.load_covariates`). ``normalisation`` names the series scaler
    (fitted on the training part); training and validation windows have the model's horizon
    (1 for a ``recursive`` forecast), test windows ``split.horizon`` at :func:`test_origins`.
    """
    ids = frame["unique_id"].unique()
    if len(ids) != 1:
        raise DataError(f"target {label} has {len(ids)} series ({', '.join(map(str, ids[:5]))}"
                        f"{', ...' if len(ids) > 5 else ''}); a target must be a single series: "
                        "choose one column/series in the source options.")
    values = frame["y"].to_numpy(dtype=np.float64)
    cut = split_target(len(values), target_size, split, label)
    lookback, horizon = split.lookback, split.horizon
    fit_horizon = FORECASTS.get(split.forecast).model_horizon(horizon)
    protocol = PROTOCOLS.get(split.protocol)
    raw_inputs = build_inputs(frame, features, label, covariates)  # [T, F], column 0 = values
    fit_start, fit_end = SCALER_RANGES.get(protocol.scaler_fit)(cut)  # tlbench: the training part
    input_scaler = NORMALISATIONS.get(normalisation).new_scaler().fit(raw_inputs[fit_start:fit_end])
    scaler = input_scaler.column(0)  # the target's, for forecasts
    scaled = input_scaler.transform(raw_inputs)  # [T, F]
    history = scaled[cut.history_start:cut.val_start]  # only the training part: no later input
    order = LAG_ORDERS.get(protocol.lags)
    x_train, y_train = make_windows(history, lookback, fit_horizon)
    x_val, y_val = make_windows(scaled, lookback, fit_horizon, start=cut.val_start, end=cut.test_start)
    keep = slice(None, None, max(1, int(split.test_stride)))  # the windows at test_origins()
    x_test, y_test = (a[keep] for a in make_windows(scaled, lookback, horizon, start=cut.test_start,
                                                    end=cut.end))
    x_train, x_val, x_test = order(x_train), order(x_val), order(x_test)
    y_test_true = target_windows(values, lookback, horizon, start=cut.test_start, end=cut.end)[keep]
    test_ds = target_windows(frame["ds"].to_numpy(), lookback, horizon, cut.test_start, cut.end)[keep]
    return CellData(x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test,
                    y_test=y_test, y_test_true=y_test_true,
                    insample=values[cut.history_start:cut.val_start].copy(), test_ds=test_ds,
                    scaler=scaler, split=cut, values=values, inputs=scaled.astype(np.float32),
                    input_scaler=input_scaler, columns=tuple(feature_columns(features)),
                    forecast=split.forecast, test_stride=max(1, int(split.test_stride)),
                    ds=frame["ds"].to_numpy())


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


def sample_positions(n_windows: int, k: int | None, sampling: str) -> np.ndarray:
    """Which of a series' ``n_windows`` training windows pretraining keeps (indices, ascending).

    ``k`` None or >= ``n_windows``: all of them. ``spread``: ``k`` evenly spaced over the whole
    training history, the first and the last included (``round(linspace(0, n - 1, k))``), so the
    body sees every season and level of a series, not only its recent past. ``last``: the last
    ``k`` (the former rule, kept for reruns).
    """
    if k is None or k >= n_windows:
        return np.arange(n_windows)
    if k <= 0:
        return np.arange(0)
    if sampling == "last":
        return np.arange(n_windows - k, n_windows)
    if sampling == "spread":
        return np.unique(np.round(np.linspace(0, n_windows - 1, k)).astype(int))
    raise DataError(f"pretrain.sampling {sampling!r} is unknown. Known: last, spread.")


def source_arrays(frame: pd.DataFrame, pretrain: PretrainSpec, lookback: int, horizon: int,
                  normalisation: str = "global") -> SourceArrays:
    """Windows of every series of a panel for pretraining.

    Per series of ``n`` points: targets are positions ``[lookback, n)``; the last
    ``ceil(pretrain.val_fraction * (n - lookback))`` of them form the validation part (early
    stopping watches held-out windows of every series), whose windows may take inputs from before
    it; training windows lie wholly before it. Each series is scaled by ``normalisation``'s series
    scaler fitted on its own training part. ``pretrain.windows_per_series`` keeps k training
    windows per series, chosen by ``pretrain.sampling`` (:func:`sample_positions`);
    ``pretrain.max_series`` the first k series in sorted id order. Series too short for a
    training window are left out (not counted in ``n_series``).
    """
    ids = np.sort(frame["unique_id"].unique())
    if pretrain.max_series is not None:
        ids = ids[:pretrain.max_series]
    positions = frame.groupby("unique_id", sort=False).indices  # id -> row positions
    y_all = frame["y"].to_numpy(dtype=np.float64)
    parts: dict[str, list[np.ndarray]] = {"x_train": [], "y_train": [], "x_val": [], "y_val": []}
    scalers: dict[str, Scaler] = {}
    norm = NORMALISATIONS.get(normalisation)
    for uid in ids:
        values = y_all[positions[uid]]
        n_targets = len(values) - lookback
        n_val = int(math.ceil(pretrain.val_fraction * n_targets)) if n_targets > 0 else 0
        val_start = len(values) - n_val
        if val_start - lookback < horizon:
            continue
        scaler = norm.new_scaler().fit(values[:val_start])
        scaled = scaler.transform(values)
        x_train, y_train = make_windows(scaled[:val_start], lookback, horizon)
        keep = sample_positions(len(x_train), pretrain.windows_per_series, pretrain.sampling)
        x_train, y_train = x_train[keep], y_train[keep]
        x_val, y_val = make_windows(scaled, lookback, horizon, start=val_start)
        for key, array in (("x_train", x_train), ("y_train", y_train), ("x_val", x_val),
                           ("y_val", y_val)):
            parts[key].append(array)
        scalers[str(uid)] = scaler
    if not scalers:
        raise DataError(f"no series of the pretraining source is long enough for lookback "
                        f"{lookback} + horizon {horizon} with val_fraction {pretrain.val_fraction}: "
                        "choose a shorter lookback or another source.")
    arrays = {key: np.concatenate(chunks) for key, chunks in parts.items()}
    return SourceArrays(**arrays, n_series=len(scalers), scalers=scalers)
