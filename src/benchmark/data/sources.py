"""The data sources: a registry of named loaders (``m4``, ``ett``, ``sunspots``,
``sunspots_yearly``, ``sine``, ``csv``), each with a frozen options class, a loader and a short
stable label; parsing and checking of a :class:`~benchmark.config.DataSpec`'s options; loading
into the tidy ``unique_id, ds, y`` frame (validated by :mod:`benchmark.data.validation`); and a
content fingerprint of a loaded frame.

Files are read from a data directory passed in by the caller (``Settings.data_dir``); a missing
file is downloaded only when the caller allows it, never at import time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from benchmark.config import SCALARS, DataSpec, convert_scalar
from benchmark.data.validation import validate_frame
from benchmark.errors import DataError, SpecError
from benchmark.registry import Registry


@dataclass(frozen=True)
class Source:
    """A named loader: ``load(options, data_dir, allow_download)`` returns a tidy frame (not yet
    validated); ``label(options)`` is a short stable name such as ``ett/ETTh1:OT``."""

    name: str
    options_cls: type
    load: Callable[[Any, Path, bool], pd.DataFrame]
    label: Callable[[Any], str]


SOURCES: Registry[Source] = Registry("source")

_FIX_DATA_DIR = "set TLBENCH_DATA_DIR (or --data-dir) to the folder that holds it"
_FIX_OFFLINE = f"{_FIX_DATA_DIR}, or allow downloads (unset TLBENCH_OFFLINE)"


# --------------------------------------------------------------------------- options


def parse_options(spec: DataSpec, path: str = "target") -> tuple[Any, list[str]]:
    """``spec.options`` as the source's options object, and every problem found, each prefixed by
    its YAML path, e.g. ``grid.targets[0].colum: unknown option for source 'ett'. Known: column,
    file``. The options object is ``None`` when there are problems."""
    if spec.source not in SOURCES:
        return None, [f"{path}.source: {SOURCES.unknown_message(spec.source)}"]
    source = SOURCES.get(spec.source)
    cls = source.options_cls
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    problems: list[str] = []
    options = dict(spec.options or {})
    for key in options:
        if key not in fields:
            known = ", ".join(sorted(fields)) or "(none: this source takes no options)"
            problems.append(f"{path}.options.{key}: unknown option for source {spec.source!r}. "
                            f"Known: {known}")
    kwargs = {}
    for name, field in fields.items():
        if name not in options:
            required = (field.default is dataclasses.MISSING
                        and field.default_factory is dataclasses.MISSING)
            if required:
                problems.append(f"{path}.options.{name}: required option for source "
                                f"{spec.source!r} is missing")
            continue
        value, problem = _convert_option(hints[name], options[name])
        if problem:
            problems.append(f"{path}.options.{name}: {problem}")
        else:
            kwargs[name] = value
    if problems:
        return None, problems
    parsed = cls(**kwargs)
    problems = [f"{path}.options.{p}" for p in getattr(parsed, "problems", lambda: [])()]
    return (None, problems) if problems else (parsed, [])


def _convert_option(tp: Any, value: Any) -> tuple[Any, str | None]:
    """(converted value, None) or (None, problem) for the option types sources use."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        if value is None:
            return None, None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert_option(inner, value)
    if typing.get_origin(tp) is tuple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
            return None, f"expected a list of strings, got {value!r}"
        return tuple(items), None
    if tp in SCALARS:
        return convert_scalar(tp, value)
    raise TypeError(f"unsupported option type {tp}")


def _options_of(spec: DataSpec, path: str) -> tuple[Source, Any]:
    source = SOURCES.get(spec.source)  # an unknown name raises, listing the known ones
    options, problems = parse_options(spec, path)
    if problems:
        raise SpecError(problems, source=f"options of source {spec.source!r}")
    return source, options


# --------------------------------------------------------------------------- public API


def load_source(spec: DataSpec, data_dir: Path, allow_download: bool = True,
                fill_gaps: str | None = None, max_gap: int = 3) -> pd.DataFrame:
    """The validated tidy frame of a data spec: columns ``unique_id`` (str), ``ds`` (datetime64,
    or an int64 step index 1..n for M4), ``y`` (float64), sorted by ``unique_id`` then ``ds``.

    ``fill_gaps``/``max_gap`` are passed to :func:`~benchmark.data.validation.validate_frame`.
    """
    source, options = _options_of(spec, "target")
    frame = source.load(options, Path(data_dir), allow_download)
    return validate_frame(frame, source.label(options), fill_gaps=fill_gaps, max_gap=max_gap)


def source_label(spec: DataSpec) -> str:
    """Short, stable name of a data spec: ``ett/ETTh1:OT``, ``m4/Hourly``, ``sine(n=2000,p=24)``."""
    source, options = _options_of(spec, "target")
    return source.label(options)


def data_fingerprint(frame: pd.DataFrame) -> str:
    """16 hex characters: a content hash of the ids, timestamps and values of a tidy frame."""
    digest = hashlib.blake2b(digest_size=8)
    codes, uniques = pd.factorize(frame["unique_id"], sort=False)
    digest.update("\x1f".join(map(str, uniques)).encode())
    digest.update(codes.astype(np.int32).tobytes())
    ds = frame["ds"].to_numpy()
    if np.issubdtype(ds.dtype, np.datetime64):
        digest.update(b"datetime")
        ds = ds.astype("datetime64[ns]")
    digest.update(ds.view(np.int64).tobytes())
    digest.update(frame["y"].to_numpy(dtype=np.float64).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- helpers


def _tidy(unique_id: Any, ds: Any, y: Any, file: Path | None = None, date_column: str | None = None,
          value_column: str | None = None) -> pd.DataFrame:
    """A tidy frame plus where it came from (for validation messages)."""
    frame = pd.DataFrame({"unique_id": unique_id, "ds": ds, "y": y})
    frame.attrs.update({"file": str(file) if file else None, "date_column": date_column,
                        "value_column": value_column})
    return frame


def _parse_dates(values: pd.Series) -> pd.Series:
    # errors="coerce": unparseable dates become NaT, which validation reports with their rows
    return pd.to_datetime(values, errors="coerce")


def _read_table(path: Path, label: str) -> pd.DataFrame:
    """The whole CSV (no ``usecols``: with it pandas silently drops extra fields of a bad row)."""
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise DataError(f"{label}: cannot read {path} as CSV ({reason}). Fix: check that the "
                        "file is a comma-separated table with a header row and the same number of "
                        "fields on every line (decimal points, not commas).") from None


def _require_columns(table: pd.DataFrame, path: Path, label: str, wanted: dict[str, str]) -> None:
    """``wanted``: option name -> column; raises listing the available columns."""
    columns = [str(c) for c in table.columns]
    for option, column in wanted.items():
        if column not in columns:
            raise DataError(f"{label}: {option} {column!r} is not a column of {path}. Available: "
                            f"{', '.join(columns)}.")


def _download(url: str, path: Path, label: str) -> None:
    """Download ``url`` to ``path``; on failure, remove the folders this call created (a failed
    validation leaves nothing behind) and say whether the network refused or something else."""
    from datasetsforecast.utils import download_file  # only when a download is needed

    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        download_file(path.parent, url, filename=path.name)
    except Exception as exc:  # network errors of any kind: say what and how to fix
        _remove_empty(created)
        cause = _network_cause(exc)
        raise DataError(f"{label}: data file {path} not found, and downloading it from {url} failed: "
                        f"{cause}. Fix: download it by hand into {path.parent}, or {_FIX_DATA_DIR}; "
                        "set TLBENCH_OFFLINE=1 to never try a download.", str(path)) from None
    if not path.is_file():
        _remove_empty(created)
        raise DataError(f"{label}: downloading {url} did not create {path}. Fix: download it by "
                        f"hand, or {_FIX_DATA_DIR}.", str(path))


def _network_cause(exc: BaseException) -> str:
    """What went wrong with a download, in words: refused, unresolvable host, timeout, else the error."""
    seen, text = exc, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return f"no network (connection refused) [{text}]"
        if "name or service not known" in str(seen).lower() or "resolution" in str(seen).lower():
            return f"no network (host name not resolved) [{text}]"
        if isinstance(seen, TimeoutError) or "timed out" in str(seen).lower():
            return f"no network (timed out) [{text}]"
        seen = seen.__cause__ or seen.__context__
    return text


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty, or already gone


def _ensure_file(path: Path, label: str, allow_download: bool, url: str | None) -> Path:
    if path.is_file():
        return path
    if url is None:
        raise DataError(f"{label}: data file {path} not found (this source is never downloaded). "
                        f"Fix: put the file there, or set TLBENCH_DATA_DIR (or --data-dir) to the "
                        "folder that holds it.", str(path))
    if not allow_download:
        raise DataError(f"{label}: data file {path} not found and downloads are off "
                        f"(TLBENCH_OFFLINE). Fix: {_FIX_OFFLINE}.", str(path))
    _download(url, path, label)
    return path


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
    return _ensure_file(path, f"m4/{group}", allow_download, url)


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
    frame = _tidy(wide.index.to_numpy()[rows], (first_step[rows] + cols).astype(np.int64),
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


SOURCES.add("m4", Source("m4", M4Options, _load_m4, _m4_label))


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
    path = _ensure_file(Path(data_dir) / "ett" / f"{options.file}.csv", label, allow_download,
                        f"{ETT_URL}/{options.file}.csv")
    raw = _read_table(path, label)
    _require_columns(raw, path, label, {"date column": "date"})
    if options.column not in raw.columns or options.column == "date":
        available = [str(c) for c in raw.columns if c != "date"]
        raise DataError(f"{label}: unknown column {options.column!r} in {path}. Available: "
                        f"{', '.join(available)}. Fix: set the target's options.column.")
    return _tidy(f"{options.file}:{options.column}", _parse_dates(raw["date"]),
                 raw[options.column], file=path, date_column="date", value_column=options.column)


def _ett_label(options: EttOptions) -> str:
    return f"ett/{options.file}:{options.column}"


SOURCES.add("ett", Source("ett", EttOptions, _load_ett, _ett_label))


# --------------------------------------------------------------------------- sunspots


@dataclass(frozen=True)
class NoOptions:
    """A source without options."""


SUNSPOTS_DATE, SUNSPOTS_VALUE = "Date", "Monthly Mean Total Sunspot Number"


def _load_sunspots(options: NoOptions, data_dir: Path, allow_download: bool) -> pd.DataFrame:
    label = "sunspots/monthly"
    path = _ensure_file(Path(data_dir) / "sunspots" / "Sunspots.csv", label, allow_download, None)
    raw = _read_table(path, label)
    _require_columns(raw, path, label, {"date column": SUNSPOTS_DATE,
                                        "value column": SUNSPOTS_VALUE})
    return _tidy("sunspots_monthly", _parse_dates(raw[SUNSPOTS_DATE]), raw[SUNSPOTS_VALUE],
                 file=path, date_column=SUNSPOTS_DATE, value_column=SUNSPOTS_VALUE)


def _load_sunspots_yearly(options: NoOptions, data_dir: Path, allow_download: bool) -> pd.DataFrame:
    from statsmodels.datasets import sunspots  # ships with statsmodels; imported on use only

    raw = sunspots.load_pandas().data  # YEAR (float, 1700.0 ...), SUNACTIVITY
    years = raw["YEAR"].astype(int).astype(str)
    return _tidy("sunspots_yearly", pd.to_datetime(years, format="%Y"), raw["SUNACTIVITY"],
                 date_column="YEAR", value_column="SUNACTIVITY")


SOURCES.add("sunspots", Source("sunspots", NoOptions, _load_sunspots,
                               lambda options: "sunspots/monthly"))
SOURCES.add("sunspots_yearly", Source("sunspots_yearly", NoOptions, _load_sunspots_yearly,
                                      lambda options: "sunspots/yearly"))


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
    return _tidy("sine", ds, y)


SOURCES.add("sine", Source("sine", SineOptions, _load_sine,
                           lambda o: f"sine(n={o.length},p={o.period})"))


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
    _ensure_file(path, label, allow_download, None)
    wanted = {"date_column": options.date_column, "value_column": options.value_column}
    if options.id_column is not None:
        wanted["id_column"] = options.id_column
    raw = _read_table(path, label)
    _require_columns(raw, path, label, wanted)
    ids = (raw[options.id_column].astype(str) if options.id_column is not None
           else f"{Path(options.path).stem}:{options.value_column}")
    return _tidy(ids, _parse_dates(raw[options.date_column]), raw[options.value_column],
                 file=path, date_column=options.date_column, value_column=options.value_column)


def _csv_label(options: CsvOptions) -> str:
    return f"csv/{Path(options.path).stem}:{options.value_column}"


SOURCES.add("csv", Source("csv", CsvOptions, _load_csv, _csv_label))
