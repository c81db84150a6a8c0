"""Protocols as data: the fixed ETT split on the real ETTh1 file, and every flaw of the notebook
protocol really present (so a rerun is faithful), plus the protocol axis of a grid."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from benchmark.data.protocols import PROTOCOLS, apply_protocol, ett_boundaries
from benchmark.data.sources import load_source
from benchmark.data.splits import make_cell_data, scale_metrics, split_target
from benchmark.spec.convert import from_dict
from benchmark.spec.errors import DataError, SpecError, UnknownNameError
from benchmark.spec.sections import DataSpec, ModelSpec, PretrainSpec, SplitSpec, TrainingSpec, TransferSpec
from benchmark.spec.tree import CellSpec, GridSpec

ETT = SplitSpec(protocol="ett_standard", lookback=96, horizon=24)


@pytest.fixture(scope="module")
def etth1(data_dir) -> pd.DataFrame:
    return load_source(DataSpec("ett", {"file": "ETTh1", "column": "OT"}), data_dir, False)


def position_frame(n: int) -> pd.DataFrame:
    """A series whose value is its position: every window tells where it came from."""
    return pd.DataFrame({"unique_id": "s", "ds": pd.date_range("2021-01-01", periods=n, freq="h"),
                         "y": np.arange(n, dtype=np.float64)})


# --------------------------------------------------------------------------- ett_standard


def test_ett_boundaries_are_twelve_four_four_months_of_thirty_days():
    assert ett_boundaries() == (8640, 11520, 14400)


def test_ett_standard_boundaries_on_the_real_etth1_file(etth1):
    data = make_cell_data(etth1, 8640, ETT, "ett/ETTh1:OT", normalisation="global")
    cut = data.split
    assert (cut.history_start, cut.val_start, cut.test_start, cut.end) == (0, 8640, 11520, 14400)
    values, ds = etth1["y"].to_numpy(), etth1["ds"].to_numpy()
    unscale = data.scaler.inverse_transform

    expected = {  # (first target row, timestamp), (last target row, timestamp)
        "train": ((96, "2016-07-05 00:00"), (8639, "2017-06-25 23:00")),
        "val": ((8640, "2017-06-26 00:00"), (11519, "2017-10-23 23:00")),
        "test": ((11520, "2017-10-24 00:00"), (14399, "2018-02-20 23:00")),
    }
    found = {"train": (float(unscale(data.y_train[0, 0])), float(unscale(data.y_train[-1, -1]))),
             "val": (float(unscale(data.y_val[0, 0])), float(unscale(data.y_val[-1, -1])))}
    for part, (first_value, last_value) in found.items():
        (first, first_ts), (last, last_ts) = expected[part]
        assert math.isclose(first_value, values[first], abs_tol=1e-4)
        assert math.isclose(last_value, values[last], abs_tol=1e-4)
        assert (pd.Timestamp(ds[first]), pd.Timestamp(ds[last])) == (pd.Timestamp(first_ts), pd.Timestamp(last_ts))
    (first, first_ts), (last, last_ts) = expected["test"]
    assert data.y_test_true[0, 0] == values[first] and data.y_test_true[-1, -1] == values[last]
    assert (data.test_ds[0, 0], data.test_ds[-1, -1]) == (pd.Timestamp(first_ts), pd.Timestamp(last_ts))
    # every origin, stride 1: 2880 - 24 + 1 windows; the lookback comes from the part before
    assert len(data.x_test) == 2880 - 24 + 1 and len(data.x_val) == 2880 - 24 + 1
    assert len(data.x_train) == 8640 - 96 - 24 + 1
    np.testing.assert_allclose(unscale(data.x_val[0, :, 0]), values[8640 - 96:8640], atol=1e-4)
    np.testing.assert_allclose(unscale(data.x_test[0, :, 0]), values[11520 - 96:11520], atol=1e-4)
    # z-score on the training part only
    assert data.scaler.mean == pytest.approx(values[:8640].mean())
    assert data.scaler.std == pytest.approx(values[:8640].std())


def test_no_test_or_later_value_reaches_the_scaler_or_training(etth1):
    clean = make_cell_data(etth1, 8640, ETT, "e", normalisation="global")
    poisoned = etth1.copy()
    poisoned.loc[11520:, "y"] = 1e6  # the test part and everything after it
    dirty = make_cell_data(poisoned, 8640, ETT, "e", normalisation="global")
    assert (dirty.scaler.mean, dirty.scaler.std) == (clean.scaler.mean, clean.scaler.std)
    for name in ("x_train", "y_train", "x_val", "y_val"):
        np.testing.assert_array_equal(getattr(dirty, name), getattr(clean, name))
    assert dirty.y_test_true.max() == 1e6  # the poison is really in the test targets
    later = etth1.copy()
    later.loc[14400:, "y"] = 1e6  # rows after the test part: never used at all
    unused = make_cell_data(later, 8640, ETT, "e", normalisation="global")
    np.testing.assert_array_equal(unused.y_test_true, clean.y_test_true)


def test_target_size_is_the_training_parts_last_hours(etth1):
    data = make_cell_data(etth1, 720, ETT, "e", normalisation="global")
    values = etth1["y"].to_numpy()
    assert (data.split.history_start, data.split.val_start) == (7920, 8640)
    assert data.scaler.mean == pytest.approx(values[7920:8640].mean())
    assert len(data.x_test) == 2880 - 24 + 1  # the same test targets for every size


def test_z_scale_metrics_use_the_whole_training_part(etth1):
    values = etth1["y"].to_numpy()
    cut = split_target(len(values), 720, ETT, "e")
    truth = values[11520:11530].reshape(2, 5)
    guess = truth + 0.5
    z = scale_metrics(ETT, cut, values, truth, guess)
    std = values[:8640].std()
    assert z["mse_z"] == pytest.approx(0.25 / std ** 2) and z["mae_z"] == pytest.approx(0.5 / std)
    assert scale_metrics(SplitSpec(), cut, values, truth, guess) == {}  # tlbench: original scale only


@pytest.mark.parametrize("n_total, size, message", [
    (17420, 8641, "larger than the fixed training part"),
    (14000, 720, "needs at least 14400"),
    (17420, 100, "too small for lookback 96"),
])
def test_ett_standard_refuses_what_does_not_fit(n_total, size, message):
    with pytest.raises(DataError, match=message):
        split_target(n_total, size, ETT, "ett/x:OT")


# --------------------------------------------------------------------------- notebook

NOTEBOOK = SplitSpec(protocol="notebook", lookback=4, horizon=1, test_size=20)


def notebook_cell(mode: str) -> CellSpec:
    return apply_protocol(CellSpec(grid="g", target=DataSpec(), target_size=60, mode=mode, seed=0,
                                   split=NOTEBOOK, model=ModelSpec(), training=TrainingSpec(),
                                   transfer=TransferSpec(), pretrain=PretrainSpec()))


def test_notebook_scaler_is_fitted_on_the_whole_column_test_included(etth1):
    split = replace(NOTEBOOK, lookback=24, test_size=240)
    data = make_cell_data(etth1, 2160, split, "e", normalisation="minmax")
    column = etth1["y"].to_numpy()
    assert data.scaler.mean == column.min() and data.scaler.std == column.max() - column.min()
    poisoned = etth1.copy()
    poisoned.loc[len(etth1) - 1, "y"] = 1e6  # one test value moves the scaler: the flaw
    assert make_cell_data(poisoned, 2160, split, "e", normalisation="minmax").scaler.std != data.scaler.std


def test_notebook_lags_are_most_recent_first():
    data = make_cell_data(position_frame(100), 60, NOTEBOOK, "s", normalisation="minmax")
    first = data.scaler.inverse_transform(data.x_train[0, :, 0])  # targets start at 24: inputs 20..23
    np.testing.assert_allclose(first, [23, 22, 21, 20], atol=1e-4)
    last_test = data.scaler.inverse_transform(data.x_test[-1, :, 0])
    np.testing.assert_allclose(last_test, [98, 97, 96, 95], atol=1e-4)
    fair = make_cell_data(position_frame(100), 60, replace(NOTEBOOK, protocol="tlbench"), "s")
    np.testing.assert_allclose(fair.scaler.inverse_transform(fair.x_train[0, :, 0]), [20, 21, 22, 23],
                               atol=1e-4)


def test_notebook_trains_on_the_whole_history_without_validation():
    data = make_cell_data(position_frame(100), 60, NOTEBOOK, "s", normalisation="minmax")
    assert data.split.val_start == data.split.test_start == 80
    assert len(data.x_val) == 0 and len(data.x_train) == 60 - 4  # every history target trains
    assert data.scaler.inverse_transform(data.y_train[-1, 0]) == pytest.approx(79)


def test_notebook_pins_training_scaling_and_a_transfer_only_recurrent_head():
    scratch, frozen, finetune = (notebook_cell(m) for m in ("scratch", "frozen", "finetune"))
    for cell in (scratch, frozen, finetune):
        assert (cell.training.monitor, cell.training.patience, cell.training.batch_size) == ("loss", 1, 128)
        assert cell.model.normalisation == "minmax"
    assert scratch.model.head == "dense"
    assert frozen.model.head == finetune.model.head == "recurrent"
    fair = apply_protocol(replace(scratch, split=replace(NOTEBOOK, protocol="tlbench"),
                                  training=TrainingSpec(), model=ModelSpec()))
    assert (fair.training, fair.model) == (TrainingSpec(), ModelSpec())  # tlbench pins nothing


def test_notebook_transfer_model_has_more_capacity_than_scratch():
    from benchmark.models import build_model, param_counts

    scratch, finetune = notebook_cell("scratch"), notebook_cell("finetune")
    small = build_model(scratch.model, 24, 1, 1)
    large = build_model(finetune.model, 24, 1, 1)
    assert "head_lstm" in [layer.name for layer in large.layers]
    assert "head_lstm" not in [layer.name for layer in small.layers]
    assert param_counts(large)["total"] - param_counts(small)["total"] == 33_089 - 65  # docs/models.md


class _FakeModel:
    stop_training = False

    def get_weights(self):
        return []


@pytest.mark.parametrize("monitor, stops, best", [("loss", False, 2), ("val_loss", True, 1)])
def test_early_stopping_watches_the_monitored_loss(monitor, stops, best):
    from benchmark.models.training import _EpochMonitor, _Run

    run = _Run(TrainingSpec(patience=1, monitor=monitor), None)
    callback = _EpochMonitor(run, 0)
    callback.set_model(_FakeModel())
    callback.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.0})
    callback.on_epoch_end(1, {"loss": 0.5, "val_loss": 2.0})  # training better, validation worse
    assert callback.stopped is stops and run.result.best_epoch == best


def test_training_loss_monitor_runs_without_validation_windows():
    from benchmark.models.training import fit

    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((4, 1)), keras.layers.Dense(1), keras.layers.Flatten(),
                              keras.layers.Dense(1)])
    x, y = np.ones((8, 4, 1), np.float32), np.ones((8, 1), np.float32)
    empty = (np.zeros((0, 4, 1), np.float32), np.zeros((0, 1), np.float32))
    result = fit(model, (x, y), empty, TrainingSpec(max_epochs=2, monitor="loss", patience=1))
    assert result.epochs_run >= 1 and math.isnan(result.history["val_loss"][0])
    with pytest.raises(Exception, match="early stopping needs validation windows"):
        fit(model, (x, y), empty, TrainingSpec(max_epochs=1))


# --------------------------------------------------------------------------- the grid axis


def test_protocol_axis_expands_into_variants_with_pinned_fields():
    from benchmark.run.jobs import expand
    from benchmark.run.validation import grid_problems

    spec = from_dict(GridSpec, {"protocols": ["tlbench", "notebook"], "target_sizes": [240],
                                "modes": ["scratch", "finetune"]})
    assert grid_problems(spec) == []
    cells = expand(spec)
    labels = {(c.split.protocol, c.mode): " · ".join(c.variant_parts) for c in cells}
    assert labels == {("tlbench", "scratch"): "", ("tlbench", "finetune"): "",
                      ("notebook", "scratch"): "notebook · minmax",
                      ("notebook", "finetune"): "notebook · minmax"}
    assert len({c.split.protocol for c in cells}) == 2


@pytest.mark.parametrize("data, message", [
    ({"protocols": ["tlbench", "notebok"]}, "Unknown protocol 'notebok'. Known: ett_standard, notebook, tlbench."),
    ({"protocols": ["tlbench", "ett_standard"]}, "score different test segments"),
    ({"split": {"protocol": "ett_standard"}, "target_sizes": [9000]}, "larger than protocol 'ett_standard' allows"),
    ({"protocols": ["notebook"], "forecasts": ["recursive"]}, "newest first"),
    ({"training": {"monitor": "val_mae"}}, "monitor: 'val_mae' is unknown"),
    ({"split": {"protocol": "ett_standard"}, "forecasts": ["direct", "recursive"]},
     "grid.forecasts: protocol ett_standard pins forecast 'direct', so 'recursive' would run as 'direct'"),
    ({"split": {"protocol": "ett_standard", "forecast": "recursive"}},
     "grid.split.forecast: protocol ett_standard pins forecast 'direct'"),
    ({"protocols": ["notebook"], "normalisations": ["window", "minmax", "global"]},
     "grid.normalisations: protocol notebook pins normalisation 'minmax', so 'window', 'global' would run"),
])
def test_bad_protocol_input_is_refused_before_training(data, message):
    from benchmark.run.validation import validate_grid

    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_grid(from_dict(GridSpec, data))


def test_every_protocol_names_registered_parts():
    from benchmark.data.splits import CUTS, LAG_ORDERS, SCALER_RANGES

    for name in PROTOCOLS:
        protocol = PROTOCOLS.get(name)
        assert protocol.cut in CUTS and protocol.lags in LAG_ORDERS
        assert protocol.scaler_fit in SCALER_RANGES and protocol.z_reference in SCALER_RANGES
        assert protocol.description
    with pytest.raises(UnknownNameError, match="Known: ett_standard, notebook, tlbench"):
        PROTOCOLS.get("papers")


def test_cli_lists_every_protocol_with_the_notebooks_flaws(capsys):
    from benchmark.cli import main

    assert main(["protocols"]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")] == \
        ["ett_standard", "notebook", "tlbench"]
    assert out.count("    flaw: ") == len(PROTOCOLS.get("notebook").flaws) == 5
    assert "[11520, 14400)" in out


def test_shipped_protocol_profiles_validate(settings):
    from benchmark.run.plan import plan_grid
    from benchmark.spec.profiles import load_grid

    notebook = plan_grid(load_grid("notebook"), settings)
    assert {c.split.protocol for c in notebook.cells} == {"notebook", "tlbench"}
    assert len(notebook.cells) == 2 * 3 * 3  # protocols x modes x seeds
    for name, horizon in (("ett-standard", 24), ("ett-standard-h96", 96)):
        plan = plan_grid(load_grid(name), settings)
        assert {(c.split.protocol, c.split.horizon, c.split.forecast) for c in plan.cells} == \
            {("ett_standard", horizon, "direct")}
        # the variants: every normalisation at lookback 96 (scratch), lookback 336, and transfer
        assert {c.model.normalisation for c in plan.cells} == {"last_value", "window", "global"}
        assert {c.split.lookback for c in plan.cells} == {96, 336}
        assert all(c.training.min_steps > 0 for c in plan.cells)
        sizes = (720, 8640)
        scratch = [c for c in plan.cells if c.mode == "scratch" and c.architecture == "lstm"
                   and c.target_size in sizes]
        assert len(scratch) == 2 * 2 * 3 * 3 + 2 * 2 * 3  # targets x sizes x (3 normalisations + L336) x seeds
        # the linear references: scratch at both lookbacks under last_value; at H=24 also from their bodies
        linear = [c for c in plan.cells if c.architecture in ("nlinear", "dlinear")]
        assert {c.model.normalisation for c in linear} == {"last_value"}
        assert len([c for c in linear if c.mode == "scratch"]) == 2 * 2 * 2 * 2 * 3
        # the lstm's transfer cells and their body under `window`, at lookback 96
        assert {(c.split.lookback, c.model.normalisation) for c in plan.cells
                if c.mode != "scratch" and c.architecture == "lstm"} == {(96, "window")}
    curve = plan_grid(load_grid("ett-standard"), settings)
    transfer = {(c.target_size, c.mode) for c in curve.cells if c.architecture == "lstm" and c.model.normalisation == "window"}
    assert {size for size, _ in transfer} == {240, 720, 2160, 8640}  # the transfer curve's four sizes
    assert {mode for _, mode in transfer} == {"scratch", "ft_from_head", "lp_ft", "zeroshot", "finetune"}


# --------------------------------------------------------------------------- the metric scale is the protocol's


def test_ett_standard_leaves_the_normalisation_to_the_grid():
    from benchmark.models import build_model
    from benchmark.run.jobs import expand

    spec = from_dict(GridSpec, {"split": {"protocol": "ett_standard", "lookback": 96, "horizon": 24},
                                "normalisations": ["last_value", "global"], "target_sizes": [720],
                                "modes": ["scratch", "finetune"], "seeds": [0, 1]})
    cells = expand(spec)
    by_cell: dict[tuple, set[str]] = {}
    for c in cells:
        by_cell.setdefault((c.target_size, c.architecture, c.mode, c.seed), set()).add(c.model.normalisation)
    assert len(cells) == 8 and set(map(frozenset, by_cell.values())) == {frozenset({"last_value", "global"})}
    assert "normalisation" not in PROTOCOLS.get("ett_standard").model
    layers = {c.model.normalisation: [layer.name for layer in build_model(c.model, 96, 1, 24).layers]
              for c in cells}
    assert "norm_window" in layers["last_value"] and "norm_window" not in layers["global"]


def test_mse_z_is_the_protocols_scale_whatever_the_normalisation(etth1):
    from benchmark.forecasters.metrics import compute_metrics

    values = etth1["y"].to_numpy()
    scored = {}
    for normalisation in ("last_value", "window", "global", "minmax"):
        data = make_cell_data(etth1, 720, ETT, "e", normalisation=normalisation)
        guess = data.y_test_true + np.sin(np.arange(data.y_test_true.size)).reshape(data.y_test_true.shape)
        z = scale_metrics(ETT, data.split, data.values, data.y_test_true, guess)
        mse = compute_metrics(data.y_test_true, guess, data.insample, 24)["mse"]
        assert z["mse_z"] == pytest.approx(mse / values[:8640].var(), rel=1e-9)
        scored[normalisation] = z
    assert len({tuple(z.values()) for z in scored.values()}) == 1  # identical under every normalisation
    # the model's series scaler is another matter: fitted on the cell's own 720 training rows
    assert make_cell_data(etth1, 720, ETT, "e", normalisation="global").scaler.std != \
        pytest.approx(values[:8640].std())
