"""Evaluation protocols as data: how a target is cut, scaled, windowed, trained and scored.

A :class:`Protocol` names one whole procedure (``split.protocol``, or the grid axis
``protocols: [tlbench, notebook]``). It is part of the cell key, every leaderboard row (column
``protocol``), every MLflow run (tag) and the report's variants (``lstm · notebook``). Each
aspect is applied in the one place that owns it; this module holds only the data and
:func:`apply_protocol`, which pins a cell's training and model fields at expansion:

=================  ===========================================================================
aspect             applied in
=================  ===========================================================================
``cut``            :func:`benchmark.data.splits.split_target` (:data:`~benchmark.data.splits.CUTS`)
``scaler_fit``     :func:`benchmark.data.splits.make_cell_data` (which rows the series scaler sees)
``lags``           :func:`benchmark.data.splits.make_cell_data` (time order of the input windows)
``training``       :func:`apply_protocol` -> ``TrainingSpec`` (batch, patience, ``monitor``), read by
                   :func:`benchmark.models.training.fit`'s early stopping
``model``          :func:`apply_protocol` -> ``ModelSpec`` (the ``notebook``'s min-max scaling)
``transfer_head``  :func:`apply_protocol` -> the head of the modes that load a pretrained body
``scales``         :func:`benchmark.data.splits.scale_metrics` (``mse_z``/``mae_z`` besides the
                   original-scale metrics), called by the cell and the baselines
=================  ===========================================================================

Two scalers, never one: the **metric scale** (``scales``/``z_reference``: the z-score of the
protocol's reference rows, fitted on the original series by :func:`~benchmark.data.splits.scale_metrics`)
and the **model's input normalisation** (``model.normalisation``, the grid's choice or axis: its
series scaler fitted on the ``scaler_fit`` rows, its window stage inside the model). Forecasts come
back to the original scale before any metric, so ``mse_z``/``mae_z`` never depend on the model's
normalisation. ``ett_standard`` pins the cut, the metric scale and the direct forecast; it leaves
the normalisation to the grid (the papers fix the metric scale; their strong models still normalise
each input window inside the model).

The boundaries of the fixed ETT split are spelled once here (:data:`ETT_HOURS_PER_MONTH`,
:data:`ETT_MONTHS`), never inline.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from benchmark.spec.catalog import TRANSFER_MODES  # the facts only: no TensorFlow at planning time
from benchmark.spec.registry import Registry
from benchmark.spec.tree import CellSpec

#: Months of the long-horizon ETT protocol are 30 days (Zhou et al., 2021, and every paper after).
ETT_HOURS_PER_MONTH = 30 * 24
#: ``(training, validation, test)`` months of the fixed ETT split.
ETT_MONTHS = (12, 4, 4)


def ett_boundaries(hours_per_month: int = ETT_HOURS_PER_MONTH) -> tuple[int, int, int]:
    """``(train_end, val_end, test_end)`` row positions of the fixed 12/4/4-month ETT split:
    ``(8640, 11520, 14400)`` for the hourly files."""
    train, val, test = (months * hours_per_month for months in ETT_MONTHS)
    return train, train + val, train + val + test


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol, with one line of ``description`` (``tlbench protocols``).

    ``cut``: a name in :data:`benchmark.data.splits.CUTS` with its ``cut_options``.
    ``scaler_fit``: the rows the series scaler is fitted on (``training``: the training part;
    ``whole_series``: every row of the target, test included). ``lags``: ``oldest_first`` (the
    window in time order) or ``newest_first`` (reversed: the most recent lag first).
    ``training`` / ``model``: ``TrainingSpec`` / ``ModelSpec`` fields the protocol pins (a
    protocol that does not pin ``normalisation`` leaves it to the grid's ``model.normalisation``
    or ``normalisations`` axis).
    ``forecast``: the ``split.forecast`` the protocol requires (None: the grid's).
    ``transfer_head``: the head of the modes that load a pretrained body (None: the grid's).
    ``scales``: ``original`` always; ``z`` adds ``mse_z``/``mae_z`` on the z-score fitted on
    ``z_reference`` (a name in :data:`benchmark.data.splits.SCALER_RANGES`).
    ``holds_out_validation``: the validation part is cut from the target size (tlbench) rather
    than lying outside it (ett_standard) or being absent (notebook). ``max_target_size``: the
    largest target size the cut allows. ``test_segment``: protocols with the same one score the
    same test targets and may share a grid. ``flaws``: what a faithful rerun keeps on purpose.
    ``metric``: the metric a grid under this protocol is ranked and judged by (its verdicts, the
    report, ``tlbench leaderboard``; :func:`benchmark.results.ranking.ranking_metric`): ``mase`` by
    default, ``mse_z`` where the protocol's literature reports it (``ett_standard``).
    """

    name: str
    description: str
    cut: str
    cut_options: Mapping[str, Any] = field(default_factory=dict)
    scaler_fit: str = "training"
    lags: str = "oldest_first"
    training: Mapping[str, Any] = field(default_factory=dict)
    model: Mapping[str, Any] = field(default_factory=dict)
    transfer_head: str | None = None
    forecast: str | None = None
    scales: tuple[str, ...] = ("original",)
    z_reference: str = "training"
    holds_out_validation: bool = True
    max_target_size: int | None = None
    test_segment: str = "tail"
    flaws: tuple[str, ...] = ()
    metric: str = "mase"

    def training_points(self, target_size: int, val_fraction: float) -> int:
        """Points of the training part for ``target_size`` (before windowing)."""
        return int(target_size * (1 - val_fraction)) if self.holds_out_validation else int(target_size)


DEFAULT_PROTOCOL = "tlbench"

PROTOCOLS: Registry[Protocol] = Registry("protocol")

_TRAIN_END, _VAL_END, _TEST_END = ett_boundaries()

for _protocol in (
    Protocol("tlbench", "tlbench's fair protocol: a fixed test segment at the end, the last "
             "target_size points before it (the last val_fraction held out for early stopping on "
             "validation loss), scaler fitted on the training part, windows in time order",
             cut="tail"),
    Protocol("notebook", "the seed notebook's own procedure, flaws included (see its flaws): "
             "min-max scaler on the whole column, lags most recent first, early stopping on the "
             "training loss (patience 1, batch 128), a fresh LSTM head on the transfer models only",
             cut="tail", cut_options={"validation": False}, scaler_fit="whole_series",
             lags="newest_first", training={"batch_size": 128, "patience": 1, "monitor": "loss"},
             model={"normalisation": "minmax"}, transfer_head="recurrent",
             holds_out_validation=False,
             flaws=("the min-max scaler is fitted on the whole target column, test part included, "
                    "before the split (test values reach the scaler)",
                    "the lag columns are ordered most recent first, so the LSTM reads each window "
                    "backwards in time",
                    "early stopping monitors the training loss (patience 1): no held-out data, "
                    "every history point is a training point",
                    "batch size 128",
                    "the transfer models get a fresh LSTM(64) head on the pretrained stack, the "
                    "scratch model only a Dense output: unequal capacity")),
    Protocol("ett_standard", "the long-horizon literature's univariate ETT protocol: fixed "
             f"12/4/4-month split (train [0, {_TRAIN_END}), validation [{_TRAIN_END}, {_VAL_END}), "
             f"test [{_VAL_END}, {_TEST_END})), lookback from the preceding part, direct forecasts "
             "from every test origin; MSE/MAE also on the z-scale of the training rows "
             f"[0, {_TRAIN_END}) (the metric scale only: the model's normalisation is the grid's)",
             cut="fixed", cut_options={"train_end": _TRAIN_END, "val_end": _VAL_END,
                                       "test_end": _TEST_END},
             forecast="direct", scales=("original", "z"),
             z_reference="before_validation", holds_out_validation=False,
             max_target_size=_TRAIN_END, test_segment="ett_months", metric="mse_z"),
):
    PROTOCOLS.add(_protocol.name, _protocol)


def apply_protocol(cell: CellSpec) -> CellSpec:
    """``cell`` with the training, model and forecast fields its protocol (``cell.split.protocol``)
    pins, and the protocol's transfer head on a mode that loads a pretrained body but not its head.
    The cell spec then says what really ran (its key, MLflow params and row follow from it)."""
    protocol = PROTOCOLS.get(cell.split.protocol)
    model = replace(cell.model, **protocol.model)
    mode = TRANSFER_MODES.get(cell.mode)
    if protocol.transfer_head and mode.load_body and not mode.load_head:
        model = replace(model, head=protocol.transfer_head)
    split = replace(cell.split, forecast=protocol.forecast) if protocol.forecast else cell.split
    return replace(cell, training=replace(cell.training, **protocol.training), model=model, split=split)
