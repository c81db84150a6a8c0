"""Input features besides the target: a registry of causal feature builders and the one function
that turns a tidy frame into the (T, F) input matrix of a cell.

A feature is named ``kind`` or ``kind:argument`` (``rolling_mean:24``, ``hour_of_day``,
``day_of_week``, ``covariate:HUFL``). Every builder is *causal*: the value at time ``t`` uses only
the target, timestamps or covariates at times ``<= t``; the windowing then feeds a window's inputs
from times ``< t`` only, so no input ever sees a value at or after the first target it predicts.

The target is always input column 0 (the windows take their targets from it); the features follow
in the order they are listed. Scaling is not done here: :func:`benchmark.data.splits.make_cell_data`
fits one z-score scaler per column on the training part only.

Covariates (other columns of the target's file) are loaded by the caller with the target's own
source (:func:`covariate_spec` says which spec) and passed in by column name, aligned on ``ds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from benchmark.spec.errors import DataError
from benchmark.spec.registry import Registry
from benchmark.spec.sections import DataSpec


# What a builder may read: the target values (T,), the timestamps (T,), the covariates by column.
@dataclass(frozen=True)
class FeatureInputs:
    y: np.ndarray  # [T] float64
    ds: np.ndarray  # [T] datetime64 or int steps
    covariates: Mapping[str, np.ndarray]  # column -> [T] float64, aligned with y
    label: str  # the target's label, for messages


# (inputs, argument or None) -> [T, k] float64 columns
FeatureBuilder = Callable[[FeatureInputs, str | None], np.ndarray]


@dataclass(frozen=True)
class Feature:
    """A registered feature kind: its builder, its column suffixes, whether it takes an argument."""

    kind: str
    build: FeatureBuilder
    columns: tuple[str, ...]  # suffixes of the columns it adds ("" for one column)
    argument: str | None  # what the argument is (None: takes none), for messages
    check_argument: Callable[[str], str | None] = lambda value: None  # a problem, or None
    example: str = ""  # a valid name, for messages
    # (argument, target spec, YAML path) -> problems of using it on that target
    target_problems: Callable[[str, DataSpec, str], list[str]] = lambda argument, target, where: []
    description: str = ""


FEATURES: Registry[Feature] = Registry("feature")

# Sources whose files have other columns, and the option that names the column a spec reads.
COLUMN_OPTION: dict[str, str] = {"ett": "column", "csv": "value_column"}


def _positive_int(value: str) -> str | None:
    return None if value.isdigit() and int(value) > 0 else f"expected a positive integer, got {value!r}"


def _rolling_mean(inputs: FeatureInputs, argument: str | None) -> np.ndarray:
    # Trailing window ending at t (includes y_t, never y_{t+1}); the first points use what exists.
    window = int(argument)
    values = pd.Series(inputs.y).rolling(window, min_periods=1).mean().to_numpy()
    return values[:, None]  # [T] -> [T, 1]


def _timestamps(inputs: FeatureInputs, kind: str) -> pd.DatetimeIndex:
    if not np.issubdtype(np.asarray(inputs.ds).dtype, np.datetime64):
        raise DataError(f"target {inputs.label}: feature {kind!r} needs timestamps, but its ds is a "
                        "step index; drop the calendar feature or use a source with dates.")
    return pd.DatetimeIndex(inputs.ds)


def _cyclic(position: np.ndarray, period: float) -> np.ndarray:
    angle = 2 * np.pi * np.asarray(position, dtype=np.float64) / period
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)  # [T, 2]


def _hour_of_day(inputs: FeatureInputs, argument: str | None) -> np.ndarray:
    stamps = _timestamps(inputs, "hour_of_day")
    return _cyclic(stamps.hour + stamps.minute / 60.0, 24.0)


def _day_of_week(inputs: FeatureInputs, argument: str | None) -> np.ndarray:
    stamps = _timestamps(inputs, "day_of_week")
    return _cyclic(stamps.day_of_week + stamps.hour / 24.0, 7.0)


def _covariate(inputs: FeatureInputs, argument: str | None) -> np.ndarray:
    if argument not in inputs.covariates:
        raise DataError(f"target {inputs.label}: covariate {argument!r} was not loaded; load it with "
                        "load_covariates (benchmark.data.features) and pass it in.")
    return np.asarray(inputs.covariates[argument], dtype=np.float64)[:, None]  # [T, 1]


def _covariate_problems(column: str, target: DataSpec, where: str) -> list[str]:
    option = COLUMN_OPTION.get(target.source)
    if option is None:
        return [f"{where}: covariate {column!r} needs a target with other columns (sources "
                f"{', '.join(sorted(COLUMN_OPTION))}); source {target.source!r} has one series only"]
    if (target.options or {}).get(option) == column:
        return [f"{where}: covariate {column!r} is the target column itself; it is already input 0"]
    return []


FEATURES.add("rolling_mean", Feature("rolling_mean", _rolling_mean, ("",), "window in points",
                                     _positive_int, "rolling_mean:24",
                                     description="mean of the last `window` target values, up to t"))
FEATURES.add("hour_of_day", Feature("hour_of_day", _hour_of_day, ("sin", "cos"), None,
                                    example="hour_of_day",
                                    description="sin/cos of the hour of day (timestamps only)"))
FEATURES.add("day_of_week", Feature("day_of_week", _day_of_week, ("sin", "cos"), None,
                                    example="day_of_week",
                                    description="sin/cos of the day of week (timestamps only)"))
FEATURES.add("covariate", Feature("covariate", _covariate, ("",), "column of the target's file",
                                  lambda value: None if value else "expected a column name",
                                  "covariate:HUFL", _covariate_problems,
                                  "another column of the target's ett or csv file, at time t"))


# --------------------------------------------------------------------------- names


def parse_feature(name: str) -> tuple[str, str | None]:
    """``"rolling_mean:24"`` -> ``("rolling_mean", "24")``; ``"hour_of_day"`` -> ``(.., None)``."""
    kind, sep, argument = str(name).partition(":")
    return kind, (argument if sep else None)


def feature_problems(names: Sequence[str], target: DataSpec | None, path: str) -> list[str]:
    """Every problem of one feature set (unknown kinds, bad or missing arguments, duplicates,
    covariates of a source without other columns or naming the target itself), with YAML paths."""
    problems: list[str] = []
    if len(set(names)) != len(names):
        problems.append(f"{path}: duplicate features in {list(names)}")
    for i, name in enumerate(names):
        kind, argument = parse_feature(name)
        where = f"{path}[{i}]"
        if kind not in FEATURES:
            problems.append(f"{where}: {FEATURES.unknown_message(kind)} Write a feature as kind or "
                            "kind:argument, e.g. rolling_mean:24, hour_of_day, covariate:HUFL.")
            continue
        feature = FEATURES.get(kind)
        if feature.argument is None and argument is not None:
            problems.append(f"{where}: feature {kind!r} takes no argument; write {kind!r}")
        elif feature.argument is not None and argument is None:
            problems.append(f"{where}: feature {kind!r} needs an argument ({feature.argument}), "
                            f"e.g. {feature.example}")
        elif argument is not None and (problem := feature.check_argument(argument)):
            problems.append(f"{where}: {kind}: {problem}")
        elif argument is not None and target is not None:
            problems.extend(feature.target_problems(argument, target, where))
    return problems


def covariate_columns(names: Sequence[str]) -> list[str]:
    """The covariate columns a feature set reads, in order."""
    return [argument for kind, argument in map(parse_feature, names) if kind == "covariate"]


def covariate_spec(target: DataSpec, column: str) -> DataSpec:
    """The data spec that loads ``column`` of the target's file with the target's own source."""
    option = COLUMN_OPTION.get(target.source)
    if option is None:
        raise DataError(f"covariate {column!r}: source {target.source!r} has no other columns; "
                        f"covariates work for sources {', '.join(sorted(COLUMN_OPTION))}.")
    return DataSpec(target.source, {**dict(target.options or {}), option: column})


def load_covariates(target: DataSpec, frame: pd.DataFrame, names: Sequence[str],
                    load: Callable[[DataSpec], pd.DataFrame]) -> dict[str, np.ndarray]:
    """The covariate columns of a feature set, aligned with ``frame`` on ``ds`` (float64 [T]).

    ``load(spec)`` returns a source's tidy frame (e.g. :func:`benchmark.data.loading.load_data`); an
    unknown column raises the source's own DataError, which lists the available ones. A
    covariate whose timestamps differ from the target's (e.g. other gaps) is refused.
    """
    out: dict[str, np.ndarray] = {}
    for column in covariate_columns(names):
        other = load(covariate_spec(target, column))
        if len(other) != len(frame) or not np.array_equal(other["ds"].to_numpy(), frame["ds"].to_numpy()):
            raise DataError(f"covariate {column!r} of target {target.source}: its {len(other)} timestamps "
                            f"differ from the target's {len(frame)}; covariates must share the target's "
                            "timestamps (same file, same gap filling).")
        out[column] = other["y"].to_numpy(dtype=np.float64)
    return out


# --------------------------------------------------------------------------- the input matrix


def feature_columns(names: Sequence[str]) -> list[str]:
    """Column names of :func:`build_inputs`' matrix: ``y`` then each feature's columns."""
    columns = ["y"]
    for name in names:
        feature = FEATURES.get(parse_feature(name)[0])
        columns += [f"{name}_{suffix}" if suffix else name for suffix in feature.columns]
    return columns


def build_inputs(frame: pd.DataFrame, names: Sequence[str], label: str,
                 covariates: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The unscaled input matrix ``[T, F]`` of a single-series tidy frame: column 0 the target,
    then every feature of ``names`` (``F = len(feature_columns(names))``). Causal by construction:
    row ``t`` depends on values at times ``<= t`` only."""
    inputs = FeatureInputs(y=frame["y"].to_numpy(dtype=np.float64), ds=frame["ds"].to_numpy(),
                           covariates=dict(covariates or {}), label=label)
    blocks = [inputs.y[:, None]]  # [T, 1]
    for name in names:
        kind, argument = parse_feature(name)
        block = np.asarray(FEATURES.get(kind).build(inputs, argument), dtype=np.float64)
        blocks.append(block.reshape(len(inputs.y), -1))  # [T, k]
    matrix = np.concatenate(blocks, axis=1)  # [T, F]
    if not np.isfinite(matrix).all():
        bad = feature_columns(names)[int(np.where(~np.isfinite(matrix).all(axis=0))[0][0])]
        raise DataError(f"target {label}: input column {bad!r} has missing or infinite values; "
                        "fill the covariate's gaps (split.fill_gaps) or drop it.")
    return matrix
