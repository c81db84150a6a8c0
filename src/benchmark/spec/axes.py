"""The one table of a grid's axes: for each, its grid field, where a cell keeps its value, and
for a variant axis its leaderboard column, default and label format.

The spec (:class:`benchmark.spec.tree.CellSpec` ``variant``), validation, expansion into cells
(:func:`benchmark.run.jobs.expand`) and ranking (folding variants) all read :data:`AXES`, so an
axis is added here once. An optional axis (``lookbacks``, ``normalisations``, ``forecasts``,
``protocols``) may be left empty in a grid: it then stands for the single value in the grid's own
section (``split.lookback``...). A cell whose value on a variant axis differs from the axis's
default is a variant of its architecture: its label, run name and leaderboard group say so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from benchmark.spec.sections import ModelSpec, SplitSpec

#: The default variant of a cell: the stateless regime on the target alone.
DEFAULT_REGIME = "stateless"
TARGET_FEATURE = "y"  # the target's own input; the ``features`` value of a target-only cell


def feature_label(features: tuple[str, ...]) -> str:
    """The leaderboard's ``features`` value: ``y``, or ``y+`` and the feature names."""
    return "+".join((TARGET_FEATURE, *features))


@dataclass(frozen=True)
class Axis:
    """One axis of a grid. ``field``: its :class:`~benchmark.spec.tree.GridSpec` field (a tuple of
    values); ``cell_path``: the attributes of a cell (and, for an ``optional`` axis, of the grid)
    that hold one value; ``column``/``default``/``label``: for a variant axis, its leaderboard
    column, the value of a plain cell there and how a value reads in labels (``L{}``: ``L168``);
    ``to_column``: cell value -> column value; ``subgrid``: whether a grid's ``subgrids`` may narrow it."""

    field: str
    cell_path: tuple[str, ...]
    optional: bool = False
    column: str | None = None
    default: Any = None
    label: str = "{}"
    to_column: Callable[[Any], Any] | None = None
    subgrid: bool = True

    def value_of(self, spec: Any) -> Any:
        """The value at :attr:`cell_path` of a cell (or, for an optional axis, of a grid)."""
        for name in self.cell_path:
            spec = getattr(spec, name)
        return spec

    def values(self, grid: Any) -> tuple:
        """The grid's values of this axis (an empty optional axis: its section's single value)."""
        values = getattr(grid, self.field)
        return values or ((self.value_of(grid),) if self.optional else ())

    def place(self, cell: Any, value: Any) -> Any:
        """``cell`` with ``value`` at :attr:`cell_path` (the sections along it replaced)."""
        return _replace_at(cell, self.cell_path, tuple(value) if isinstance(value, list) else value)

    def column_value(self, cell: Any) -> Any:
        value = self.value_of(cell)
        return self.to_column(value) if self.to_column else value


def _replace_at(spec: Any, path: tuple[str, ...], value: Any) -> Any:
    head, *rest = path
    return replace(spec, **{head: _replace_at(getattr(spec, head), tuple(rest), value) if rest else value})


#: Every axis, in the order a grid is expanded and variant labels read (protocol, regime, features,
#: normalisation, forecast, lookback: labels and run names depend on that order).
AXES = (
    Axis("protocols", ("split", "protocol"), optional=True, column="protocol", default=SplitSpec.protocol),
    Axis("targets", ("target",), subgrid=False),
    Axis("target_sizes", ("target_size",)),
    Axis("architectures", ("model", "architecture")),
    Axis("regimes", ("regime",), column="regime", default=DEFAULT_REGIME),
    Axis("feature_sets", ("features",), column="features", default=TARGET_FEATURE, to_column=feature_label),
    Axis("normalisations", ("model", "normalisation"), optional=True, column="normalisation",
         default=ModelSpec.normalisation),
    Axis("forecasts", ("split", "forecast"), optional=True, column="forecast", default=SplitSpec.forecast),
    Axis("lookbacks", ("split", "lookback"), optional=True, column="lookback", default=SplitSpec.lookback,
         label="L{}"),
    Axis("modes", ("mode",)),
    Axis("seeds", ("seed",)),
)
AXIS = {axis.field: axis for axis in AXES}
#: The grid fields a ``subgrids`` entry may narrow.
SUBGRID_AXES = tuple(axis.field for axis in AXES if axis.subgrid)
VARIANT_AXES = tuple(axis for axis in AXES if axis.column)
_BY_COLUMN = {axis.column: axis for axis in VARIANT_AXES}
#: ``(leaderboard column, default value)`` of each variant axis, in label order.
VARIANT_DEFAULTS = tuple((axis.column, axis.default) for axis in VARIANT_AXES)


def axis_values(grid: Any, field: str) -> tuple:
    """The values of axis ``field`` in ``grid`` (an empty optional axis: its section's value)."""
    return AXIS[field].values(grid)


def variant_label(column: str, value: Any) -> str:
    """How a variant value reads in labels, run names and folded architectures (``L168``)."""
    return _BY_COLUMN[column].label.format(value)


def is_variant_default(column: str, value: Any) -> bool:
    """Whether ``value`` is the default of variant column ``column`` (compared as text)."""
    return str(value) == str(_BY_COLUMN[column].default)
