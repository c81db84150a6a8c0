"""The typed spec tree: :class:`GridSpec` (a whole benchmark) and :class:`CellSpec` (one trained
model), frozen and assembled from the sections in :mod:`benchmark.spec.sections`.

Specs are built from YAML (:mod:`benchmark.spec.profiles`), converted and checked at that edge.
A spec's identity is :func:`benchmark.spec.identity.spec_hash` of its plain form.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from benchmark.spec.axes import DEFAULT_REGIME, VARIANT_AXES, feature_label, is_variant_default, variant_label
from benchmark.spec.convert import from_dict
from benchmark.spec.identity import KEY_NEUTRAL_DEFAULT, plain_as
from benchmark.spec.sections import DataSpec, ModelSpec, PretrainSpec, SplitSpec, TrainingSpec, TransferSpec


@dataclass(frozen=True)
class GridSpec:
    """A whole benchmark: targets x target sizes x architectures x regimes x feature sets x modes
    x seeds (the axes: :data:`benchmark.spec.axes.AXES`).

    ``regimes``: registered training regimes (``stateless``: shuffled sliding windows;
    ``stateful``: the series in order, state carried across chunks; see ``benchmark.models.training``).
    ``feature_sets``: each a list of registered input features besides the target itself
    (``rolling_mean:24``, ``hour_of_day``, ``day_of_week``, ``covariate:HUFL``; see
    ``benchmark.data.features``); the empty set ``[]`` is the target alone.
    ``lookbacks``, ``normalisations``, ``forecasts``, ``protocols``: optional axes over
    ``split.lookback``, ``model.normalisation``, ``split.forecast`` and ``split.protocol`` (empty:
    the single value in those specs).
    """

    name: str = "smoke"
    targets: tuple[DataSpec, ...] = (DataSpec("ett", {"file": "ETTh1", "column": "OT"}),)
    target_sizes: tuple[int, ...] = (240, 960)
    architectures: tuple[str, ...] = ("lstm",)
    modes: tuple[str, ...] = ("scratch", "frozen", "finetune")
    seeds: tuple[int, ...] = (0,)
    regimes: tuple[str, ...] = (DEFAULT_REGIME,)
    feature_sets: tuple[tuple[str, ...], ...] = ((),)
    lookbacks: tuple[int, ...] = ()  # () : split.lookback alone
    normalisations: tuple[str, ...] = ()  # () : model.normalisation alone
    forecasts: tuple[str, ...] = ()  # () : split.forecast alone
    protocols: tuple[str, ...] = ()  # () : split.protocol alone (benchmark.data.protocols)
    baselines: tuple[str, ...] = ("naive", "seasonal_naive", "naive2", "mean")
    # sub-grids instead of the whole cross product: each a mapping of SUBGRID_AXES fields whose values
    # are among the grid's own; the cells are the union of the sub-grids (empty: the whole cross).
    # Named `variants` until the grid axes table: its plain form keeps that name, so grid ids (the
    # hash of the grid spec) and the grid run's MLflow params stay as they were.
    subgrids: tuple[Mapping[str, Any], ...] = field(default=(),
                                                    metadata=plain_as("variants", KEY_NEUTRAL_DEFAULT))
    split: SplitSpec = field(default_factory=SplitSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    transfer: TransferSpec = field(default_factory=TransferSpec)
    pretrain: PretrainSpec = field(default_factory=PretrainSpec)


def subgrid_specs(spec: GridSpec) -> list[GridSpec]:
    """``spec``'s sub-grids: one per ``subgrids`` entry (its axes replaced), or ``[spec]``."""
    if not spec.subgrids:
        return [spec]
    out = []
    for index, subgrid in enumerate(spec.subgrids):
        typed = from_dict(GridSpec, dict(subgrid), f"grid.subgrids[{index}]")
        out.append(dataclasses.replace(spec, subgrids=(), **{k: getattr(typed, k) for k in subgrid}))
    return out


@dataclass(frozen=True)
class CellSpec:
    """One trained model: everything that determines its result (its key is its identity)."""

    grid: str
    target: DataSpec
    target_size: int
    mode: str
    seed: int
    split: SplitSpec
    model: ModelSpec
    training: TrainingSpec
    transfer: TransferSpec
    pretrain: PretrainSpec
    regime: str = DEFAULT_REGIME
    features: tuple[str, ...] = ()  # input features besides the target (always input 0)
    pretrain_seed: int = 0  # the pretrained body's seed (pretrain.seeds[i mod n] for seeds[i])

    @property
    def architecture(self) -> str:
        return self.model.architecture

    @property
    def variant(self) -> dict[str, Any]:
        """The value of every variant axis (:data:`benchmark.spec.axes.VARIANT_AXES`), by its
        leaderboard column, in label order."""
        return {axis.column: axis.column_value(self) for axis in VARIANT_AXES}

    @property
    def variant_parts(self) -> list[str]:
        """The variant values that are not the defaults (``[]`` for a plain stateless, target-only
        cell): what labels and run names add to tell variants apart."""
        return [variant_label(column, value) for column, value in self.variant.items()
                if not is_variant_default(column, value)]

    @property
    def feature_label(self) -> str:
        """The leaderboard's ``features`` value: ``y``, or ``y+`` and the feature names."""
        return feature_label(self.features)
