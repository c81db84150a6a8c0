"""In which order a grid hands its cells to the engine: longest first.

With ``K`` slots and cells of very different lengths, first-in-first-out can leave one long cell
starting last and ``K - 1`` slots idle while it trains alone at the end. Handing the longest cells
out first (the LPT rule) bounds the idle tail by the shortest cells instead. Nothing here is
measured at run time: :func:`cell_cost` is an estimate from the spec alone, good for ordering,
not for predicting seconds.

Formula (relative units; docs/orchestration.md, *Dispatch*)::

    cost = points * epochs * lookback * layers * units**2 * ARCHITECTURE_WEIGHT * MODE_WEIGHT

* ``points``: ``target_size`` (the training windows grow with it); a full series (``None``)
  counts as :data:`FULL_SERIES_POINTS`.
* ``epochs``: the cap training runs under (early stopping ends most cells sooner, alike across a
  grid): ``max_epochs``, raised by ``training.min_steps`` where the target's training windows
  (:func:`training_windows`) make fewer steps than that in ``max_epochs``
  (:meth:`~benchmark.spec.sections.TrainingSpec.budget_epochs`, the training loop's own budget),
  so a small target with a high ``min_steps`` is not scheduled as cheap.
* ``lookback * layers * units**2``: the recurrent work per window (each step multiplies a
  ``units x units`` state per gate and layer).
* ``ARCHITECTURE_WEIGHT``: gates per step relative to an LSTM (GRU 3/4); ``stacked_lstm`` adds a
  layer of its own; ``conv1d_lstm`` a convolution in front.
* ``MODE_WEIGHT``: ``frozen`` skips the body's gradients (about 0.6 of a full fit), ``partial``
  some of them, ``zeroshot`` only predicts.
"""

from __future__ import annotations

from typing import Sequence, TypeVar

from benchmark.data.protocols import PROTOCOLS
from benchmark.data.windows import FORECASTS
from benchmark.spec.catalog import REGIMES
from benchmark.spec.tree import CellSpec

J = TypeVar("J")

FULL_SERIES_POINTS = 20_000
ARCHITECTURE_WEIGHT = {"lstm": 1.0, "gru": 0.75, "stacked_lstm": 1.5, "conv1d_lstm": 1.1}
MODE_WEIGHT = {"scratch": 1.0, "finetune": 1.0, "lp_ft": 1.0, "partial": 0.8, "frozen": 0.6,
               "zeroshot": 0.02}


def training_windows(cell: CellSpec) -> tuple[int, int]:
    """``(training samples, batch size)`` of one epoch, from the spec: the windows of the training
    part (``split.protocol``'s), or the stateful regime's non-overlapping chunks at batch 1."""
    points = cell.target_size if cell.target_size is not None else FULL_SERIES_POINTS
    train = PROTOCOLS.get(cell.split.protocol).training_points(points, cell.split.val_fraction)
    if REGIMES.get(cell.regime).stateful:
        return max(1, (train - cell.split.horizon) // cell.split.lookback), 1
    horizon = FORECASTS.get(cell.split.forecast).model_horizon(cell.split.horizon)
    return max(1, train - cell.split.lookback - horizon + 1), cell.training.batch_size


def cell_cost(cell: CellSpec) -> float:
    """The estimated relative compute of one cell (see the module's formula)."""
    points = cell.target_size if cell.target_size is not None else FULL_SERIES_POINTS
    layers = cell.model.layers or 1
    epochs = cell.training.budget_epochs(*training_windows(cell))
    return (float(points) * epochs * cell.split.lookback * layers * cell.model.units ** 2
            * ARCHITECTURE_WEIGHT.get(cell.model.architecture, 1.0) * MODE_WEIGHT.get(cell.mode, 1.0))


def longest_first(jobs: Sequence[J]) -> list[J]:
    """``jobs`` (anything with a ``.cell``) sorted by :func:`cell_cost`, largest first; equal
    costs keep their order (a stable sort), so a grid's dispatch order is reproducible."""
    return sorted(jobs, key=lambda job: -cell_cost(job.cell))
