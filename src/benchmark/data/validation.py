"""Checks every loaded frame before anything else sees it: missing or non-numeric values,
unparseable, duplicate, unsorted or irregularly spaced timestamps, and series too short for what
was asked. Every error is a :class:`~benchmark.spec.errors.DataError` that names the file or label, the
column, the first offending rows and how to fix it.

Loaders hand in a tidy ``unique_id, ds, y`` frame whose index is the row number in the file (the
first data row is 0) and may record where it came from in ``frame.attrs``: ``file``,
``value_column`` and ``date_column``. Messages quote those; the returned frame has a fresh
``RangeIndex`` and dtypes ``str``, ``datetime64``/``int64``, ``float64``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.spec.errors import DataError

FILL_MODES = ("interpolate",)
_SHOW = 5  # offending rows quoted in a message


def validate_frame(frame: pd.DataFrame, label: str, fill_gaps: str | None = None,
                   max_gap: int = 3) -> pd.DataFrame:
    """The frame, checked and cleaned: ``unique_id`` (str), ``ds`` (datetime64 or int64),
    ``y`` (float64), sorted by ``unique_id`` (the order of ``ds`` within a series is checked,
    never repaired).

    Raises :class:`DataError` for missing columns, missing or non-numeric values, missing or
    unparseable timestamps, duplicate timestamps, timestamps that are not increasing and, for
    datetime ``ds``, timestamps off the series' regular grid. The grid's step is the median step
    of the series: a fixed duration (hours, days, ...), or whole months, quarters or years when
    the median step is 28-31, 89-92 or 365-366 days (anchored at month/year ends or starts when
    all timestamps are).
    Integer ``ds`` (a step index, as for M4) must go up by exactly 1.

    ``fill_gaps="interpolate"``: missing values (empty cells) and missing timestamps (points left
    out of the regular grid) are filled by linear interpolation between the neighbouring observed
    values, as long as each run of consecutive missing points is at most ``max_gap`` long and has
    an observed value on both sides. Longer runs, and runs at the start or end of a series, still
    raise. Non-numeric text is never filled: it is an error in the file, not a gap.
    """
    if fill_gaps is not None and fill_gaps not in FILL_MODES:
        raise DataError(f"{label}: unknown fill_gaps {fill_gaps!r}. Known: {', '.join(FILL_MODES)} "
                        "(or leave it empty so that gaps are errors).")
    origin = _Origin.of(frame, label)
    missing_columns = [c for c in ("unique_id", "ds", "y") if c not in frame.columns]
    if missing_columns:
        raise DataError(f"{origin}: the loaded frame lacks column(s) {', '.join(missing_columns)}; "
                        f"it has {', '.join(map(str, frame.columns))}. This is a loader bug.")
    frame = frame[["unique_id", "ds", "y"]].copy()
    frame["unique_id"] = frame["unique_id"].astype(str)
    problems: list[str] = []  # every kind of problem in the file, not only the first kind found
    values, found = _numeric_values(frame, origin, fill_gaps, max_gap)
    problems.extend(found)
    frame["y"] = values  # cells reported as wrong hold 0.0: the checks below do not report them again
    try:
        _check_timestamps_present(frame, origin)
    except DataError as exc:
        problems.append(str(exc))
        frame = frame[frame["ds"].notna()] if frame["ds"].dtype.kind in "Mmi" else frame.iloc[:0]
    if frame.empty and not problems:
        raise DataError(f"{origin}: no rows. Check the file and the source options.", origin.file)
    # A stable sort by id only: the order of timestamps inside a series is checked, not repaired.
    frame = frame.sort_values("unique_id", kind="stable")
    codes, _ = pd.factorize(frame["unique_id"], sort=False)  # [n_rows], contiguous per series
    starts = np.flatnonzero(np.diff(codes, prepend=-1))  # first row of each series
    stops = np.append(starts[1:], len(codes))
    replaced = {}
    for code in np.flatnonzero(_suspects(codes, starts, frame)):  # usually none at all
        series = frame.iloc[starts[code]:stops[code]]
        try:
            checked = _check_series(series, origin, fill_gaps, max_gap)
        except DataError as exc:
            problems.extend(exc.problems)
            continue
        if checked is not series:
            replaced[code] = checked
    if problems:
        error = DataError(problems[0] if len(problems) == 1 else
                          f"{origin}: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems),
                          origin.file, problems)
        error.n_points = len(frame)  # the sizes asked can still be checked against the file's length
        raise error
    out = frame
    if replaced:
        out = pd.concat([replaced.get(code, frame.iloc[start:stop])
                         for code, (start, stop) in enumerate(zip(starts, stops))])
    out = out.reset_index(drop=True)
    out["y"] = out["y"].astype("float64")
    out.attrs = {}  # the origin served the messages; the tidy frame is plain data
    return out


def check_length(n_points: int, needed: int, label: str, what: str,
                 fix: str = "choose a smaller target_size or test_size") -> None:
    """Raise when a series of ``n_points`` is shorter than ``needed``.

    ``label`` names the series (``"target ett/ETTh1:OT"``), ``what`` spells out the sum
    (``"target_size 960 + test 100"``), giving e.g. ``target ett/ETTh1:OT has 1000 points but
    target_size 960 + test 100 needs 1060: choose a smaller target_size or test_size``.
    """
    if n_points < needed:
        raise DataError(f"{label} has {n_points} points but {what} needs {needed}: {fix}.")


# --------------------------------------------------------------------------- internals


@dataclass(frozen=True)
class _Origin:
    """Where a frame came from, for messages."""

    label: str
    file: str | None = None
    value_column: str | None = None
    date_column: str | None = None

    @classmethod
    def of(cls, frame: pd.DataFrame, label: str) -> "_Origin":
        attrs = frame.attrs or {}
        return cls(label, attrs.get("file"), attrs.get("value_column"), attrs.get("date_column"))

    def __str__(self) -> str:
        return f"{self.label} ({self.file})" if self.file else self.label

    def column(self, tidy: str) -> str:
        original = self.value_column if tidy == "y" else self.date_column
        return f"column {original!r}" if original else f"column {tidy!r}"


def _rows(index: pd.Index, ds: pd.Series | None = None) -> str:
    """'rows 5 (2016-07-01 05:00:00), 9 (...)' for the first few offending rows."""
    shown = []
    for row in index[:_SHOW]:
        stamp = f" ({ds.loc[row]})" if ds is not None else ""
        shown.append(f"{row}{stamp}")
    more = f" and {len(index) - _SHOW} more" if len(index) > _SHOW else ""
    return ("row " if len(index) == 1 else "rows ") + ", ".join(shown) + more


def _numeric_values(frame: pd.DataFrame, origin: _Origin, fill_gaps: str | None,
                    max_gap: int) -> tuple[pd.Series, list[str]]:
    """``(values, problems)``: the value column as float64 and every kind of problem in it at
    once (non-numeric text, infinities, and missing values unless gaps are filled). Cells with
    text or infinities hold 0.0 in ``values`` (they are errors, reported here, not gaps); missing
    cells hold NaN."""
    raw = frame["y"]
    values = pd.to_numeric(raw, errors="coerce").astype("float64")
    problems: list[str] = []
    wrong = np.zeros(len(raw), dtype=bool)  # [n_rows]: text or infinite, reported here
    if not pd.api.types.is_numeric_dtype(raw):
        text = (raw.notna() & values.isna()).to_numpy()
        if text.any():
            bad = frame.index[text]
            examples = ", ".join(repr(v) for v in raw[text].head(3))
            problems.append(
                f"{origin}: {int(text.sum())} non-numeric value(s) in {origin.column('y')} at "
                f"{_rows(bad, frame['ds'])}: {examples}. Fix: correct those cells in the file "
                "(a decimal point, no units or thousands separators; leave a cell empty for a "
                "missing value) or choose another value column.")
            wrong |= text
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        bad = frame.index[infinite]
        problems.append(f"{origin}: infinite value(s) in {origin.column('y')} at "
                        f"{_rows(bad, frame['ds'])}. Fix: correct those cells in the file.")
        wrong |= infinite
    missing = values.isna().to_numpy() & ~wrong
    if missing.any() and fill_gaps is None:
        bad = frame.index[missing]
        problems.append(
            f"{origin}: {int(missing.sum())} missing value(s) in {origin.column('y')}, first at "
            f"{_rows(bad, frame['ds'])}. Fix: fill them in the file, or set `fill_gaps: "
            f"interpolate` (split.fill_gaps) to fill runs of up to max_gap={max_gap} points by "
            "linear interpolation.")
    return values.mask(wrong, 0.0), problems


def _check_timestamps_present(frame: pd.DataFrame, origin: _Origin) -> None:
    ds = frame["ds"]
    if not (pd.api.types.is_datetime64_any_dtype(ds) or pd.api.types.is_integer_dtype(ds)):
        raise DataError(f"{origin}: {origin.column('ds')} has dtype {ds.dtype}, expected datetimes "
                        "or an integer step index. This is a loader bug.")
    missing = ds.isna().to_numpy()
    if missing.any():
        bad = frame.index[missing]
        raise DataError(f"{origin}: {int(missing.sum())} missing or unparseable timestamp(s) in "
                        f"{origin.column('ds')} at {_rows(bad)}. Fix: give every row a date the "
                        "format of the other rows (e.g. 2016-07-01 00:00:00) or remove the row.")


@dataclass(frozen=True)
class _Grid:
    """The regular time grid a series should lie on."""

    description: str  # for messages: "1 hour", "1 month (month ends)", "1 (step index)"
    step: pd.Timedelta | None = None  # fixed-duration grids
    freq: str | pd.DateOffset | None = None  # calendar grids (pd.date_range freq)

    def points(self, first, last) -> np.ndarray:
        """Every grid point from ``first`` to ``last``, in the dtype of ``first``."""
        if self.step is None and self.freq is None:  # integer step index
            return np.arange(first, last + 1, dtype="int64")
        freq = self.freq if self.freq is not None else self.step
        return pd.date_range(first, last, freq=freq).to_numpy().astype(first.dtype)


def _grid_of(ds: np.ndarray) -> _Grid:
    if np.issubdtype(ds.dtype, np.integer):
        return _Grid("1 (integer step index)")
    median = pd.Timedelta(np.sort(np.diff(ds))[(len(ds) - 1) // 2])  # lower median step
    days = median / pd.Timedelta(days=1)
    stamps = pd.DatetimeIndex(ds)
    for low, high, months, unit in ((28, 31, 1, "month"), (89, 92, 3, "quarter"),
                                    (365, 366, 12, "year")):
        if low <= days <= high:
            if months == 12 and stamps.is_year_end.all():
                return _Grid("1 year (year ends)", freq="YE")
            if months == 12 and stamps.is_year_start.all():
                return _Grid("1 year (year starts)", freq="YS")
            if stamps.is_month_end.all():
                return _Grid(f"1 {unit} (month ends)", freq=f"{months}ME")
            if stamps.is_month_start.all():
                return _Grid(f"1 {unit} (month starts)", freq=f"{months}MS")
            return _Grid(f"1 {unit}", freq=pd.DateOffset(months=months))
    return _Grid(_describe_step(median), step=median)


def _describe_step(step: pd.Timedelta) -> str:
    for unit, size in (("day", pd.Timedelta(days=1)), ("hour", pd.Timedelta(hours=1)),
                       ("minute", pd.Timedelta(minutes=1)), ("second", pd.Timedelta(seconds=1))):
        count = step / size
        if count >= 1 and count == int(count):
            return f"{int(count)} {unit}{'s' if count != 1 else ''}"
    return str(step)


def _suspects(codes: np.ndarray, starts: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
    """[n_series] bool: series that are not evenly spaced and complete, found without a loop;
    only those get the detailed per-series check."""
    suspect = np.zeros(len(starts), dtype=bool)
    suspect[codes[frame["y"].isna().to_numpy()]] = True
    ds = frame["ds"].to_numpy()
    if len(ds) < 2:
        return suspect
    steps = np.diff(ds)  # [n_rows - 1]; a step across two series is ignored below
    first_step = steps[np.minimum(starts, len(steps) - 1)]  # [n_series]
    if np.issubdtype(ds.dtype, np.integer):
        suspect |= first_step != 1
    else:
        suspect |= first_step <= np.zeros((), dtype=steps.dtype)
    inside = codes[1:] == codes[:-1]
    uneven = inside & (steps != first_step[codes[1:]])
    suspect[codes[1:][uneven]] = True
    return suspect


def _check_series(series: pd.DataFrame, origin: _Origin, fill_gaps: str | None,
                  max_gap: int) -> pd.DataFrame:
    """One series, checked (and its gaps filled when asked); every problem of every kind in one
    :class:`DataError`: duplicate or unordered timestamps do not hide the gaps behind them."""
    ds = series["ds"].to_numpy()
    where = f"{origin}, series {series['unique_id'].iloc[0]!r}"
    if len(ds) < 2:
        return series
    diffs = np.diff(ds)
    zero = np.zeros((), dtype=diffs.dtype)
    duplicated = series["ds"].duplicated(keep=False).to_numpy()
    found = []
    if duplicated.any():
        bad = series.index[duplicated]
        found.append(f"{where}: duplicate timestamps in {origin.column('ds')} at "
                     f"{_rows(bad, series['ds'])}. Fix: remove or aggregate the repeated rows "
                     "(one row per timestamp).")
    if (diffs < zero).any():
        first = int(np.argmax(diffs < zero)) + 1
        bad = series.index[[first - 1, first]]
        found.append(f"{where}: timestamps in {origin.column('ds')} are not in increasing "
                     f"order, first at {_rows(bad, series['ds'])}. Fix: sort the file by its "
                     "date column.")
    if found:  # the spacing checks need unique, increasing timestamps: check the sorted rest
        series = series.sort_values("ds", kind="stable").drop_duplicates("ds")
    try:
        checked = _check_spacing(series, where, origin, fill_gaps, max_gap) if len(series) > 1 else series
    except DataError as exc:
        found.extend(exc.problems)
    if found:
        raise DataError("\n".join(found), origin.file, found)
    return checked


def _check_spacing(series: pd.DataFrame, where: str, origin: _Origin, fill_gaps: str | None,
                   max_gap: int) -> pd.DataFrame:
    """A series of unique, increasing timestamps on its regular grid: irregular rows and missing
    timestamps are reported together; with ``fill_gaps`` its short gaps are interpolated."""
    ds = series["ds"].to_numpy()
    diffs = np.diff(ds)
    if (diffs == diffs[0]).all() and not series["y"].isna().any():
        if np.issubdtype(ds.dtype, np.integer) and diffs[0] != 1:
            pass  # an integer index must step by 1: fall through to the grid check
        else:
            return series  # evenly spaced and complete: the common case, no grid needed
    grid = _grid_of(ds)
    points = grid.points(ds[0], ds[-1])
    position = np.searchsorted(points, ds)
    on_grid = (position < len(points)) & (points[np.minimum(position, len(points) - 1)] == ds)
    found = []
    if not on_grid.all():
        bad = series.index[~on_grid]
        found.append(f"{where}: irregular spacing in {origin.column('ds')}: expected a step of "
                     f"{grid.description}, but {_rows(bad, series['ds'])} fall between grid "
                     "points. Fix: resample the file to a regular grid, or remove those rows.")
        series, position = series[on_grid], position[on_grid]  # the missing points of the rest
    absent = np.ones(len(points), dtype=bool)  # [n_grid]: no row at this grid point
    absent[position] = False
    if fill_gaps is None:  # missing values were reported with the values; here the timestamps
        if absent.any():
            first_run = [_stamp(points[s]) for s, _ in _runs(absent)[:_SHOW]]
            found.append(
                f"{where}: {int(absent.sum())} missing timestamp(s) in {origin.column('ds')} (expected "
                f"a step of {grid.description}), first at {', '.join(map(str, first_run))}. Fix: add "
                f"the missing rows, or set `fill_gaps: interpolate` (split.fill_gaps) to fill runs "
                f"of up to max_gap={max_gap} points by linear interpolation.")
        if found:
            raise DataError("\n".join(found), origin.file, found)
        return series
    y = np.full(len(points), np.nan)  # [n_grid]: observed values at their grid positions
    y[position] = series["y"].to_numpy()
    missing = np.isnan(y)
    for start, stop in _runs(missing):
        if start == 0 or stop == len(points) or stop - start > max_gap:
            why = ("at the start of the series" if start == 0 else
                   "at the end of the series" if stop == len(points) else
                   f"longer than max_gap={max_gap}")
            found.append(
                f"{where}: a run of {stop - start} missing point(s) in {origin.column('y')} from "
                f"{_stamp(points[start])} to {_stamp(points[stop - 1])} cannot be interpolated "
                f"({why}). Fix: repair or trim the file, or raise split.max_gap if interpolating "
                "that long a run is acceptable.")
    if found:
        raise DataError("\n".join(found), origin.file, found)
    if not missing.any():
        return series
    observed = ~missing
    index = np.arange(len(points))
    y[missing] = np.interp(index[missing], index[observed], y[observed])
    return pd.DataFrame({"unique_id": series["unique_id"].iloc[0], "ds": points, "y": y})


def _stamp(value) -> str:
    """A grid point as the frame prints it: ``2021-01-01 02:00:00`` or ``3``."""
    return str(pd.Timestamp(value)) if isinstance(value, np.datetime64) else str(value)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a boolean vector."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))
