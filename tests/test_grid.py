"""The grid: expansion, identity, and faults that must stop a cell but never the grid."""

from __future__ import annotations

import pytest

from benchmark.config import load_grid
from benchmark.grid import LocalEngine, run_grid
from benchmark.jobs import cell_key, expand
from benchmark.stages import pretrained_dir
from benchmark.leaderboard import Leaderboard
from benchmark.tracking import Tracker

TINY = ["target_sizes=[120]", "split.test_size=48", "model.units=8", "training.max_epochs=2",
        "pretrain.max_series=6", "pretrain.windows_per_series=40", "pretrain.training.max_epochs=1"]


def test_expand_is_the_full_product_with_identical_networks():
    spec = load_grid("smoke", ["architectures=[lstm, gru]", "seeds=[0, 1, 2]"])
    cells = expand(spec)
    assert len(cells) == 1 * 2 * 2 * 3 * 3  # targets x sizes x architectures x modes x seeds
    gru = [c for c in cells if c.architecture == "gru"]
    assert {c.model for c in gru} == {gru[0].model}  # every mode: the same network spec
    keys = {cell_key(c, "fp") for c in cells}
    assert len(keys) == len(cells)


def test_cell_key_depends_on_data_and_spec_only():
    a = expand(load_grid("smoke"))[0]
    b = expand(load_grid("smoke"))[0]
    assert cell_key(a, "fp1") == cell_key(b, "fp1")
    assert cell_key(a, "fp1") != cell_key(a, "fp2")
    c = expand(load_grid("smoke", ["training.max_epochs=7"]))[0]
    assert cell_key(a, "fp1") != cell_key(c, "fp1")


def test_non_finite_loss_fails_the_cell_not_the_grid(settings):
    spec = load_grid("smoke", TINY + ["modes=[scratch]", "baselines=[seasonal_naive]",
                                      "training.optimizer=sgd", "training.learning_rate=1e12"])
    result = run_grid(spec, settings, LocalEngine(1))
    assert result.counts() == {"failed": 1, "finished": 1}  # the baseline still finished
    failed = result.failed[0]
    assert "non-finite loss" in failed.error
    board = Leaderboard(settings.results)
    failures = board.failures()
    assert list(failures["cell_key"]) == [failed.cell_key]
    assert "non-finite loss" in failures["error"].iloc[0]
    tracker = Tracker(settings, "tlbench-smoke")
    run = tracker.get_run(failed.mlflow_run_id)
    assert run.info.status == "FAILED" and "non-finite" in run.data.tags["tlbench.error"]
    assert tracker.get_run(result.parent_run_id).info.status == "FAILED"
    assert failed.cell_key not in board.finished_keys()  # a rerun will try it again


def test_corrupted_pretrained_file_is_detected_and_never_loaded(settings):
    spec = load_grid("smoke", TINY + ["modes=[frozen]", "baselines=[]"])
    first = run_grid(spec, settings, LocalEngine(1))
    assert first.counts() == {"finished": 1}
    folder = next((pretrained_dir(settings, "x").parent).iterdir())
    model_file = folder / "model.keras"
    good = model_file.read_bytes()
    model_file.write_bytes(good[: len(good) // 2])  # truncated, as by a crash or a full disk

    second = run_grid(load_grid("smoke", TINY + ["modes=[frozen]", "baselines=[]", "seeds=[1]"]),
                      settings, LocalEngine(1))
    assert second.counts() == {"finished": 1}
    import json

    from benchmark.pretrain import file_sha256, load_pretrained

    # the truncated file was replaced by a verified copy of the registered version
    restored = file_sha256(model_file)
    assert json.loads((folder / "meta.json").read_text())["sha256"] == restored
    load_pretrained(model_file, restored)
    tracker = Tracker(settings, "tlbench-smoke")
    version = tracker.client.get_model_version_by_alias("pretrained-lstm-m4-hourly", "current")
    rows = Leaderboard(settings.results).read(kind="model")
    assert set(rows["pretrained_version"]) == {f"pretrained-lstm-m4-hourly/{version.version}"}
    pretrain_runs = tracker.client.search_runs([tracker.experiment_id], "tags.`tlbench.kind` = 'pretrain'")
    assert len(pretrain_runs) == 1  # fetched from the registry, not trained twice


def test_a_missing_covariate_column_stops_the_grid_before_anything_trains(settings):
    from benchmark.errors import DataError

    spec = load_grid("smoke", TINY + ["modes=[scratch]", "feature_sets=[[], [covariate:NOPE], [hour_of_day]]"])
    with pytest.raises(DataError) as caught:
        run_grid(spec, settings, LocalEngine(1))
    message = str(caught.value)
    assert "grid.feature_sets[1]" in message and "NOPE" in message
    assert "HUFL" in message  # the source's own error lists the columns there are
    assert "feature_sets[0]" not in message and "feature_sets[2]" not in message
    assert not Leaderboard(settings.results).finished_keys()  # nothing ran
