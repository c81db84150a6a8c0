"""The grid: expansion, identity, and faults that must stop a cell but never the grid."""

from __future__ import annotations

import pytest

from benchmark.results.leaderboard import Leaderboard
from benchmark.run.engines import LocalEngine
from benchmark.run.grid import run_grid
from benchmark.run.jobs import cell_key, expand
from benchmark.run.pretraining import pretrained_dir
from benchmark.spec.profiles import load_grid
from benchmark.tracking.tracker import Tracker

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

    from benchmark.models.pretrain import file_sha256, load_pretrained

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
    from benchmark.spec.errors import DataError

    spec = load_grid("smoke", TINY + ["modes=[scratch]", "feature_sets=[[], [covariate:NOPE], [hour_of_day]]"])
    with pytest.raises(DataError) as caught:
        run_grid(spec, settings, LocalEngine(1))
    message = str(caught.value)
    assert "grid.feature_sets[1]" in message and "NOPE" in message
    assert "HUFL" in message  # the source's own error lists the columns there are
    assert "feature_sets[0]" not in message and "feature_sets[2]" not in message
    assert not Leaderboard(settings.results).finished_keys()  # nothing ran


def test_target_seeds_pair_with_pretraining_seeds_and_zeroshot_runs_once_per_body():
    spec = load_grid("smoke", ["seeds=[0, 1, 2, 3]", "pretrain.seeds=[10, 11]",
                               "modes=[scratch, frozen, zeroshot]"])
    cells = expand(spec)
    pairs = {(c.mode, c.seed): c.pretrain_seed for c in cells if c.target_size == 240}
    assert [pairs[("frozen", s)] for s in range(4)] == [10, 11, 10, 11]  # seed i -> pretrain.seeds[i mod 2]
    zeroshot = sorted((c.seed, c.pretrain_seed) for c in cells if c.mode == "zeroshot" and c.target_size == 240)
    assert zeroshot == [(0, 10), (1, 11)]  # once per body, not once per target seed
    frozen = [c for c in cells if c.mode == "frozen" and c.target_size == 240]
    assert {c.pretrain.seeds for c in frozen} == {(10,), (11,)}  # a cell's key names its one body


def test_normalisation_lookback_and_forecast_axes_expand_into_variants():
    spec = load_grid("smoke", ["normalisations=[global, last_value]", "lookbacks=[24, 48]",
                               "forecasts=[direct, recursive]", "split.horizon=4", "modes=[scratch]"])
    cells = expand(spec)
    assert len(cells) == 2 * 2 * 2 * 2  # sizes x normalisations x lookbacks x forecasts
    assert {(c.model.normalisation, c.split.lookback, c.split.forecast) for c in cells} == {
        (n, l, f) for n in ("global", "last_value") for l in (24, 48) for f in ("direct", "recursive")}
    labels = {" ".join(c.variant_parts) for c in cells}
    assert "global recursive L48" in labels  # away from every default: named in the label
    assert len({cell_key(c, "fp") for c in cells}) == len(cells)


def test_three_pretraining_seeds_run_end_to_end_with_the_body_seed_recorded(settings):
    spec = load_grid("smoke", TINY + ["modes=[scratch, frozen, zeroshot]", "seeds=[0, 1, 2]",
                                      "pretrain.seeds=[0, 1, 2]", "baselines=[naive]"])
    result = run_grid(spec, settings, LocalEngine(1))
    assert not result.failed
    rows = Leaderboard(settings.results).read(kind="model")
    frozen = rows.loc[rows["mode"] == "frozen"].sort_values("seed")
    assert frozen["pretrain_seed"].tolist() == [0, 1, 2]
    assert frozen["pretrained_key"].nunique() == 3  # three bodies, one per pretraining seed
    zeroshot = rows.loc[rows["mode"] == "zeroshot"]
    assert len(zeroshot) == 3 and zeroshot["mase"].nunique() == 3  # one per body, no identical copies
    tracker = Tracker(settings, "tlbench-smoke")
    pretrain_runs = tracker.client.search_runs([tracker.experiment_id], "tags.`tlbench.kind` = 'pretrain'")
    assert sorted(r.data.tags["pretrain_seed"] for r in pretrain_runs) == ["0", "1", "2"]
    run = tracker.get_run(frozen["mlflow_run_id"].iloc[1])
    assert run.data.tags["pretrain_seed"] == "1"
    assert result.verdict and all("naive" in line for line in result.verdict)  # the baseline is in it
