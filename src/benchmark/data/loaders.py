"""The per-source loaders: ``m4``, ``ett``, ``sunspots``, ``sunspots_yearly``, ``sine`` and
``csv``, each a frozen options class, a loader returning a tidy frame (not yet validated) and a
short stable label; :data:`BUILTIN_SOURCES` lists them for the registry in
:mod:`benchmark.data.sources`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from benchmark.data.fetch import ensure_file, parse_dates, read_table, require_columns, tidy
from benchmark.data.validation import validate_frame
from benchmark.spec.errors import DataError


@dataclass(frozen=True)
class Source:
    """A named loader: ``load(options, data_dir, allow_download)`` returns a tidy frame (not yet
    validated); ``label(options)`` is a short stable name such as ``ett/ETTh1:OT``."""

    name: str
    options_cls: type
    load: Callable[[Any, Path, bool], pd.DataFrame]
    label: Callable[[Any], str]


# --------------------------------------------------------------------------- m4

M4_GROUPS = ("Hourly", "Daily", "Weekly", "Monthly", "Quarterly", "Yearly")
M4_URL = "https://raw.githubusercontent.com/Mcompetitions/M4-methods/master/Dataset"


@dataclass(frozen=True)
class M4Options:
    group: str = "Hourly"
    max_series: int | None = None  # the first k series in sorted id order
    series: tuple[str, ...] | None = None  # explicit ids, e.g. ["H1", "H2"]

    def problems(self) -> list[str]:
        found = []
        if self.group not in M4_GROUPS:
            found.append(f"group: unknown M4 group {self.group!r}. Known: {', '.join(M4_GROUPS)}")
        if self.max_series is not None and self.max_series < 1:
            found.append(f"max_series: expected a positive integer, got {self.max_series}")
        return found


def _m4_file(group: str, part: str, data_dir: Path, allow_download: bool) -> Path:
    """``{data_dir}/m4/datasets/{group}-{part}.csv``, downloaded when missing and allowed."""
    path = Path(data_dir) / "m4" / "datasets" / f"{group}-{part}.csv"
    url = f"{M4_URL}/{part.capitalize()}/{group}-{part}.csv"
    return ensure_file(path, f"m4/{group}", allow_download, url)


def _read_m4_wide(path: Path) -> pd.DataFrame:
    """The official wide CSV: one row per series (index = id), columns V2, V3, ..."""
    wide = pd.read_csv(path, index_col=0)
    wide.index = wide.index.astype(str)
    return wide.sort_index()


def _m4_long(wide: pd.DataFrame, first_step: np.ndarray, path: Path) -> pd.DataFrame:
    """Wide -> tidy without a Python loop; trailing padding (NaN) is dropped. ``first_step``
    [n_series]: the step index of each row's first column."""
    values = wide.to_numpy(dtype=np.float64)  # [n_series, max_len], NaN-padded
    present = ~np.isnan(values)
    rows, cols = np.nonzero(present)  # row-major: sorted by series, then step
    frame = tidy(wide.index.to_numpy()[rows], (first_step[rows] + cols).astype(np.int64),
                  values[rows, cols], file=path)
    return frame


def _m4_lengths(wide: pd.DataFrame) -> np.ndarray:
    """Observations per row: position of the last non-empty cell + 1 (padding is trailing)."""
    present = wide.notna().to_numpy()  # [n_series, max_len]
    return present.shape[1] - np.argmax(present[:, ::-1], axis=1)


def _load_m4(options: M4Options, data_dir: Path, allow_download: bool) -> pd.DataFrame:
    path = _m4_file(options.group, "train", data_dir, allow_download)
    wide = _read_m4_wide(path)
    if options.series is not None:
        unknown = [s for s in options.series if s not in wide.index]
        if unknown:
            raise DataError(f"m4/{options.group}: unknown series {', '.join(unknown)} in {path}. "
                            f"Known ids look like {', '.join(wide.index[:3])}, ... "
                            f"({len(wide)} series).")
        wide = wide.loc[sorted(set(options.series))]
    if options.max_series is not None:
        wide = wide.iloc[:options.max_series]
    return _m4_long(wide, np.ones(len(wide), dtype=np.int64), path)


def load_m4_test(group: str, data_dir: Path, allow_download: bool = True) -> pd.DataFrame:
    """The official test part of an M4 group as a validated tidy frame; ``ds`` continues after
    each series' training part (a series of 700 training points has test steps 701..748)."""
    train = _read_m4_wide(_m4_file(group, "train", data_dir, allow_download))
    path = _m4_file(group, "test", data_dir, allow_download)
    test = _read_m4_wide(path)
    missing = test.index.difference(train.index)
    if len(missing):
        raise DataError(f"m4/{group}: test series {', '.join(missing[:5])} have no training part "
                        f"in {path.parent}. Fix: use the official train and test files together.")
    first_step = _m4_lengths(train.loc[test.index]) + 1
    return validate_frame(_m4_long(test, first_step, path), f"m4/{group} test")


def _m4_label(options: M4Options) -> str:
    extra = []
    if options.series is not None:
        extra.append(f"series={','.join(sorted(set(options.series)))}")
    if options.max_series is not None:
        extra.append(f"max_series={options.max_series}")
    return f"m4/{options.group}" + (f"({';'.join(extra)})" if extra else "")


# --------------------------------------------------------------------------- ett

ETT_FILES = ("ETTh1", "ETTh2")
ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small"


@dataclass(frozen=True)
class EttOptions:
    file: str = "ETTh1"
    column: str = "OT"

    def problems(self) -> list[str]:
        if self.file not in ETT_FILES:
            return [f"file: unknown ETT file {self.file!r}. Known: {', '.join(ETT_FILES)}"]
        return []


def _load_ett(options: EttOptions, data_dir: Path, allow_download: bool) -> pd.DataFrame:
    label = _ett_label(options)
    path = ensure_file(Path(data_dir) / "ett" / f"{options.file}.csv", label, allow_download,
                        f"{ETT_URL}/{options.file}.csv")
    raw = read_table(path, label)
    require_columns(raw, path, label, {"date column": "date"})
    if options.column not in raw.columns or options.column == "date":
        available = [str(c) for c in raw.columns if c != "date"]
        raise DataError(f"{label}: unknown column {options.column!r} in {path}. Available: "
                        f"{', '.join(available)}. Fix: set the target's options.column.")
    return tidy(f"{options.file}:{options.column}", parse_dates(raw["date"]),
                 raw[options.column], file=path, date_column="date", value_column=options.column)


def _ett_label(options: EttOptions) -> str:
    return f"ett/{options.file}:{options.column}"


# --------------------------------------------------------------------------- sunspots


@dataclass(frozen=True)
class NoOptions:
    """A source without options."""


SUNSPOTS_DATE, SUNSPOTS_VALUE = "Date", "Monthly Mean Total Sunspot Number"


def _load_sunspots(options: NoOptions, data_dir: Path, allow_download: bool) -> pd.DataFrame:
    label = "sunspots/monthly"
    path = ensure_file(Path(data_dir) / "sunspots" / "Sunspots.csv", label, allow_download, None)
    raw = read_table(path, label)
    require_columns(raw, path, label, {"date column": SUNSPOTS_DATE,
                                        "value column": SUNSPOTS_VALUE})
    return tidy("sunspots_monthly", parse_dates(raw[SUNSPOTS_DATE]), raw[SUNSPOTS_VALUE],
                 file=path, date_column=SUNSPOTS_DATE, value_column=SUNSPOTS_VALUE)


def _load_sunspots_yearly(options: NoOptions, data_dir: Path, allow_download: bool) -> pd.DataFrame:
    from statsmodels.datasets import sunspots  # ships with statsmodels; imported on use only

    raw = sunspots.load_pandas().data  # YEAR (float, 1700.0 ...), SUNACTIVITY
    years = raw["YEAR"].astype(int).astype(str)
    return tidy("sunspots_yearly", pd.to_datetime(years, format="%Y"), raw["SUNACTIVITY"],
                 date_column="YEAR", value_column="SUNACTIVITY")


# --------------------------------------------------------------------------- sine


@dataclass(frozen=True)
class SineOptions:
    length: int = 2000
    period: int = 24
    noise: float = 0.1  # std of Gaussian noise
    seed: int = 0
    amplitude: float = 1.0
    offset: float = 10.0  # keeps values positive, so MAPE and sMAPE are meaningful

    def problems(self) -> list[str]:
        found = []
        if self.length < 2:
            found.append(f"length: expected at least 2 points, got {self.length}")
        if self.period < 1:
            found.append(f"period: expected a positive integer, got {self.period}")
        if self.noise < 0:
            found.append(f"noise: expected a standard deviation >= 0, got {self.noise}")
        return found


def _load_sine(options: SineOptions, data_dir: Path, allow_download: bool) -> pd.DataFrame:
    rng = np.random.default_rng(options.seed)
    steps = np.arange(options.length)
    y = (options.offset + options.amplitude * np.sin(2 * np.pi * steps / options.period)
         + options.noise * rng.standard_normal(options.length))
    ds = pd.date_range("2020-01-01", periods=options.length, freq="h")
    return tidy("sine", ds, y)


# --------------------------------------------------------------------------- csv


@dataclass(frozen=True)
class CsvOptions:
    path: str  # relative paths are resolved against the data directory
    date_column: str
    value_column: str
    id_column: str | None = None  # several series in one long file; None: a single series


def _load_csv(options: CsvOptions, data_dir: Path, allow_download: bool) -> pd.DataFrame:
    label = _csv_label(options)
    path = Path(os.path.expanduser(options.path))
    if not path.is_absolute():
        path = Path(data_dir) / path
    ensure_file(path, label, allow_download, None)
    wanted = {"date_column": options.date_column, "value_column": options.value_column}
    if options.id_column is not None:
        wanted["id_column"] = options.id_column
    raw = read_table(path, label)
    require_columns(raw, path, label, wanted)
    ids = (raw[options.id_column].astype(str) if options.id_column is not None
           else f"{Path(options.path).stem}:{options.value_column}")
    return tidy(ids, parse_dates(raw[options.date_column]), raw[options.value_column],
                 file=path, date_column=options.date_column, value_column=options.value_column)


def _csv_label(options: CsvOptions) -> str:
    return f"csv/{Path(options.path).stem}:{options.value_column}"


#: The sources tlbench ships, in registry order.
BUILTIN_SOURCES = (
    Source("m4", M4Options, _load_m4, _m4_label),
    Source("ett", EttOptions, _load_ett, _ett_label),
    Source("sunspots", NoOptions, _load_sunspots,
                               lambda options: "sunspots/monthly"),
    Source("sunspots_yearly", NoOptions, _load_sunspots_yearly,
                                      lambda options: "sunspots/yearly"),
    Source("sine", SineOptions, _load_sine,
                           lambda o: f"sine(n={o.length},p={o.period})"),
    Source("csv", CsvOptions, _load_csv, _csv_label),
)
