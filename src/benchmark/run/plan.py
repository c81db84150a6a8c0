"""What a grid will run, decided before anything trains: :func:`plan_grid` validates the spec,
loads and checks every target and size and the pretraining source (every problem in one error),
and returns a :class:`GridPlan`: the cells with their keys, and the pretraining and baseline jobs
they need; :func:`load_and_plan` does the same from a profile or YAML file. Shared by
:func:`benchmark.run.grid.run_grid`, ``tlbench run`` and ``tlbench validate``; imports neither
TensorFlow nor MLflow (the facts of registered names come from :mod:`benchmark.spec.catalog`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from benchmark.data.loading import target_problems
from benchmark.data.protocols import DEFAULT_PROTOCOL
from benchmark.data.sources import source_label
from benchmark.data.windows import FORECASTS
from benchmark.run.jobs import BaselineJob, CellJob, PretrainJob, RunContext, cell_key, expand, pretrain_key
from benchmark.run.validation import grid_problems
from benchmark.spec.catalog import TRANSFER_MODES
from benchmark.spec.errors import GridProblems, SpecError
from benchmark.spec.identity import spec_hash
from benchmark.spec.profiles import load_grid
from benchmark.spec.settings import Settings
from benchmark.spec.tree import CellSpec, GridSpec


@dataclass(frozen=True)
class GridPlan:
    """What a grid will run, decided before anything trains: the validated spec, its cells with
    their keys, and the fingerprints of its targets and pretraining source."""

    spec: GridSpec
    grid_id: str
    fingerprints: dict[str, str]  # target label -> data fingerprint
    source_fingerprint: str
    cells: tuple[CellSpec, ...]

    def cell_jobs(self, context: RunContext) -> list[CellJob]:
        return [CellJob(c, cell_key(c, self.fingerprints[source_label(c.target)]),
                        self.fingerprints[source_label(c.target)], context) for c in self.cells]

    def body_model(self, cell: CellSpec):
        """The model spec a cell's body is pretrained with: the cell's, with the grid's head (a
        protocol's ``transfer_head`` goes on the target model only, fresh, as the notebook did)."""
        return replace(cell.model, head=self.spec.model.head)

    def pretrain_key_of(self, cell: CellSpec) -> str:
        spec, model = self.spec, self.body_model(cell)
        if spec.transfer.pretrained_version:  # a pinned registry version: its own identity
            return spec_hash("pinned", model, spec.pretrain.source, spec.transfer.pretrained_version)
        return pretrain_key(model, cell.pretrain, *pretrain_shape(cell), self.source_fingerprint)

    def pretrain_jobs(self, pending: Sequence[CellJob], context: RunContext) -> list[PretrainJob]:
        """One pretraining per distinct (architecture spec, source, pretraining spec) that a
        pending cell's mode needs."""
        spec, jobs = self.spec, {}
        for job in pending:
            if needs_pretrained(job.cell):
                key = self.pretrain_key_of(job.cell)
                lookback, horizon = pretrain_shape(job.cell)
                jobs.setdefault(key, PretrainJob(key, self.body_model(job.cell), job.cell.pretrain, lookback,
                                                 horizon, context, seed=job.cell.pretrain_seed,
                                                 pinned_version=spec.transfer.pretrained_version))
        return list(jobs.values())

    def baseline_jobs(self, jobs: Sequence[CellJob], context: RunContext) -> list[BaselineJob]:
        """One job per (target, size), running every baseline of the grid. The protocols of one
        grid share their test segment (validation refuses others), so the baselines are scored
        once, on the cut of the default protocol when the grid has it."""
        if not self.spec.baselines:
            return []
        first: dict[tuple[str, int], CellJob] = {}
        for job in sorted(jobs, key=lambda j: j.cell.split.protocol != DEFAULT_PROTOCOL):
            first.setdefault((source_label(job.cell.target), job.cell.target_size), job)
        return [BaselineJob(job.cell, tuple(self.spec.baselines), job.data_fingerprint, context)
                for job in first.values()]

    def row_keys(self, context: RunContext, jobs: Sequence[CellJob] | None = None) -> list[str]:
        """The leaderboard keys of the grid's cells and baselines, cells first (``jobs``: its
        cell jobs, where the caller has them already)."""
        jobs = self.cell_jobs(context) if jobs is None else jobs
        return [job.cell_key for job in jobs] + [job.key(name) for job in self.baseline_jobs(jobs, context)
                                                 for name in job.baselines]

    def rows_of(self, rows, context: RunContext):
        """The grid's rows among ``rows`` (a frame of its grid's leaderboard partition): its cells'
        and baselines' by key, and its bodies' on their source, whichever run wrote them. Not by
        grid id: a cell keeps its key when the grid around it changes (a baseline added, a profile
        run as several ``--subgrid`` commands), and its row is answered from the ledger then."""
        if not len(rows):
            return rows
        jobs = self.cell_jobs(context)
        bodies = {self.pretrain_key_of(job.cell) for job in jobs if needs_pretrained(job.cell)}
        mine = rows["cell_key"].isin(set(self.row_keys(context, jobs)))
        mine |= (rows["kind"] == "source") & rows["pretrained_key"].isin(bodies)
        return rows.loc[mine]


def pretrain_shape(cell: CellSpec) -> tuple[int, int]:
    """``(lookback, horizon)`` of the body a cell starts from: ``pretrain.lookback`` and
    ``pretrain.horizon`` where set, else the cell's lookback and its model's horizon."""
    horizon = FORECASTS.get(cell.split.forecast).model_horizon(cell.split.horizon)
    return cell.pretrain.lookback or cell.split.lookback, cell.pretrain.horizon or horizon


def needs_pretrained(cell: CellSpec) -> bool:
    """Whether the cell's transfer mode starts from a pretrained body."""
    return TRANSFER_MODES.get(cell.mode).load_body


def plan_grid(spec: GridSpec, settings: Settings, label: str = "grid spec",
              problems: Sequence[str] = ()) -> GridPlan:
    """Validate ``spec``, load and check every target and size and the pretraining source:
    everything that can fail before anything trains, every problem in one error, grouped by file
    (``problems``: those already found in the spec file, e.g. unknown keys)."""
    spec = replace(spec, name=settings.redact(spec.name))  # a secret in the name never leaves
    found = [*problems, *grid_problems(spec)]
    fingerprints, source, data = target_problems(spec, settings)
    if found or data:
        groups = ({label: found} if found else {}) | data
        raise GridProblems([*found, *(p for group in data.values() for p in group)], label, groups)
    return GridPlan(spec, spec_hash(spec), fingerprints, source, tuple(expand(spec)))


def load_and_plan(profile_or_path: str, overrides: Sequence[str], settings: Settings) -> GridPlan:
    """:func:`benchmark.spec.profiles.load_grid` then :func:`plan_grid`, reporting the spec file's own
    problems (unknown keys, wrong types) together with every later one, in one error."""
    try:
        return plan_grid(load_grid(profile_or_path, list(overrides)), settings, profile_or_path)
    except SpecError as exc:
        if exc.spec is None:
            raise
        return plan_grid(exc.spec, settings, exc.source, exc.problems)
