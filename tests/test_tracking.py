"""MLflow tracking against a real ``mlflow server`` on 127.0.0.1 (started and stopped by the
``mlflow_server`` fixture): the run tree, the registry, model round trips, concurrency, failures."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from benchmark.run.engines import LocalEngine
from benchmark.run.grid import run_grid
from benchmark.spec.profiles import load_grid
from benchmark.spec.settings import Settings
from benchmark.tracking.tags import DatasetRef, flatten, looks_secret
from benchmark.tracking.tracker import Tracker

pytestmark = pytest.mark.e2e

TINY = ["target_sizes=[120]", "split.test_size=48", "model.units=8", "training.max_epochs=2",
        "pretrain.max_series=6", "pretrain.windows_per_series=40", "pretrain.training.max_epochs=1",
        "modes=[scratch, frozen, finetune]", "baselines=[seasonal_naive]"]


def test_cell_names_are_short_for_the_runs_list_and_ascii_for_logs():
    from benchmark.run.jobs import CellNames

    names = CellNames("ett/ETTh1:OT", 960, "lstm", "finetune", 0)
    assert names.run_name == "lstm·finetune·960·s0" and names.task_name == "cell-lstm-finetune-n960-s0"
    stateful = CellNames("ett/ETTh1:OT", 960, "lstm", "finetune", 1, ("stateful",))
    assert stateful.run_name == "lstm·finetune·stateful·960·s1"
    assert names.dataset_name("training", np.datetime64("2016-07-01T00:00"), np.datetime64("2016-08-09T23:00"),
                              960) == "ett/ETTh1:OT training 2016-07-01 00:00..2016-08-09 23:00 (960 points)"
    assert names.dataset_name("test", np.int64(10), np.int64(19), 10) == "ett/ETTh1:OT test 10..19 (10 points)"


def test_ui_view_prints_the_saved_view_and_the_size_filter():
    from urllib.parse import parse_qs, urlsplit

    from benchmark.commands import ui_view_text

    text = ui_view_text("http://127.0.0.1:5000", {"tlbench-smoke": "3"}, 960)
    saved, sized = (line.split(": ", 1)[1] for line in text.splitlines()[1:3])
    assert urlsplit(saved).fragment == ("/experiments/3/runs?viewStateShareKey=tlbench-modes"
                                        "&workflowType=machine_learning")
    query = parse_qs(urlsplit(sized).fragment.split("?", 1)[1])
    assert query["searchFilter"] == ["tags.`tlbench.kind` = 'cell' and tags.target_size = '960'"]
    assert query["orderByKey"] == ["metrics.`mase`"] and query["orderByAsc"] == ["true"]
    assert "group by: tags target_size, mode (aggregate: average)" in text


def test_secrets_are_never_logged():
    assert looks_secret("AWS_SECRET_ACCESS_KEY") and looks_secret("db.password") and looks_secret("api_key")
    assert not looks_secret("training.learning_rate")
    flat = flatten("", {"training": {"batch_size": 64}, "storage": {"token": "abc"}})
    assert flat == {"training.batch_size": "64"}


@pytest.fixture(scope="module")
def server_run(mlflow_server, tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("tracked")
    settings = Settings(data_dir=data_dir, results=str(root / "results"), tracking_uri=mlflow_server,
                        mlflow_dir=root / "mlflow", experiment="tracking-test",
                        allow_download=False).resolved()
    result = run_grid(load_grid("smoke", TINY), settings, LocalEngine(1))
    return settings, result


def test_run_tree_params_tags_metrics_and_artifacts(server_run):
    settings, result = server_run
    assert result.counts() == {"finished": 4}
    tracker = Tracker(settings, "tracking-test")
    runs = tracker.client.search_runs([tracker.experiment_id], max_results=100)
    by_kind = {}
    for run in runs:
        by_kind.setdefault(run.data.tags["tlbench.kind"], []).append(run)
    assert [r.info.run_id for r in by_kind["grid"]] == [result.parent_run_id]
    assert len(by_kind["pretrain"]) == 1 and len(by_kind["cell"]) == 3
    for run in by_kind["pretrain"] + by_kind["cell"]:
        assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
        assert run.info.status == "FINISHED"
    cell = next(r for r in by_kind["cell"] if r.data.tags["mode"] == "finetune")
    assert cell.data.params["model.units"] == "8" and cell.data.params["mode"] == "finetune"
    assert cell.data.tags["target"] == "ett/ETTh1:OT" and cell.data.tags["target_size"] == "120"
    assert cell.data.tags["device"] == "CPU" and cell.data.tags["git_commit"] != ""
    for metric in ("mase", "smape", "mse", "mae", "train_seconds", "trainable_params"):
        assert metric in cell.data.metrics
    history = tracker.client.get_metric_history(cell.info.run_id, "val_loss")
    assert [m.step for m in history] == list(range(len(history))) and len(history) >= 1
    artifacts = {a.path for a in tracker.client.list_artifacts(cell.info.run_id)}
    assert {"forecast.png", "learning_curve.png", "predictions.parquet"} <= artifacts
    # the model is an MLflow 3 logged model, the run's output, tagged with the body it started from
    [output] = cell.outputs.model_outputs
    model = tracker.client.get_logged_model(output.model_id)
    assert model.name == "model" and model.source_run_id == cell.info.run_id
    assert model.tags["pretrained_model"] == "pretrained-lstm-m4-hourly"
    row = result.leaderboard.query("mode == 'finetune'").iloc[0]
    assert row["model_uri"] == f"models:/{output.model_id}"
    # its data, as datasets with their contexts and time ranges
    contexts = {t.value: d.dataset.name for d in cell.inputs.dataset_inputs for t in d.tags}
    assert sorted(contexts) == ["test", "training", "validation"]
    assert contexts["test"].startswith("ett/ETTh1:OT test 2018-")
    assert cell.info.run_name == "lstm·finetune·120·s0"
    pretrain = by_kind["pretrain"][0]
    assert len(tracker.client.get_metric_history(pretrain.info.run_id, "loss")) >= 1


def test_experiments_open_in_model_training_mode_new_and_existing(server_run):
    settings, _ = server_run
    tracker = Tracker(settings, "tracking-test")
    assert tracker.client.get_experiment(tracker.experiment_id).tags["mlflow.experimentKind"] == \
        "custom_model_development"
    old = tracker.client.create_experiment("tracking-made-before-the-tag")
    assert "mlflow.experimentKind" not in tracker.client.get_experiment(old).tags
    assert Tracker(settings, "tracking-made-before-the-tag").ensure_store() == old
    tags = tracker.client.get_experiment(old).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    # the saved runs view, in the envelope MLflow's own *Save view* writes (else its Views menu
    # skips it): {name, createdAt, updatedAt, state}, the state a JSON string
    envelope = json.loads(tags["mlflow.sharedViewState.tlbench-modes"])
    assert sorted(envelope) == ["createdAt", "name", "state", "updatedAt"]
    assert envelope["name"] == "tlbench: modes by size (mean over seeds)"
    assert isinstance(envelope["createdAt"], int) and isinstance(envelope["state"], str)
    view = json.loads(envelope["state"])
    assert view["columnWidths"] == {"attributes.`Run Name`": 300}  # whole run names in the list
    # an unchanged view is not rewritten on the next grid run (its createdAt stays)
    Tracker(settings, "tracking-made-before-the-tag").ensure_store()
    again = tracker.client.get_experiment(old).tags["mlflow.sharedViewState.tlbench-modes"]
    assert json.loads(again)["createdAt"] == envelope["createdAt"]
    # a view of an older tlbench (the bare state, no envelope) is replaced by the envelope
    tracker.client.set_experiment_tag(old, "mlflow.sharedViewState.tlbench-modes", envelope["state"])
    Tracker(settings, "tracking-made-before-the-tag").ensure_store()
    assert "name" in json.loads(tracker.client.get_experiment(old).tags["mlflow.sharedViewState.tlbench-modes"])
    assert view["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "target_size"},
                                              {"mode": "tag", "groupByData": "mode"}]
    assert view["searchFilter"] == "tags.`tlbench.kind` = 'cell'" and "metrics.`mase`" in view["selectedColumns"]


def test_grid_run_description_holds_the_verdict(server_run):
    settings, result = server_run
    note = Tracker(settings, "tracking-test").get_run(result.parent_run_id).data.tags["mlflow.note.content"]
    assert "**Verdict**" in note and all(f"- {line}" in note for line in result.verdict)
    assert result.report_url and result.report_url.startswith(settings.tracking_uri + "/#/experiments/")
    assert f"[HTML report]({result.report_url})" in note


def test_pretrained_body_is_registered_and_cells_say_which_version(server_run):
    settings, result = server_run
    tracker = Tracker(settings, "tracking-test")
    name = "pretrained-lstm-m4-hourly"
    current = tracker.client.get_model_version_by_alias(name, "current")
    assert current.tags["pretrain_key"]
    runs = tracker.client.search_runs([tracker.experiment_id], "tags.`tlbench.kind` = 'cell'")
    for run in runs:
        if run.data.tags["mode"] in ("frozen", "finetune"):
            assert run.data.tags["pretrained_model"] == name
            assert run.data.tags["pretrained_version"] == current.version
        else:
            assert "pretrained_version" not in run.data.tags
    rows = result.leaderboard
    finetune = rows[rows["mode"] == "finetune"].iloc[0]
    assert finetune["pretrained_version"] == f"{name}/{current.version}"
    # the body's logged model is linked to its registered version (its page then shows the
    # version, not "Not registered"), and a cell's logged model carries its lineage in its
    # description, which is what the logged model's page shows
    [pretrain] = tracker.client.search_runs([tracker.experiment_id], "tags.`tlbench.kind` = 'pretrain'")
    body = tracker.client.get_logged_model(pretrain.outputs.model_outputs[0].model_id)
    assert current.source == f"models:/{body.model_id}"
    links = json.loads(body.tags["mlflow.modelVersions"])  # the store's own entry, not a second one
    assert [(link["name"], str(link["version"])) for link in links] == [(name, current.version)]
    cell = next(r for r in runs if r.data.tags["mode"] == "finetune")
    model = tracker.client.get_logged_model(cell.outputs.model_outputs[0].model_id)
    note = model.tags["mlflow.note.content"]
    assert note.startswith("**Lineage**") and f"- pretrained_model: `{name}`" in note
    assert f"- pretrained_version: `{current.version}`" in note


def test_pinned_registry_version_is_used_instead_of_pretraining(server_run, tmp_path):
    settings, result = server_run
    tracker = Tracker(settings, "tracking-test")
    version = tracker.client.get_model_version_by_alias("pretrained-lstm-m4-hourly", "current").version
    other = Settings(data_dir=settings.data_dir, results=str(tmp_path / "results"),
                     tracking_uri=settings.tracking_uri, mlflow_dir=tmp_path / "mlflow",
                     experiment="tracking-pinned", allow_download=False).resolved()
    pinned = run_grid(load_grid("smoke", TINY + ["modes=[frozen]", f"transfer.pretrained_version='{version}'"]),
                      other, LocalEngine(1))
    assert pinned.counts() == {"finished": 2}
    pinned_tracker = Tracker(other, "tracking-pinned")
    kinds = [r.data.tags["tlbench.kind"] for r in
             pinned_tracker.client.search_runs([pinned_tracker.experiment_id])]
    assert "pretrain" not in kinds  # nothing was pretrained: the pinned version was fetched
    assert pinned.leaderboard.query("mode == 'frozen'")["pretrained_version"].iloc[0].endswith(f"/{version}")


def test_logged_keras_model_round_trips_with_identical_predictions(server_run):
    import keras
    import mlflow.keras

    settings, _ = server_run
    tracker = Tracker(settings, "tracking-test")
    inputs = keras.Input((24, 1))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.LSTM(4)(inputs)))
    x = np.random.default_rng(0).normal(size=(16, 24, 1)).astype("float32")
    run_id = tracker.start_run("roundtrip", "test", {}, {})
    uri = tracker.log_keras_model(run_id, model, x[:2])
    tracker.end_run(run_id)
    mlflow.set_tracking_uri(settings.tracking_uri)
    loaded = mlflow.keras.load_model(uri)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    pyfunc = mlflow.pyfunc.load_model(uri)
    np.testing.assert_allclose(np.asarray(pyfunc.predict(x)).reshape(-1, 1),
                               model.predict(x, verbose=0), rtol=1e-6)


def together(target, arguments: list[tuple], timeout: float) -> None:
    """Run ``target(*args)`` for every args in ``arguments`` in threads of their own, all at once."""
    threads = [threading.Thread(target=target, args=args) for args in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)


@pytest.mark.parametrize("store", ["server", "sqlite"])
def test_eight_concurrent_cells_lose_nothing(store, mlflow_server, tmp_path):
    from matplotlib.figure import Figure

    uri = mlflow_server if store == "server" else f"sqlite:///{tmp_path / 'load.db'}"
    settings = Settings(tracking_uri=uri, mlflow_dir=tmp_path / "mlflow",
                        artifact_location="" if store == "server" else (tmp_path / "art").as_uri(),
                        results=str(tmp_path / "results")).resolved()
    tracker = Tracker(settings, f"load-{store}")
    tracker.ensure_store()  # once, before the fan-out
    errors, run_ids = [], []

    def cell(i: int) -> None:
        try:
            own = Tracker(settings, f"load-{store}")
            run_id = own.start_run(f"cell-{i}", "cell", {"tlbench.cell_key": f"k{i}"}, {"i": str(i)})
            run_ids.append(run_id)
            for step in range(100):
                own.log_metrics(run_id, {"loss": 1.0 / (step + 1), "val_loss": 2.0 / (step + 1)}, step=step)
            fig = Figure()
            fig.add_subplot().plot(range(10))
            own.log_figure(run_id, fig, "forecast.png")
            own.log_text(run_id, f"cell {i}", "note.txt")
            own.end_run(run_id)
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    together(cell, [(i,) for i in range(8)], timeout=300)
    assert errors == []
    assert len(run_ids) == 8
    for run_id in run_ids:
        run = tracker.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert len(tracker.client.get_metric_history(run_id, "loss")) == 100
        assert len(tracker.client.get_metric_history(run_id, "val_loss")) == 100
        assert {a.path for a in tracker.client.list_artifacts(run_id)} == {"forecast.png", "note.txt"}


def test_cells_logging_the_same_new_dataset_at_once_all_record_it(tmp_path):
    # Cells of one (target, size) log identical datasets. MLflow looks a dataset up and then inserts
    # it in one transaction, so two cells logging it together race: the slower insert broke the
    # unique constraint and failed its cell (seen once in CI's 80-cell load test). Four runs at a
    # time, started together, each round with datasets nobody has logged yet.
    settings = Settings(tracking_uri=f"sqlite:///{tmp_path / 'race.db'}", mlflow_dir=tmp_path / "mlflow",
                        artifact_location=(tmp_path / "art").as_uri(), results=str(tmp_path / "results")).resolved()
    Tracker(settings, "race").ensure_store()
    trackers = [Tracker(settings, "race") for _ in range(4)]
    errors, logged = [], []
    for round_ in range(12):
        data = [DatasetRef(context, f"t round {round_} {context}", str(tmp_path), np.full((8, 4, 1), round_, np.float32),
                           np.full((8, 1), i, np.float32)) for i, context in enumerate(("training", "validation", "test"))]
        runs = [t.start_run(f"cell-{round_}-{i}", "cell", {}, {}) for i, t in enumerate(trackers)]
        start = threading.Barrier(len(trackers))

        def log(tracker, run_id):
            start.wait()
            try:
                tracker.log_datasets(run_id, data)
                logged.append(run_id)
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

        together(log, list(zip(trackers, runs)), timeout=60)
    assert errors == []
    assert len(logged) == 48
    tracker = trackers[0]
    for run_id in logged:
        inputs = tracker.get_run(run_id).inputs.dataset_inputs
        assert sorted(i.dataset.name.rsplit(" ", 1)[1] for i in inputs) == ["test", "training", "validation"]
    # the four runs of a round name the same three datasets, with the same digests
    seen = {(i.dataset.name, i.dataset.digest) for run_id in logged for i in tracker.get_run(run_id).inputs.dataset_inputs}
    assert len(seen) == 36


def test_failed_cell_ends_failed_with_its_error_and_stale_runs_are_closed(server_run, tmp_path):
    settings, _ = server_run
    other = Settings(data_dir=settings.data_dir, results=str(tmp_path / "results"),
                     tracking_uri=settings.tracking_uri, mlflow_dir=tmp_path / "mlflow",
                     experiment="tracking-failures", allow_download=False).resolved()
    spec = load_grid("smoke", TINY + ["modes=[scratch]", "training.time_limit_s=0.000001"])
    from benchmark.data.loading import check_targets
    from benchmark.data.sources import source_label
    from benchmark.run.jobs import cell_key, expand

    fingerprints = check_targets(spec, other)
    key = cell_key(expand(spec)[0], fingerprints[source_label(spec.targets[0])])
    tracker = Tracker(other, "tracking-failures")
    # what a process killed mid-cell leaves behind: a RUNNING run for the cell
    stale = tracker.start_run("crashed", "cell", {"tlbench.cell_key": key}, {})

    result = run_grid(spec, other, LocalEngine(1))
    assert [o.status for o in result.outcomes if o.cell_key == key] == ["failed"]
    runs = tracker.runs_for_cell(key)
    statuses = {r.info.run_id: r.info.status for r in runs}
    assert statuses[stale] == "KILLED"
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert len(failed) == 1 and "time limit" in failed[0].data.tags["tlbench.error"]
    assert "RUNNING" not in statuses.values()
    parent = tracker.get_run(result.parent_run_id)
    assert parent.info.status == "FAILED"
    from benchmark.results.leaderboard import Leaderboard

    board = Leaderboard(other.results)
    assert key not in board.finished_keys()
    assert key in set(board.failures()["cell_key"])
