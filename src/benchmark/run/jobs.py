"""What the stages of a grid hand each other: jobs, references and outcomes (small, picklable,
JSON-able dataclasses: specs, keys, paths, run ids; never frames or models), the grid's
expansion into cells, the keys that are their identity, and :class:`CellNames`, the one place a
cell's names are spelled (its label, MLflow run name, Prefect task-run name, MLflow tags and the
leaderboard columns that say which cell a row is).

Identity: a cell's key is the hash of its full spec, its target's data fingerprint and the
package version (:func:`cell_key`); a pretrained model's key is the hash of everything that
determines it (:func:`pretrain_key`). The same key is never trained twice.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from benchmark import __version__
from benchmark.data.protocols import apply_protocol
from benchmark.data.sources import source_label
from benchmark.forecasters.baselines import BASELINES
from benchmark.spec.axes import AXES, AXIS
from benchmark.spec.catalog import TRANSFER_MODES
from benchmark.spec.identity import spec_hash
from benchmark.spec.sections import ModelSpec, PretrainSpec
from benchmark.spec.tree import CellSpec, GridSpec, subgrid_specs


def now() -> dt.datetime:
    """The current time in UTC (every timestamp tlbench records)."""
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class RunContext:
    """What every job of one grid run shares."""

    grid: str
    grid_id: str
    run_id: str
    run_date: str
    experiment: str
    parent_run_id: str | None
    git_commit: str | None

    def ledger_columns(self, cell: CellSpec, cell_key: str) -> dict[str, Any]:
        """The leaderboard columns of a row or failure row that say which grid run wrote it."""
        return {"grid_id": self.grid_id, "grid": cell.grid, "run_id": self.run_id,
                "run_date": self.run_date, "cell_key": cell_key}


@dataclass(frozen=True)
class CellNames:
    """Every name of one cell, spelled once: its human ``label``, its MLflow ``run_name``, its
    Prefect ``task_name`` and the ``columns`` its tags and leaderboard rows share."""

    target: str  # the target's source label, e.g. ett/ETTh1:OT
    target_size: int
    architecture: str
    mode: str
    seed: int
    variant: tuple[str, ...] = ()  # the non-default regime / feature set, in label order

    @classmethod
    def of(cls, cell: CellSpec) -> "CellNames":
        return cls(source_label(cell.target), int(cell.target_size), cell.model.architecture,
                   cell.mode, int(cell.seed), tuple(cell.variant_parts))

    @property
    def label(self) -> str:
        """``ett/ETTh1:OT n=240 lstm/frozen stateful seed=0``: logs, outcomes, plot titles."""
        variant = "".join(f" {part}" for part in self.variant)
        return (f"{self.target} n={self.target_size} {self.architecture}/{self.mode}{variant} "
                f"seed={self.seed}")

    @property
    def run_name(self) -> str:
        """``lstm·frozen·stateful·240·s0``: the cell's MLflow run name, short enough for the runs
        list (the target and the full label are in :attr:`description`)."""
        return "·".join((self.architecture, self.mode, *self.variant, str(self.target_size),
                         f"s{self.seed}"))

    @property
    def task_name(self) -> str:
        """``cell-lstm-frozen-stateful-n240-s0``: the cell's Prefect task-run name (ASCII, for logs)."""
        variant = "".join(f"-{part}" for part in self.variant)
        return f"cell-{self.architecture}-{self.mode}{variant}-n{self.target_size}-s{self.seed}"

    def description(self, cell_key: str, pretrained: str | None = None) -> str:
        """The cell run's description (markdown): the full label, its key and the body it started from."""
        lines = [f"**{self.label}**", "", f"- cell key: `{cell_key}`"]
        if pretrained:
            lines.append(f"- pretrained body: `{pretrained}` (Model Registry)")
        return "\n".join(lines)

    def dataset_name(self, context: str, first: Any, last: Any, points: int) -> str:
        """``ett/ETTh1:OT training 2016-07-01 00:00..2016-07-09 23:00 (192 points)``: the name of
        the MLflow dataset of one split of the cell's target, with its time range."""
        return f"{self.target} {context} {_stamp(first)}..{_stamp(last)} ({points} points)"

    def columns(self) -> dict[str, Any]:
        """The cell's coordinates as leaderboard columns (typed); tags are their strings."""
        return {"target": self.target, "target_size": self.target_size,
                "architecture": self.architecture, "mode": self.mode, "seed": self.seed}


def _stamp(value: Any) -> str:
    """A time-range end: ``YYYY-MM-DD HH:MM`` for timestamps, the value itself for step indices."""
    try:
        if isinstance(value, (int,)) or (hasattr(value, "dtype") and value.dtype.kind in "iuf"):
            return str(value)
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(value)


@dataclass(frozen=True)
class PretrainJob:
    key: str
    model: ModelSpec
    pretrain: PretrainSpec
    lookback: int
    horizon: int
    context: RunContext
    seed: int = 0
    pinned_version: str | None = None  # a registry version or alias to use instead of training

    @property
    def task_name(self) -> str:
        return f"pretrain-{self.model.architecture}-{self.key}"


@dataclass(frozen=True)
class PretrainedRef:
    """Where a pretrained model is: a local ``.keras`` file (with its checksum) and its version in
    the MLflow Model Registry, from which a worker on another machine fetches it."""

    key: str
    path: str
    sha256: str
    mlflow_run_id: str | None
    seconds: float
    reused: bool
    registry_name: str | None = None
    version: str | None = None

    @property
    def registry_version(self) -> str | None:
        """``NAME/VERSION`` for the leaderboard, when the model is registered."""
        return f"{self.registry_name}/{self.version}" if self.version else None


@dataclass(frozen=True)
class CellJob:
    cell: CellSpec
    cell_key: str
    data_fingerprint: str
    context: RunContext
    pretrained: PretrainedRef | None = None

    @property
    def names(self) -> CellNames:
        return CellNames.of(self.cell)

    @property
    def task_name(self) -> str:
        return self.names.task_name


@dataclass(frozen=True)
class BaselineJob:
    """Every baseline of a grid on one (target, size): the same test segment as the cells."""

    cell: CellSpec  # the (target, size, split) the baselines share; mode/model unused
    baselines: tuple[str, ...]
    data_fingerprint: str
    context: RunContext

    def key(self, name: str) -> str:
        """Baseline ``name``'s row key; its registered ``settings`` (mstl's refit interval and
        history) enter it where it has any, so rows made with other settings are other rows."""
        settings = BASELINES.get(name).settings if name in BASELINES else None
        return spec_hash("baseline", name, self.cell.target, self.cell.target_size, self.cell.split,
                         self.data_fingerprint, __version__, *([dict(settings)] if settings else []))

    @property
    def task_name(self) -> str:
        return f"baselines-n{self.cell.target_size}"


@dataclass(frozen=True)
class CellOutcome:
    cell_key: str
    status: str  # finished | failed | skipped
    label: str
    metrics: dict = field(default_factory=dict)
    mlflow_run_id: str | None = None
    error: str | None = None
    seconds: float = 0.0
    worker_host: str | None = None  # the machine that trained it (from its leaderboard row)


@dataclass
class CellResult:
    """What training and evaluating one cell produced (:func:`benchmark.run.cells.train_and_evaluate`):
    the model to log (for a stateful cell, its stateless twin), its fit, the cell's data, the
    forecast ``y_pred`` ``[n_test, horizon]`` on the original scale, the metrics and the
    trainable/frozen parameter counts."""

    model: Any  # keras.Model
    fit: Any  # benchmark.models.training.FitResult
    data: Any  # benchmark.data.splits.CellData
    y_pred: Any  # np.ndarray
    metrics: dict[str, float]
    params: dict[str, int]


@dataclass
class GridResult:
    grid: str
    grid_id: str
    run_id: str
    parent_run_id: str | None
    outcomes: list[CellOutcome]
    leaderboard: pd.DataFrame
    aggregate_uri: str | None
    wall_seconds: float
    report_path: str | None = None
    aggregate: pd.DataFrame | None = None  # benchmark.results.ranking.aggregate of ``leaderboard``, computed once
    verdict: list[str] = field(default_factory=list)  # benchmark.results.verdicts.headline: the baselines in words
    report_url: str | None = None  # the report on the tracking server's UI (None for a local store)

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for outcome in self.outcomes:
            out[outcome.status] = out.get(outcome.status, 0) + 1
        return out


def expand(spec: GridSpec) -> list[CellSpec]:
    """Every combination of the grid's axes (:data:`benchmark.spec.axes.AXES`: protocol, target,
    size, architecture, regime, feature set, normalisation, forecast, lookback, mode, seed) as full
    cell specs, with what each protocol pins applied (:func:`benchmark.data.protocols.apply_protocol`).

    Target seed ``seeds[i]`` is paired with pretraining seed ``pretrain.seeds[i mod n]`` (the
    cell's ``pretrain_seed``, and its ``pretrain.seeds`` is that one seed, so its key names the
    body it used). ``zeroshot`` trains nothing: it runs once per pretrained body, with the first
    target seed paired with that body, not once per target seed.
    """
    if spec.subgrids:  # the union of the sub-grids, each distinct cell once
        return list({spec_hash(c): c for sub in subgrid_specs(spec) for c in expand(sub)}.values())
    bodies = spec.pretrain.seeds or (0,)
    paired = [(seed, bodies[i % len(bodies)]) for i, seed in enumerate(spec.seeds)]
    first_of_body: dict[int, tuple[int, int]] = {}
    for seed, body in paired:
        first_of_body.setdefault(body, (seed, body))
    once_per_body = list(first_of_body.values())
    crossed = [axis for axis in AXES if axis is not AXIS["seeds"]]  # seeds pair with the bodies below
    cells = []
    for values in itertools.product(*(axis.values(spec) for axis in crossed)):
        mode = values[crossed.index(AXIS["modes"])]
        trains = mode not in TRANSFER_MODES or TRANSFER_MODES.get(mode).trains
        for seed, body in (paired if trains else once_per_body):
            cell = CellSpec(grid=spec.name, target=spec.targets[0], target_size=0, mode=mode, seed=seed,
                            split=spec.split, model=spec.model, training=spec.training,
                            transfer=spec.transfer, pretrain=replace(spec.pretrain, seeds=(body,)),
                            pretrain_seed=body)
            for axis, value in zip(crossed, values):
                cell = axis.place(cell, value)
            cells.append(apply_protocol(cell))
    # a protocol that pins the normalisation folds that axis: keep each distinct cell once
    return list({spec_hash(cell): cell for cell in cells}.values())


def cell_key(cell: CellSpec, data_fingerprint: str) -> str:
    """A cell's identity: its full spec, its data and the code version."""
    return spec_hash(cell, data_fingerprint, __version__)


def pretrain_key(model: ModelSpec, pretrain: PretrainSpec, lookback: int, horizon: int,
                 source_fingerprint: str) -> str:
    """Everything that determines a pretrained model; the same key is never trained twice.
    ``model`` carries the normalisation and ``pretrain.seeds`` the one seed of this body."""
    return spec_hash({"model": model, "pretrain": pretrain, "lookback": lookback, "horizon": horizon,
                      "source": source_fingerprint, "version": __version__})


def cell_label(cell: CellSpec) -> str:
    """The cell's human label (:attr:`CellNames.label`)."""
    return CellNames.of(cell).label
