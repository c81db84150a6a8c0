"""Sources on the real files (small slices), option parsing, labels and fingerprints."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from benchmark.data.loaders import load_m4_test
from benchmark.data.sources import SOURCES, data_fingerprint, load_source, parse_options, source_label
from benchmark.spec.errors import DataError, SpecError, UnknownNameError
from benchmark.spec.sections import DataSpec


def assert_tidy(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == ["unique_id", "ds", "y"]
    assert frame["unique_id"].dtype == "str"
    assert frame["y"].dtype == np.float64
    assert isinstance(frame.index, pd.RangeIndex)
    ordered = frame.sort_values(["unique_id", "ds"], kind="stable")
    assert (ordered.index == frame.index).all(), "sorted by unique_id, then ds"


def test_registry_has_every_source():
    assert SOURCES.names() == ["csv", "ett", "m4", "sine", "sunspots", "sunspots_yearly"]


# --------------------------------------------------------------------------- m4


def test_m4_reads_the_wide_csv_into_a_long_frame(data_dir):
    frame = load_source(DataSpec("m4", {"max_series": 3}), data_dir)
    assert_tidy(frame)
    assert frame["ds"].dtype == np.int64
    # sorted id order (not natural order): H1, H10, H100; padding dropped (700 points each)
    assert frame["unique_id"].unique().tolist() == ["H1", "H10", "H100"]
    sizes = frame.groupby("unique_id").size()
    assert sizes.tolist() == [700, 700, 700]
    h1 = frame[frame["unique_id"] == "H1"]
    assert h1["ds"].tolist() == list(range(1, 701))
    assert h1["y"].iloc[:2].tolist() == [605.0, 586.0]


def test_m4_explicit_series_and_unknown_series(data_dir):
    frame = load_source(DataSpec("m4", {"series": ["H2", "H10"]}), data_dir)
    assert frame["unique_id"].unique().tolist() == ["H10", "H2"]
    assert frame[frame["unique_id"] == "H10"]["y"].iloc[[0, 1, -1]].tolist() == [513.0, 512.0,
                                                                                  475.0]
    with pytest.raises(DataError, match=r"unknown series H9999 .*Hourly-train\.csv"):
        load_source(DataSpec("m4", {"series": ["H1", "H9999"]}), data_dir)


def test_m4_test_part_continues_after_train(data_dir):
    test = load_m4_test("Hourly", data_dir, allow_download=False)
    assert_tidy(test)
    assert test.groupby("unique_id").size().unique().tolist() == [48]
    h1 = test[test["unique_id"] == "H1"]
    assert h1["ds"].tolist() == list(range(701, 749))
    assert h1["y"].iloc[:2].tolist() == [619.0, 565.0]


def test_missing_m4_file_without_download_names_path_and_fix(tmp_path):
    with pytest.raises(DataError) as info:
        load_source(DataSpec("m4", {}), tmp_path, allow_download=False)
    message = str(info.value)
    assert str(tmp_path / "m4" / "datasets" / "Hourly-train.csv") in message
    assert "TLBENCH_DATA_DIR" in message and "--data-dir" in message


# --------------------------------------------------------------------------- ett


def test_ett_one_column(data_dir):
    frame = load_source(DataSpec("ett", {"file": "ETTh1", "column": "OT"}), data_dir)
    assert_tidy(frame)
    assert len(frame) == 17420
    assert frame["unique_id"].unique().tolist() == ["ETTh1:OT"]
    assert frame["ds"].iloc[0] == pd.Timestamp("2016-07-01 00:00:00")
    assert (frame["ds"].diff().iloc[1:] == pd.Timedelta(hours=1)).all()
    assert frame["y"].iloc[0] == pytest.approx(30.5310001373291)


def test_ett_other_file_and_column(data_dir):
    frame = load_source(DataSpec("ett", {"file": "ETTh2", "column": "HUFL"}), data_dir)
    assert frame["unique_id"].iloc[0] == "ETTh2:HUFL"
    raw = pd.read_csv(data_dir / "ett" / "ETTh2.csv", usecols=["HUFL"], nrows=3)
    np.testing.assert_allclose(frame["y"].iloc[:3], raw["HUFL"])


def test_ett_unknown_column_lists_available(data_dir):
    with pytest.raises(DataError) as info:
        load_source(DataSpec("ett", {"column": "TEMP"}), data_dir)
    message = str(info.value)
    assert "'TEMP'" in message and "ETTh1.csv" in message
    assert "Available: HUFL, HULL, MUFL, MULL, LUFL, LULL, OT" in message


def test_missing_ett_file_without_download(tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "ett" / "ETTh1.csv"))):
        load_source(DataSpec("ett", {}), tmp_path, allow_download=False)


def test_missing_file_is_downloaded_when_allowed(tmp_path, monkeypatch):
    import datasetsforecast.utils

    calls = []

    def fake_download(directory, url, filename=None):
        calls.append((str(directory), url, filename))
        (directory / filename).write_text("date,OT\n2016-07-01 00:00:00,1.5\n"
                                          "2016-07-01 01:00:00,2.5\n")

    monkeypatch.setattr(datasetsforecast.utils, "download_file", fake_download)
    frame = load_source(DataSpec("ett", {"file": "ETTh2"}), tmp_path)
    assert calls == [(str(tmp_path / "ett"), "https://raw.githubusercontent.com/zhouhaoyi/"
                      "ETDataset/main/ETT-small/ETTh2.csv", "ETTh2.csv")]
    assert frame["y"].tolist() == [1.5, 2.5]

    def failing_download(directory, url, filename=None):
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(datasetsforecast.utils, "download_file", failing_download)
    with pytest.raises(DataError, match=r"Hourly-train\.csv not found, and downloading it from "
                                        r"https://raw\.githubusercontent\.com/Mcompetitions/M4-methods/"
                                        r"master/Dataset/Train/Hourly-train\.csv failed: "
                                        r"ConnectionError: network unreachable") as caught:
        load_source(DataSpec("m4", {}), tmp_path)
    assert "TLBENCH_OFFLINE=1" in str(caught.value) and "unset TLBENCH_OFFLINE" not in str(caught.value)
    assert not (tmp_path / "m4").exists()  # the folders made for the download are gone again


# --------------------------------------------------------------------------- sunspots, sine


def test_sunspots_monthly(data_dir):
    frame = load_source(DataSpec("sunspots", {}), data_dir)
    assert_tidy(frame)
    assert len(frame) == 3235
    assert frame["ds"].iloc[:2].tolist() == [pd.Timestamp("1749-01-31"), pd.Timestamp("1749-02-28")]
    assert frame["y"].iloc[:2].tolist() == [96.7, 104.3]


def test_sunspots_yearly_ships_with_statsmodels(tmp_path):
    frame = load_source(DataSpec("sunspots_yearly", {}), tmp_path, allow_download=False)
    assert_tidy(frame)
    assert len(frame) == 309
    assert frame["ds"].iloc[0] == pd.Timestamp("1700-01-01")
    assert frame["y"].iloc[:2].tolist() == [5.0, 11.0]


def test_sine_is_deterministic_positive_and_hourly(tmp_path):
    spec = DataSpec("sine", {"length": 100, "period": 10, "seed": 3})
    first, second = load_source(spec, tmp_path), load_source(spec, tmp_path)
    assert_tidy(first)
    pd.testing.assert_frame_equal(first, second)
    assert len(first) == 100 and (first["y"] > 0).all()
    assert first["ds"].iloc[0] == pd.Timestamp("2020-01-01")
    assert (first["ds"].diff().iloc[1:] == pd.Timedelta(hours=1)).all()
    clean = load_source(DataSpec("sine", {"length": 20, "period": 10, "noise": 0.0}), tmp_path)
    np.testing.assert_allclose(clean["y"], 10 + np.sin(2 * np.pi * np.arange(20) / 10))
    other = load_source(DataSpec("sine", {"length": 100, "period": 10, "seed": 4}), tmp_path)
    assert not np.allclose(first["y"], other["y"])


# --------------------------------------------------------------------------- csv


def write_csv(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_csv_single_series_relative_to_data_dir(tmp_path):
    write_csv(tmp_path / "mine" / "load.csv",
              "when,kw,other\n2021-01-01 00:00,1.5,x\n2021-01-01 01:00,2.5,y\n"
              "2021-01-01 02:00,3.5,z\n")
    spec = DataSpec("csv", {"path": "mine/load.csv", "date_column": "when", "value_column": "kw"})
    frame = load_source(spec, tmp_path)
    assert_tidy(frame)
    assert frame["unique_id"].unique().tolist() == ["load:kw"]
    assert frame["y"].tolist() == [1.5, 2.5, 3.5]
    assert source_label(spec) == "csv/load:kw"


def test_csv_panel_with_id_column(tmp_path):
    write_csv(tmp_path / "panel.csv",
              "id,date,v\nb,2021-01-01,10\nb,2021-01-02,11\na,2021-01-01,1\na,2021-01-02,2\n")
    spec = DataSpec("csv", {"path": str(tmp_path / "panel.csv"), "date_column": "date",
                            "value_column": "v", "id_column": "id"})
    frame = load_source(spec, tmp_path / "elsewhere")
    assert_tidy(frame)
    assert frame["unique_id"].tolist() == ["a", "a", "b", "b"]
    assert frame["y"].tolist() == [1.0, 2.0, 10.0, 11.0]


def test_csv_unknown_column_lists_available(tmp_path):
    write_csv(tmp_path / "f.csv", "date,a,b\n2021-01-01,1,2\n")
    spec = DataSpec("csv", {"path": "f.csv", "date_column": "date", "value_column": "c"})
    with pytest.raises(DataError, match=r"value_column 'c' is not a column of .*f\.csv\. "
                                        r"Available: date, a, b"):
        load_source(spec, tmp_path)


def test_csv_missing_file(tmp_path):
    spec = DataSpec("csv", {"path": "nope.csv", "date_column": "d", "value_column": "v"})
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nope.csv"))):
        load_source(spec, tmp_path)


# --------------------------------------------------------------------------- options


def test_unknown_option_is_reported_with_its_yaml_path():
    spec = DataSpec("ett", {"colum": "OT"})
    options, problems = parse_options(spec, "grid.targets[0]")
    assert options is None
    assert problems == ["grid.targets[0].options.colum: unknown option for source 'ett'. "
                        "Known: column, file"]


def test_wrong_types_and_values_are_problems():
    _, problems = parse_options(DataSpec("sine", {"length": "long", "noise": -1.0}))
    assert problems == ["target.options.length: expected an integer, got 'long'"]
    _, problems = parse_options(DataSpec("sine", {"noise": -1.0}))
    assert problems == ["target.options.noise: expected a standard deviation >= 0, got -1.0"]
    _, problems = parse_options(DataSpec("m4", {"group": "Hourlyy"}))
    assert problems == ["target.options.group: unknown M4 group 'Hourlyy'. "
                        "Known: Hourly, Daily, Weekly, Monthly, Quarterly, Yearly"]
    _, problems = parse_options(DataSpec("ett", {"file": "ETTh3"}))
    assert problems == ["target.options.file: unknown ETT file 'ETTh3'. Known: ETTh1, ETTh2"]


def test_required_csv_options_and_defaults():
    _, problems = parse_options(DataSpec("csv", {"path": "x.csv"}))
    assert problems == ["target.options.date_column: required option for source 'csv' is missing",
                        "target.options.value_column: required option for source 'csv' is missing"]
    options, problems = parse_options(DataSpec("m4", {"series": ["H1"], "max_series": 2}))
    assert problems == [] and options.group == "Hourly" and options.series == ("H1",)
    assert options.max_series == 2


def test_unknown_source_lists_known_ones(tmp_path):
    _, problems = parse_options(DataSpec("etx", {}), "grid.targets[1]")
    assert problems == ["grid.targets[1].source: Unknown source 'etx'. Known: csv, ett, m4, sine, "
                        "sunspots, sunspots_yearly."]
    with pytest.raises(UnknownNameError, match="Unknown source 'etx'. Known: csv, ett"):
        load_source(DataSpec("etx", {}), tmp_path)
    with pytest.raises(SpecError, match="unknown option for source 'sine'"):
        load_source(DataSpec("sine", {"lenght": 10}), tmp_path)


@pytest.mark.parametrize("spec, label", [
    (DataSpec("ett", {"file": "ETTh1", "column": "OT"}), "ett/ETTh1:OT"),
    (DataSpec("ett", {}), "ett/ETTh1:OT"),
    (DataSpec("m4", {"group": "Hourly"}), "m4/Hourly"),
    (DataSpec("m4", {"max_series": 5}), "m4/Hourly(max_series=5)"),
    (DataSpec("sunspots", {}), "sunspots/monthly"),
    (DataSpec("sunspots_yearly", {}), "sunspots/yearly"),
    (DataSpec("sine", {}), "sine(n=2000,p=24)"),
    (DataSpec("csv", {"path": "a/b/load.csv", "date_column": "d", "value_column": "kw"}),
     "csv/load:kw"),
])
def test_labels_are_short_and_stable(spec, label):
    assert source_label(spec) == label


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_a_content_hash(tmp_path):
    frame = load_source(DataSpec("sine", {"length": 50}), tmp_path)
    fingerprint = data_fingerprint(frame)
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint)
    assert data_fingerprint(frame.copy()) == fingerprint
    changed = frame.copy()
    changed.loc[10, "y"] += 1e-9
    assert data_fingerprint(changed) != fingerprint
    shifted = frame.copy()
    shifted["ds"] = shifted["ds"] + pd.Timedelta(hours=1)
    assert data_fingerprint(shifted) != fingerprint
    renamed = frame.assign(unique_id="other")
    assert data_fingerprint(renamed) != fingerprint
