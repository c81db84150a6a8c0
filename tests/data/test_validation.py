"""Every validation error names the file or label, the column, the offending rows and the fix;
gap filling interpolates short runs only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.data.sources import load_source
from benchmark.data.validation import check_length, validate_frame
from benchmark.spec.errors import DataError
from benchmark.spec.sections import DataSpec

HOURS = [f"2021-01-01 {h:02d}:00" for h in range(8)]


def hourly_csv(tmp_path, values, stamps=None, name="load.csv"):
    """A small CSV with a ``date`` and a ``kw`` column, and the spec that reads it."""
    stamps = HOURS[:len(values)] if stamps is None else stamps
    lines = ["date,kw"] + [f"{d},{v}" for d, v in zip(stamps, values)]
    (tmp_path / name).write_text("\n".join(lines) + "\n")
    return DataSpec("csv", {"path": name, "date_column": "date", "value_column": "kw"})


def frame_of(ds, y, uid="s"):
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": y})


def test_clean_frame_passes_unchanged(tmp_path):
    frame = load_source(hourly_csv(tmp_path, [1, 2, 3, 4]), tmp_path)
    assert frame["y"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert frame["ds"].tolist() == pd.to_datetime(HOURS[:4]).tolist()


def test_missing_values_name_file_column_rows_and_fix(tmp_path):
    spec = hourly_csv(tmp_path, [1, 2, "", 4, "", 6])
    with pytest.raises(DataError) as info:
        load_source(spec, tmp_path)
    message = str(info.value)
    assert "csv/load:kw" in message and str(tmp_path / "load.csv") in message
    assert "2 missing value(s) in column 'kw'" in message
    assert "rows 2 (2021-01-01 02:00:00), 4 (2021-01-01 04:00:00)" in message
    assert "fill_gaps: interpolate" in message


def test_non_numeric_values_are_never_filled(tmp_path):
    spec = hourly_csv(tmp_path, [1, 2, "3.5 kW", 4])
    with pytest.raises(DataError) as info:
        load_source(spec, tmp_path, fill_gaps="interpolate")
    message = str(info.value)
    assert "non-numeric value(s) in column 'kw' at row 2 (2021-01-01 02:00:00): '3.5 kW'" in message
    assert "load.csv" in message and "decimal point" in message


def test_a_row_with_an_extra_field_is_not_silently_misread(tmp_path):
    spec = hourly_csv(tmp_path, [1, 2, "3,5", 4])  # a decimal comma splits the row in two fields
    with pytest.raises(DataError, match=r"cannot read .*load\.csv as CSV \(.*line 4, saw 3\)"):
        load_source(spec, tmp_path)


def test_duplicate_timestamps(tmp_path):
    stamps = [HOURS[0], HOURS[1], HOURS[1], HOURS[2]]
    with pytest.raises(DataError) as info:
        load_source(hourly_csv(tmp_path, [1, 2, 3, 4], stamps), tmp_path)
    message = str(info.value)
    assert "duplicate timestamps in column 'date' at rows 1 (2021-01-01 01:00:00), " \
           "2 (2021-01-01 01:00:00)" in message
    assert "load.csv" in message and "remove or aggregate" in message


def test_unsorted_timestamps(tmp_path):
    stamps = [HOURS[0], HOURS[2], HOURS[1], HOURS[3]]
    with pytest.raises(DataError) as info:
        load_source(hourly_csv(tmp_path, [1, 2, 3, 4], stamps), tmp_path)
    message = str(info.value)
    assert "not in increasing order, first at rows 1 (2021-01-01 02:00:00), 2 " in message
    assert "sort the file by its date column" in message


def test_unparseable_timestamps(tmp_path):
    stamps = [HOURS[0], "yesterday", HOURS[2]]
    with pytest.raises(DataError, match=r"missing or unparseable timestamp\(s\) in column 'date' "
                                        r"at row 1\. Fix"):
        load_source(hourly_csv(tmp_path, [1, 2, 3], stamps), tmp_path)


def test_irregular_spacing_names_timestamps_and_expected_step(tmp_path):
    stamps = HOURS[:3] + ["2021-01-01 03:30"] + HOURS[4:6]
    with pytest.raises(DataError) as info:
        load_source(hourly_csv(tmp_path, [1, 2, 3, 4, 5, 6], stamps), tmp_path)
    message = str(info.value)
    assert "irregular spacing in column 'date': expected a step of 1 hour" in message
    assert "row 3 (2021-01-01 03:30:00)" in message and "resample" in message


def test_missing_timestamps_are_errors_without_fill(tmp_path):
    stamps = HOURS[:2] + HOURS[4:]
    with pytest.raises(DataError) as info:
        load_source(hourly_csv(tmp_path, [1, 2, 5, 6, 7, 8], stamps), tmp_path)
    message = str(info.value)
    assert "2 missing timestamp(s) in column 'date' (expected a step of 1 hour), first at " \
           "2021-01-01 02:00:00" in message
    assert "fill_gaps: interpolate" in message


def test_interpolate_fills_short_runs_of_values_and_timestamps(tmp_path):
    # hour 2 is empty, hours 5-6 are absent from the file
    stamps = HOURS[:5] + HOURS[7:8]
    spec = hourly_csv(tmp_path, [0, 1, "", 3, 4, 7], stamps)
    frame = load_source(spec, tmp_path, fill_gaps="interpolate", max_gap=2)
    assert frame["ds"].tolist() == pd.to_datetime(HOURS).tolist()
    np.testing.assert_allclose(frame["y"], np.arange(8.0))


def test_interpolate_refuses_long_and_edge_runs(tmp_path):
    stamps = HOURS[:2] + HOURS[5:]
    spec = hourly_csv(tmp_path, [0, 1, 5, 6, 7], stamps)
    with pytest.raises(DataError, match=r"run of 3 missing point\(s\) in column 'kw' from "
                                        r"2021-01-01 02:00:00 to 2021-01-01 04:00:00 cannot be "
                                        r"interpolated \(longer than max_gap=2\)"):
        load_source(spec, tmp_path, fill_gaps="interpolate", max_gap=2)
    frame = load_source(spec, tmp_path, fill_gaps="interpolate", max_gap=3)
    np.testing.assert_allclose(frame["y"], np.arange(8.0))
    edge = hourly_csv(tmp_path, ["", 1, 2], name="edge.csv")
    with pytest.raises(DataError, match=r"at the start of the series"):
        load_source(edge, tmp_path, fill_gaps="interpolate")


def test_unknown_fill_mode():
    with pytest.raises(DataError, match="unknown fill_gaps 'ffill'. Known: interpolate"):
        validate_frame(frame_of(pd.to_datetime(HOURS[:2]), [1.0, 2.0]), "x", fill_gaps="ffill")


def test_monthly_month_end_grid_and_missing_month():
    month_ends = pd.date_range("2020-01-31", periods=6, freq="ME")
    assert len(validate_frame(frame_of(month_ends, np.arange(6.0)), "m")) == 6
    gap = month_ends.delete(3)
    with pytest.raises(DataError, match=r"1 missing timestamp\(s\) .*1 month \(month ends\)\), "
                                        r"first at 2020-04-30"):
        validate_frame(frame_of(gap, np.arange(5.0)), "m")
    filled = validate_frame(frame_of(gap, [0.0, 1, 2, 4, 5]), "m", fill_gaps="interpolate")
    assert filled["ds"].tolist() == month_ends.tolist()
    np.testing.assert_allclose(filled["y"], np.arange(6.0))


def test_integer_step_index_must_step_by_one():
    with pytest.raises(DataError, match=r"missing timestamp\(s\) in column 'ds' \(expected a step "
                                        r"of 1 \(integer step index\)\), first at 3"):
        validate_frame(frame_of(np.array([1, 2, 4, 5]), [1.0, 2, 4, 5]), "m4/Hourly")


def test_panel_is_checked_per_series():
    frame = pd.concat([frame_of(np.arange(1, 4), [1.0, 2, 3], "b"),
                       frame_of(np.arange(1, 3), [5.0, 6], "a")], ignore_index=True)
    out = validate_frame(frame, "panel")
    assert out["unique_id"].tolist() == ["a", "a", "b", "b", "b"]
    assert out["y"].tolist() == [5.0, 6.0, 1.0, 2.0, 3.0]
    assert list(out.index) == list(range(5))


def test_check_length_message():
    check_length(1084, 1084, "target ett/ETTh1:OT", "target_size 960 + test 100 + lookback 24")
    with pytest.raises(DataError) as info:
        check_length(1000, 1084, "target ett/ETTh1:OT", "target_size 960 + test 100 + lookback 24")
    assert str(info.value) == ("target ett/ETTh1:OT has 1000 points but target_size 960 + test 100 "
                               "+ lookback 24 needs 1084: choose a smaller target_size or "
                               "test_size.")
