"""benchmark.results.leaderboard and .reader: schema enforcement, atomic concurrent writes, robust filtered reads,
and the statistics over hand-built tables whose answers are visible."""

from __future__ import annotations

import datetime as dt
import logging
import math
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmark.forecasters.metrics import METRIC_NAMES as METRICS
from benchmark.results.leaderboard import Leaderboard
from benchmark.results.ranking import aggregate, aggregate_columns, format_table, regressions, transfer_horizon, winners
from benchmark.results.schema import COLUMNS, DEFAULTS, FAILURE_SCHEMA, SCHEMA, schema_markdown
from benchmark.spec.errors import TlbenchError

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
T_975_DF2 = 4.302652729749464


def make_row(**overrides) -> dict:
    """A valid model-cell row; override any column."""
    row = dict(
        grid_id="gid1", grid="demo", run_id="run1", run_date="2024-05-01", cell_key="cell0", kind="model",
        target="ett/ETTh1:OT", target_dataset="ett/ETTh1", target_column="OT", target_size=100,
        architecture="lstm", mode="scratch", seed=0, lookback=24, horizon=1,
        mse=1.0, rmse=1.0, mae=1.0, mape=float("nan"), smape=10.0, mase=1.0,
        train_seconds=2.5, epochs=3, trainable_params=1000, frozen_params=0,
        mlflow_run_id=None, model_uri=None, pretrained_key=None, pretrained_version=None,
        worker_host="host1", device="cpu", package_version="0.1.0", git_commit=None, data_fingerprint="fp1",
        started_at=T0, finished_at=T0 + dt.timedelta(seconds=3),
    )
    row.update(overrides)
    return row


def make_failure(**overrides) -> dict:
    row = dict(grid_id="gid1", grid="demo", run_id="run1", run_date="2024-05-01", cell_key="bad0",
               target="ett/ETTh1:OT", target_size=100, architecture="gru", mode="scratch", seed=0,
               error="CellFailed: loss is NaN at epoch 2", failed_at=T0)
    row.update(overrides)
    return row


def parquet_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------- schema


def test_schema_is_derived_from_the_documented_columns():
    assert SCHEMA.names == [c.name for c in COLUMNS]
    assert [SCHEMA.field(c.name).nullable for c in COLUMNS] == [c.nullable for c in COLUMNS]
    assert SCHEMA.field("finished_at").type == pa.timestamp("us", tz="UTC")
    assert SCHEMA.field("target_column").nullable and not SCHEMA.field("seed").nullable
    assert FAILURE_SCHEMA.names[-2:] == ["error", "failed_at"]
    docs = schema_markdown()
    assert all(f"`{c.name}`" in docs for c in COLUMNS) and "default 'stateless'" in docs


def test_append_then_read_round_trips_with_schema_types(tmp_path):
    lb = Leaderboard(str(tmp_path / "lb"))
    row = make_row(target_column=None)
    assert "regime" not in row and "features" not in row
    paths = lb.append([row, make_row(cell_key="cell1", seed=1, regime="stateful", git_commit="abc")])
    assert len(paths) == 2
    assert all("/cells/run_date=2024-05-01/grid=demo/cell" in p and p.endswith(".parquet") for p in paths)
    df = lb.read()
    assert list(df.columns) == SCHEMA.names and len(df) == 2
    assert df["seed"].dtype == "int64" and df["mase"].dtype == "float64" and df["grid"].dtype == "str"
    assert str(df["finished_at"].dtype) == "datetime64[us, UTC]"
    first = df.set_index("cell_key").loc["cell0"]
    assert first["regime"] == DEFAULTS["regime"] and first["features"] == "y"
    assert math.isnan(first["mape"]) and pd.isna(first["target_column"])
    assert first["finished_at"] == pd.Timestamp(T0 + dt.timedelta(seconds=3))
    assert df.set_index("cell_key").loc["cell1", "regime"] == "stateful"
    assert lb.finished_keys() == {"cell0", "cell1"}


def test_timestamps_in_other_zones_are_stored_in_utc(tmp_path):
    lb = Leaderboard(str(tmp_path))
    plus_two = dt.timezone(dt.timedelta(hours=2))
    lb.append([make_row(started_at=dt.datetime(2024, 5, 1, 14, 0, tzinfo=plus_two),
                        finished_at=pd.Timestamp("2024-05-01 14:00:03", tz="Europe/Paris"))])
    df = lb.read()
    assert df.loc[0, "started_at"] == pd.Timestamp("2024-05-01 12:00", tz="UTC")
    assert df.loc[0, "finished_at"] == pd.Timestamp("2024-05-01 12:00:03", tz="UTC")


def test_invalid_rows_are_all_reported_with_their_cell_keys_and_nothing_is_written(tmp_path):
    lb = Leaderboard(str(tmp_path / "lb"))
    missing = make_row(cell_key="k-missing")
    del missing["mase"], missing["seed"]
    rows = [make_row(cell_key="k-good"),
            make_row(cell_key="k-type", seed="3", mse="0.5"),
            missing,
            make_row(cell_key="k-unknown", colour="blue"),
            make_row(cell_key="k-naive", finished_at=dt.datetime(2024, 5, 1)),
            make_row(cell_key="k-kind", kind="baseline"),
            make_row(cell_key="k-date", run_date="01/05/2024"),
            make_row(cell_key="k-null", device=None)]
    with pytest.raises(TlbenchError) as info:
        lb.append(rows)
    message = str(info.value)
    assert "nothing was written" in message
    assert "'k-type'): column 'seed' must be int64, got str '3'" in message
    assert "'k-type'): column 'mse' must be float64" in message
    assert "'k-missing'): missing required column(s) 'seed', 'mase'" in message
    assert "'k-unknown'): unknown column(s) 'colour'" in message
    assert "'k-naive'): column 'finished_at' must be timezone-aware" in message
    assert "'k-kind'): kind 'baseline' with architecture 'lstm'" in message
    assert "'k-date'): column 'run_date' must be a date YYYY-MM-DD" in message
    assert "'k-null'): column 'device' is null but required" in message
    assert "k-good" not in message
    assert len(info.value.problems) == 8  # the two missing columns are one problem
    assert not (tmp_path / "lb").exists()


def test_bools_are_not_ints_and_a_bare_dict_is_refused(tmp_path):
    lb = Leaderboard(str(tmp_path))
    with pytest.raises(TlbenchError, match="'epochs' must be int64, got bool"):
        lb.append([make_row(epochs=True)])
    with pytest.raises(TlbenchError, match="wrap it in a list"):
        lb.append(make_row())
    assert parquet_files(tmp_path) == []


def test_numpy_scalars_and_pandas_missing_strings_are_accepted(tmp_path):
    lb = Leaderboard(str(tmp_path))
    lb.append([make_row(seed=np.int64(4), mase=np.float32(0.5), target_size=np.int32(100), git_commit=float("nan"))])
    df = lb.read()
    assert df.loc[0, "seed"] == 4 and df.loc[0, "mase"] == 0.5 and pd.isna(df.loc[0, "git_commit"])


def test_record_failure_and_failures(tmp_path):
    lb = Leaderboard(str(tmp_path))
    assert lb.failures().empty
    path = lb.record_failure(make_failure())
    assert "/failures/run_date=2024-05-01/grid=demo/bad0-" in path
    lb.record_failure(make_failure(cell_key="bad1", failed_at=T0 - dt.timedelta(hours=1)))
    failures = lb.failures()
    assert list(failures.columns) == FAILURE_SCHEMA.names
    assert failures["cell_key"].tolist() == ["bad1", "bad0"]
    assert lb.read().empty  # failures are not cells
    with pytest.raises(TlbenchError, match="'bad2'\\): missing required column\\(s\\) 'error'"):
        bad = make_failure(cell_key="bad2")
        del bad["error"]
        lb.record_failure(bad)


# ---------------------------------------------------------------- atomic, concurrent writes


def _write_rows(location: str, writer: int, count: int, start=None) -> None:
    """One concurrent writer: ``count`` single-row appends (module level so processes can run it),
    after every writer has reached the ``start`` barrier."""
    lb = Leaderboard(location)
    if start is not None:
        start.wait(60)
    for i in range(count):
        lb.append([make_row(cell_key=f"w{writer}-c{i}", seed=i, grid=f"grid{writer % 2}",
                            run_date=f"2024-05-0{1 + writer % 3}")])


def _check_two_hundred(root: Path) -> None:
    lb = Leaderboard(str(root))
    df = lb.read()
    assert len(df) == 200 and df["cell_key"].nunique() == 200
    assert len(lb.finished_keys()) == 200
    files = parquet_files(root)
    assert len(files) == 200
    assert not [f for f in files if f.name.startswith(".")]  # no temp file left behind
    assert lb.skipped == []


def test_eight_threads_write_two_hundred_rows_while_a_reader_reads(tmp_path):
    start = threading.Barrier(8)
    with ThreadPoolExecutor(8) as pool:
        writers = [pool.submit(_write_rows, str(tmp_path), i, 25, start) for i in range(8)]
        reader, seen, skipped = Leaderboard(str(tmp_path)), [], []
        while not all(w.done() for w in writers):
            seen.append(len(reader.read()))
            skipped += reader.skipped
        for w in writers:
            w.result()
    assert skipped == []  # a reader never meets half a file
    assert seen == sorted(seen)
    _check_two_hundred(tmp_path)


def test_eight_processes_write_two_hundred_rows(tmp_path):
    # Not fork: forking a process whose pyarrow thread pools have run can deadlock. A fork server
    # starts clean, imports this module once, then forks the 8 writers cheaply (spawn would pay
    # the pandas/pyarrow imports 8 times over).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["benchmark.results.leaderboard", __name__])
    start = context.Barrier(8)
    processes = [context.Process(target=_write_rows, args=(str(tmp_path), i, 25, start)) for i in range(8)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0] * 8
    _check_two_hundred(tmp_path)


def test_readers_ignore_temp_files(tmp_path):
    lb = Leaderboard(str(tmp_path))
    (path,) = lb.append([make_row()])
    Path(path).with_name(".tmp-deadbeef.parquet").write_bytes(Path(path).read_bytes()[:100])
    assert len(lb.read()) == 1 and lb.skipped == []


# ---------------------------------------------------------------- robust, filtered reads


def test_corrupt_and_foreign_files_are_skipped_and_reported(tmp_path, caplog):
    lb = Leaderboard(str(tmp_path))
    paths = [Path(p) for p in lb.append([make_row(cell_key=f"c{i}", seed=i) for i in range(4)])]
    data = paths[0].read_bytes()
    truncated = paths[0].with_name("truncated-00000000.parquet")
    truncated.write_bytes(data[: len(data) // 2])
    (paths[0].parent / "notes-00000000.parquet").write_text("not parquet at all")
    foreign = paths[0].parent / "foreign-00000000.parquet"
    pq.write_table(pa.table({"cell_key": ["x"], "seed": ["three"]}), foreign)
    broken_pages = bytearray(paths[1].read_bytes())
    broken_pages[4:200] = b"\xab" * 196  # the footer still reads; the data pages do not
    paths[1].write_bytes(bytes(broken_pages))

    with caplog.at_level(logging.WARNING, logger="benchmark.results.reader"):
        df = lb.read()
    assert sorted(df["cell_key"]) == ["c0", "c2", "c3"]  # c1's pages are broken
    reasons = {Path(path).name: reason for path, reason in lb.skipped}
    assert set(reasons) == {truncated.name, "notes-00000000.parquet", foreign.name, paths[1].name}
    assert "missing required column" in reasons[foreign.name] and "'seed' is string" in reasons[foreign.name]
    assert reasons[truncated.name].startswith("unreadable")
    assert sum("skipping" in r.message for r in caplog.records) == 4


def write_grid_of_rows(lb: Leaderboard) -> None:
    rows = []
    for day, grid in [("2024-05-01", "alpha"), ("2024-05-02", "beta"), ("2024-05-02", "gamma/x y")]:
        target = "m4/H1" if grid == "alpha" else "ett/ETTh1:OT"
        for size in (100, 1000):
            for mode in ("scratch", "fine_tune"):
                rows.append(make_row(cell_key=f"{grid}-{size}-{mode}", run_date=day, grid=grid,
                                     target_size=size, mode=mode, target=target))
        rows.append(make_row(cell_key=f"{grid}-naive", run_date=day, grid=grid, kind="baseline", target=target,
                             architecture="baseline", mode="seasonal_naive", epochs=0))
    lb.append(rows)


@pytest.fixture
def filled(tmp_path) -> Leaderboard:
    lb = Leaderboard(str(tmp_path))
    write_grid_of_rows(lb)
    return lb


@pytest.mark.parametrize("filters, expected", [
    ({}, 15),
    ({"run_date": "2024-05-02"}, 10),
    ({"run_date": dt.date(2024, 5, 2)}, 10),
    ({"grid": "gamma/x y"}, 5),
    ({"grid": ["alpha", "gamma/x y"]}, 10),
    ({"target_size": 100}, 9),
    ({"target_size": [100, 1000]}, 15),
    ({"mode": ["fine_tune", "seasonal_naive"]}, 9),
    ({"kind": "baseline"}, 3),
    ({"architecture": "lstm", "target": "m4/H1", "mode": "scratch"}, 2),
    ({"run_date": "2024-05-02", "target_size": 1000, "mode": "fine_tune"}, 2),
    ({"grid": []}, 0),
    ({"run_date": "1999-01-01"}, 0),
])
def test_filters_accept_scalars_and_lists(filled, filters, expected):
    df = filled.read(**filters)
    assert len(df) == expected
    assert list(df.columns) == SCHEMA.names


def test_partition_filters_never_open_other_partitions(filled, tmp_path):
    corrupt = tmp_path / "cells" / "run_date=2024-05-01" / "grid=alpha" / "zz-corrupt.parquet"
    corrupt.write_bytes(b"PAR1 garbage")
    assert len(filled.read(run_date="2024-05-02")) == 10 and filled.skipped == []
    assert len(filled.read(grid="beta")) == 5 and filled.skipped == []
    assert len(filled.read(mode="scratch")) == 6 and len(filled.skipped) == 1


def test_bad_filters_say_what_is_expected(filled):
    with pytest.raises(TlbenchError, match="target_size='100' must be an int"):
        filled.read(target_size="100")
    with pytest.raises(TlbenchError, match="kind='models' is unknown. Known: model, baseline"):
        filled.read(kind="models")


def test_duplicate_cell_keys_keep_the_latest_finished_at(tmp_path, caplog):
    lb = Leaderboard(str(tmp_path))
    lb.append([make_row(cell_key="dup", mase=2.0, finished_at=T0 + dt.timedelta(hours=2))])
    lb.append([make_row(cell_key="dup", mase=1.0, finished_at=T0 + dt.timedelta(hours=1))])
    lb.append([make_row(cell_key="other", seed=1)])
    with caplog.at_level(logging.WARNING, logger="benchmark.results.reader"):
        df = lb.read()
    assert len(df) == 2
    assert df.set_index("cell_key").loc["dup", "mase"] == 2.0
    assert "1 duplicate row(s) for 1 cell_key(s) (e.g. 'dup')" in caplog.text
    assert lb.finished_keys() == {"dup", "other"}


def test_empty_leaderboard_reads_as_an_empty_frame_with_the_schema(tmp_path):
    lb = Leaderboard(str(tmp_path / "nothing-yet"))
    df = lb.read()
    assert df.empty and list(df.columns) == SCHEMA.names
    assert df["seed"].dtype == "int64"
    assert lb.finished_keys() == set() and lb.failures().empty


def test_aggregate_file_is_written_atomically_and_read_back(tmp_path):
    lb = Leaderboard(str(tmp_path))
    with pytest.raises(TlbenchError, match="No aggregate"):
        lb.read_aggregate()
    first = lb.write_aggregate(pd.DataFrame({"target": ["a"], "mase_mean": [1.0]}))
    second = lb.write_aggregate(pd.DataFrame({"target": ["b"], "mase_mean": [2.0]}))
    assert first == second == str(tmp_path / "leaderboard.parquet")
    assert lb.read_aggregate()["target"].tolist() == ["b"]
    assert [p.name for p in parquet_files(tmp_path)] == ["leaderboard.parquet"]


def test_a_file_uri_works_like_a_plain_path(tmp_path):
    uri = (tmp_path / "lb").as_uri()
    assert uri.startswith("file:///")
    by_uri = Leaderboard(uri)
    write_grid_of_rows(by_uri)
    (path,) = by_uri.append([make_row(cell_key="extra", run_date="2024-05-03")])
    assert path.startswith(uri + "/cells/run_date=2024-05-03/grid=demo/extra-")
    by_uri.record_failure(make_failure())
    assert by_uri.write_aggregate(aggregate(by_uri.read())) == uri + "/leaderboard.parquet"
    by_path = Leaderboard(str(tmp_path / "lb"))
    pd.testing.assert_frame_equal(by_uri.read(grid=["alpha", "beta"]), by_path.read(grid=["alpha", "beta"]))
    assert by_uri.finished_keys() == by_path.finished_keys() and len(by_path.finished_keys()) == 16
    assert len(by_path.failures()) == 1
    pd.testing.assert_frame_equal(by_uri.read_aggregate(), by_path.read_aggregate())


def test_append_batch_writes_one_file_for_one_partition(tmp_path):
    lb = Leaderboard(str(tmp_path))
    path = lb.append_batch([make_row(cell_key=f"b{i}", seed=i) for i in range(5)])
    assert Path(path).name.startswith("batch-") and len(parquet_files(tmp_path)) == 1
    assert len(lb.read()) == 5
    with pytest.raises(TlbenchError, match="must share run_date and grid"):
        lb.append_batch([make_row(cell_key="x"), make_row(cell_key="y", grid="other")])


def test_compact_merges_each_partition_into_one_file_and_keeps_every_row(tmp_path):
    lb = Leaderboard(str(tmp_path))
    write_grid_of_rows(lb)  # 15 files in 3 partitions
    lb.append([make_row(cell_key="alpha-100-scratch", run_date="2024-05-01", grid="alpha", target="m4/H1",
                        mase=0.5, finished_at=T0 + dt.timedelta(days=1))])  # a newer duplicate
    lb.append([make_row(cell_key="nan-mape", run_date="2024-05-01", grid="alpha", mape=float("nan"))])
    corrupt = tmp_path / "cells" / "run_date=2024-05-02" / "grid=beta" / "zz-corrupt.parquet"
    corrupt.write_bytes(b"PAR1 garbage")
    before = lb.read()

    assert lb.compact(run_date="2024-05-01") == dict(partitions=1, files_merged=7, files_written=1, rows=6)
    assert lb.compact() == dict(partitions=2, files_merged=10, files_written=2, rows=10)
    assert [Path(p).name for p, _ in lb.skipped] == ["zz-corrupt.parquet"]  # left in place, reported
    files = parquet_files(tmp_path / "cells")
    assert len(files) == 4 and corrupt in files
    after = lb.read()
    pd.testing.assert_frame_equal(after, before)
    assert after.set_index("cell_key").loc["alpha-100-scratch", "mase"] == 0.5
    assert math.isnan(after.set_index("cell_key").loc["nan-mape", "mape"])
    assert lb.compact()["files_merged"] == 0  # nothing left to merge


def test_a_reader_beside_a_compaction_sees_every_row_and_warns_of_nothing(tmp_path, monkeypatch, caplog):
    # The race seen at the end of a grid run: the progress line's read lists the cell files, the
    # grid's compaction then moves them to the archive, and the read finds them gone (it used to
    # skip every one with a warning and count 0 cells done).
    lb = Leaderboard(str(tmp_path))
    write_grid_of_rows(lb)  # 15 files in 3 partitions
    corrupt = tmp_path / "cells" / "run_date=2024-05-02" / "grid=beta" / "zz-corrupt.parquet"
    corrupt.write_bytes(b"PAR1 garbage")
    expected = Leaderboard(str(tmp_path)).finished_keys()
    caplog.clear()
    listed = Leaderboard._fragments
    races = []

    def list_then_compact(self, subdir, schema, expression):
        found = listed(self, subdir, schema, expression)
        if subdir == "cells" and not races:  # once: a compaction from another process, between list and read
            races.append(None)
            races[0] = Leaderboard(str(tmp_path)).compact()
        return found

    monkeypatch.setattr(Leaderboard, "_fragments", list_then_compact)
    reader = Leaderboard(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="benchmark.results.reader"):
        keys = reader.finished_keys()
    assert races and races[0]["files_merged"] == 15  # the files it listed really moved
    assert keys == expected and len(keys) == 15
    # the damaged file is still reported, once; the moved ones are not
    assert [Path(p).name for p, _ in reader.skipped] == ["zz-corrupt.parquet"]
    # (once by the compaction, once by the reader; never a moved file)
    assert [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()] == [
        f"leaderboard: skipping {corrupt}: {reader.skipped[0][1]}"] * 2


# ---------------------------------------------------------------- statistics


def results_frame(spec: dict[tuple, list[float]], target: str = "t") -> pd.DataFrame:
    """Rows from ``{(size, architecture, mode): [mase of seed 0, seed 1, ...]}``; mse = 10 * mase."""
    rows = []
    for (size, architecture, mode), values in spec.items():
        for seed, value in enumerate(values):
            rows.append(dict(target=target, target_size=size, architecture=architecture, mode=mode, seed=seed,
                             lookback=24, horizon=1, mse=10 * value, rmse=value, mae=value, mape=value,
                             smape=value, mase=value, train_seconds=float(seed + 1)))
    return pd.DataFrame(rows)


HAND = {
    (100, "lstm", "scratch"): [2.0, 3.0, 4.0],
    (100, "lstm", "fine_tune"): [1.0, 2.0, 3.0],
    (100, "baseline", "seasonal_naive"): [4.0],
    (1000, "lstm", "scratch"): [1.0, 1.0, 1.0],
    (1000, "lstm", "fine_tune"): [1.5, 1.5, 1.5],
    (1000, "baseline", "seasonal_naive"): [2.0],
}


def test_aggregate_numbers_by_hand():
    agg = aggregate(results_frame(HAND))
    assert list(agg.columns) == aggregate_columns("mase")
    row = agg.set_index(["target_size", "architecture", "mode"])
    fine = row.loc[(100, "lstm", "fine_tune")]
    assert fine["n_seeds"] == 3 and fine["mase_mean"] == 2.0 and fine["mase_std"] == 1.0
    assert fine["mase_ci95"] == pytest.approx(T_975_DF2 / math.sqrt(3))  # 2.484...
    assert fine["mse_mean"] == 20.0 and fine["train_seconds_mean"] == 2.0
    assert fine["rank"] == 1 and row.loc[(100, "lstm", "scratch"), "rank"] == 2
    assert row.loc[(100, "baseline", "seasonal_naive"), "rank"] == 3
    assert fine["improvement_vs_scratch_pct"] == pytest.approx(100 / 3)  # (3 - 2) / 3
    assert fine["test_vs_scratch"] == "t-test" and fine["p_value_vs_scratch"] < 0.05
    assert fine["skill_vs_seasonal_naive"] == pytest.approx(0.5)  # 1 - 2 / 4
    assert row.loc[(100, "lstm", "scratch"), "skill_vs_seasonal_naive"] == pytest.approx(0.25)
    naive = row.loc[(100, "baseline", "seasonal_naive")]
    assert naive["n_seeds"] == 1 and math.isnan(naive["mase_std"]) and math.isnan(naive["mase_ci95"])
    assert math.isnan(naive["improvement_vs_scratch_pct"]) and math.isnan(naive["p_value_vs_scratch"])
    assert math.isnan(row.loc[(100, "lstm", "scratch"), "improvement_vs_scratch_pct"])
    assert row.loc[(1000, "lstm", "fine_tune"), "improvement_vs_scratch_pct"] == pytest.approx(-50.0)
    assert row.loc[(1000, "lstm", "scratch"), "mase_ci95"] == 0.0
    assert agg["target_size"].tolist() == [100, 100, 100, 1000, 1000, 1000]  # sorted by rank inside
    assert agg["rank"].tolist() == [1, 2, 3, 1, 2, 3]


def test_aggregate_uses_wilcoxon_with_many_seeds_and_another_metric():
    scratch = [1.0, 1.2, 0.9, 1.1, 1.05, 0.95, 1.15, 1.0]
    frame = results_frame({(100, "gru", "scratch"): scratch, (100, "gru", "freeze"): [v - 0.1 for v in scratch],
                           (100, "gru", "same"): scratch})
    agg = aggregate(frame, metric="mse").set_index("mode")
    assert "mse_ci95" in agg.columns and (agg["metric"] == "mse").all()
    assert agg.loc["freeze", "test_vs_scratch"] == "wilcoxon" and agg.loc["freeze", "p_value_vs_scratch"] < 0.05
    assert agg.loc["same", "test_vs_scratch"] == "identical" and agg.loc["same", "p_value_vs_scratch"] == 1.0
    assert math.isnan(agg.loc["scratch", "skill_vs_seasonal_naive"])  # no seasonal naive rows


def test_a_grid_is_ranked_by_its_protocols_metric():
    from benchmark.data.protocols import PROTOCOLS
    from benchmark.results.ranking import ranking_metric

    # MASE and mse_z disagree: scratch has the lower MASE, finetune the lower mse_z (the papers' number)
    frame = results_frame({(720, "lstm", "scratch"): [1.0, 1.0], (720, "lstm", "finetune"): [1.1, 1.1],
                           (720, "baseline", "naive"): [1.2]})
    frame = frame.assign(mse_z=frame["mode"].map({"scratch": 0.04, "finetune": 0.03, "naive": 0.035}),
                         mae_z=0.1, protocol="ett_standard")
    assert PROTOCOLS.get("ett_standard").metric == "mse_z" and PROTOCOLS.get("tlbench").metric == "mase"
    assert ranking_metric(frame) == "mse_z"
    ranked = aggregate(frame)
    assert winners(ranked).iloc[0]["best_mode"] == "finetune"
    agg = ranked.set_index("mode")
    assert (agg["metric"] == "mse_z").all() and agg.loc["finetune", "rank"] == 1
    assert agg.loc["finetune", "mse_z_mean"] == pytest.approx(0.03) and agg.loc["naive", "rank"] == 2
    assert agg.loc["finetune", "improvement_vs_scratch_pct"] == pytest.approx(25.0)
    # the default protocol, mixed protocols, a source row aside, or no protocol column: MASE
    assert ranking_metric(frame.assign(protocol="tlbench")) == "mase"
    assert ranking_metric(frame.assign(protocol=["tlbench"] + ["ett_standard"] * (len(frame) - 1))) == "mase"
    source = frame.iloc[[0]].assign(kind="source", protocol="tlbench")
    assert ranking_metric(pd.concat([frame.assign(kind="model"), source])) == "mse_z"
    assert ranking_metric(results_frame(HAND)) == "mase"
    # frames without the protocol-scale columns still aggregate: those columns are NaN
    plain = aggregate(results_frame(HAND))
    assert plain["mse_z_mean"].isna().all() and (plain["metric"] == "mase").all()


def test_aggregate_of_nothing_and_bad_metric():
    empty = aggregate(results_frame({}).reindex(columns=[*SCHEMA.names]))
    assert empty.empty and list(empty.columns) == aggregate_columns()
    with pytest.raises(TlbenchError, match="Unknown metric 'maze'. Known: mse, rmse"):
        aggregate(results_frame(HAND), metric="maze")


def test_aggregate_reads_straight_from_the_leaderboard(filled):
    agg = aggregate(filled.read())
    # per target: 2 sizes x (scratch, fine_tune) + seasonal naive at size 100
    assert len(agg) == 10
    assert set(agg["mode"]) == {"scratch", "fine_tune", "seasonal_naive"}


def test_winners_by_hand():
    result = winners(aggregate(results_frame(HAND))).set_index("target_size")
    assert list(result.index) == [100, 1000]
    assert result.loc[100, "best_mode"] == "fine_tune" and bool(result.loc[100, "significant"])
    assert result.loc[100, "improvement_vs_scratch_pct"] == pytest.approx(100 / 3)
    assert result.loc[100, "scratch_mean"] == 3.0
    assert result.loc[1000, "best_mode"] == "scratch" and not result.loc[1000, "significant"]


def test_transfer_horizon_by_hand():
    spec = {**HAND, (10000, "lstm", "scratch"): [1.0, 1.1, 0.9], (10000, "lstm", "fine_tune"): [1.1, 1.0, 0.9],
            (10, "lstm", "scratch"): [5.0], (10, "lstm", "fine_tune"): [4.0]}
    result = transfer_horizon(aggregate(results_frame(spec)))
    assert len(result) == 1
    row = result.iloc[0]
    assert (row["target"], row["architecture"], row["mode"]) == ("t", "lstm", "fine_tune")
    assert row["largest_helping_size"] == 100 and row["smallest_non_helping_size"] == 1000
    assert row["helping_sizes"] == (10, 100) and row["sizes"] == (10, 100, 1000, 10000)
    assert "mean only at sizes with fewer than 2 paired seeds (10)" in row["rule"]


def test_transfer_horizon_always_helping_gives_none():
    spec = {(100, "gru", "scratch"): [2.0, 2.1, 2.05], (100, "gru", "freeze"): [1.0, 1.1, 1.0],
            (1000, "gru", "scratch"): [2.0, 2.2, 2.1], (1000, "gru", "freeze"): [1.5, 1.6, 1.55]}
    row = transfer_horizon(aggregate(results_frame(spec))).iloc[0]
    assert row["largest_helping_size"] == 1000 and row["smallest_non_helping_size"] is None
    assert row["rule"] == "mean better than scratch and paired p < 0.05"


def test_regressions_flag_a_real_regression_and_not_seed_noise():
    wobble = [1.0, 1.02, 0.98]  # +-2% between seeds: 95% CI half-width 0.0497
    previous = {(100, "lstm", "scratch"): wobble, (100, "lstm", "fine_tune"): wobble,
                (100, "lstm", "freeze"): wobble, (100, "gru", "scratch"): [1.0], (100, "gru", "freeze"): [1.0]}
    current = {(100, "lstm", "scratch"): [v * 1.3 for v in wobble],       # injected 30% regression
               (100, "lstm", "fine_tune"): [v * 1.06 for v in wobble],    # +6%, inside the seed noise
               (100, "lstm", "freeze"): [1.02, 0.98, 1.0],                  # the same wobble, reshuffled
               (100, "gru", "scratch"): [1.07],                             # one seed: threshold only
               (100, "gru", "freeze"): [1.03]}                              # one seed, under threshold
    flagged = regressions(aggregate(results_frame(current)), aggregate(results_frame(previous)))
    assert list(zip(flagged["architecture"], flagged["mode"])) == [("lstm", "scratch"), ("gru", "scratch")]
    lstm = flagged.iloc[0]
    assert lstm["previous"] == pytest.approx(1.0) and lstm["current"] == pytest.approx(1.3)
    assert lstm["change_pct"] == pytest.approx(30.0)
    assert "outside seed noise" in lstm["reason"] and "+30.0%" in lstm["reason"]
    assert "threshold only" in flagged.iloc[1]["reason"]
    # with the interval recomputed from std and n_seeds (aggregate ranked by another metric)
    again = regressions(aggregate(results_frame(current), metric="mae"),
                        aggregate(results_frame(previous), metric="mae"), metric="mase")
    assert again["mode"].tolist() == flagged["mode"].tolist()


def test_regressions_with_nothing_flagged_is_an_empty_frame():
    agg = aggregate(results_frame(HAND))
    result = regressions(agg, agg)
    assert result.empty and "reason" in result.columns


def test_format_table_is_fixed_width_and_truncates():
    agg = aggregate(results_frame(HAND))
    text = format_table(agg, columns=["target_size", "mode", "mase_mean", "mase_ci95", "rank"], max_rows=4)
    lines = text.splitlines()
    assert lines[0].split() == ["target_size", "mode", "mase_mean", "mase_ci95", "rank"]
    assert set(lines[1]) <= {"-", " "}
    assert "2.484" in text and lines[-1] == "... 2 more row(s)"
    assert len(lines) == 2 + 4 + 1
    assert lines[4].split()[3] == "-"  # one seed: no interval
    assert format_table(agg.iloc[0:0]) == "(no rows)"
    with pytest.raises(TlbenchError, match="unknown column"):
        format_table(agg, columns=["nope"])


def test_every_metric_has_mean_and_std_columns():
    agg = aggregate(results_frame(HAND))
    for metric in METRICS:
        assert f"{metric}_mean" in agg.columns and f"{metric}_std" in agg.columns


def test_quarantine_moves_unreadable_files_aside_and_leaves_foreign_ones(tmp_path):
    lb = Leaderboard(str(tmp_path))
    paths = [Path(p) for p in lb.append([make_row(cell_key=f"c{i}", seed=i) for i in range(3)])]
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[: len(data) // 2])  # c0's only file, truncated
    garbage = paths[0].parent / "garbage-00000000.parquet"
    garbage.write_bytes(b"\x00" * 100)
    foreign = paths[0].parent / "foreign-00000000.parquet"
    pq.write_table(pa.table({"cell_key": ["x"]}), foreign)
    failure = Path(lb.record_failure(dict(
        grid_id="gid1", grid="demo", run_id="run1", run_date="2024-05-01", cell_key="c9", target="t",
        target_size=1, architecture="lstm", mode="scratch", seed=0, error="boom", failed_at=T0)))
    failure.write_bytes(b"not parquet")
    truncated_bytes = paths[0].read_bytes()

    moved = dict(lb.quarantine())
    assert set(moved) == {str(paths[0]), str(garbage), str(failure)}
    assert moved[str(paths[0])] == str(tmp_path / "quarantine" / paths[0].relative_to(tmp_path))
    assert Path(moved[str(paths[0])]).read_bytes() == truncated_bytes  # kept as found, for a post-mortem
    assert [Path(p).name for p, _ in lb.skipped] == [foreign.name]  # valid Parquet, other schema: left
    assert foreign.is_file() and not paths[0].exists() and not garbage.exists()
    assert sorted(lb.read()["cell_key"]) == ["c1", "c2"]
    assert [Path(p).name for p, _ in lb.skipped] == [foreign.name]
    assert lb.failures().empty
    assert lb.quarantine() == []  # nothing left to move
    # a bad file of the same name later on does not overwrite the first one's copy
    paths[0].write_bytes(b"broken again")
    (again,) = lb.quarantine()
    assert again[1] != moved[str(paths[0])] and Path(again[1]).read_bytes() == b"broken again"
    assert Path(moved[str(paths[0])]).read_bytes() == truncated_bytes


def test_finished_runs_maps_each_cell_to_the_run_of_its_latest_row(tmp_path):
    lb = Leaderboard(str(tmp_path))
    lb.append([make_row(cell_key="a", mlflow_run_id="run-old"),
               make_row(cell_key="a", mlflow_run_id="run-new", finished_at=T0 + dt.timedelta(hours=1)),
               make_row(cell_key="b", seed=1, mlflow_run_id=None)])
    assert lb.finished_runs() == {"a": "run-new", "b": None}
    assert set(lb.finished_runs()) == lb.finished_keys()


def test_aggregate_keeps_regimes_and_feature_sets_apart_and_compares_each_with_its_own_scratch():
    from benchmark.results.ranking import fold_variants

    stateless = results_frame({(100, "lstm", "scratch"): [2.0, 2.0], (100, "lstm", "frozen"): [1.0, 1.0],
                               (100, "baseline", "seasonal_naive"): [4.0]})
    stateful = results_frame({(100, "lstm", "scratch"): [4.0, 4.0], (100, "lstm", "frozen"): [3.0, 3.0]})
    rows = pd.concat([stateless.assign(regime="stateless", features="y"),
                      stateful.assign(regime="stateful", features="y+hour_of_day")], ignore_index=True)
    agg = aggregate(rows).set_index(["architecture", "mode"])
    assert set(agg.index) == {("lstm", "scratch"), ("lstm", "frozen"), ("baseline", "seasonal_naive"),
                              ("lstm · stateful · y+hour_of_day", "scratch"),
                              ("lstm · stateful · y+hour_of_day", "frozen")}
    assert agg.loc[("lstm", "frozen"), "improvement_vs_scratch_pct"] == pytest.approx(50.0)  # (2-1)/2
    assert agg.loc[("lstm · stateful · y+hour_of_day", "frozen"), "improvement_vs_scratch_pct"] == \
        pytest.approx(25.0)  # (4-3)/4, against the stateful scratch, not the stateless one
    assert agg.loc[("lstm", "scratch"), "n_seeds"] == 2  # nothing pooled across regimes
    once = fold_variants(rows)
    assert fold_variants(once)["architecture"].tolist() == once["architecture"].tolist()  # idempotent
    assert (once.loc[once["architecture"] == "baseline", "mode"] == "seasonal_naive").all()
