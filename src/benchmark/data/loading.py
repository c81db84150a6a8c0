"""Loading a grid's data once per process, and checking it before anything trains.

:func:`load_data` is the per-process cache every stage loads through (the cells of one target
share one load); :func:`check_targets` loads every target and checks every size and feature set
fits, reporting all problems at once; :func:`source_fingerprint` loads the pretraining source
when a mode needs it. Both checks run in :func:`benchmark.run.plan.plan_grid`, before the first job.
"""

from __future__ import annotations

import functools
import itertools
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from benchmark.data.features import build_inputs, load_covariates
from benchmark.data.sources import data_fingerprint, load_source, source_label
from benchmark.data.splits import split_target
from benchmark.spec.axes import axis_values
from benchmark.spec.catalog import TRANSFER_MODES
from benchmark.spec.errors import DataError, TlbenchError
from benchmark.spec.identity import canonical_json
from benchmark.spec.sections import DataSpec, SplitSpec
from benchmark.spec.settings import Settings
from benchmark.spec.tree import GridSpec


@functools.lru_cache(maxsize=16)
def _load_cached(spec_json: str, data_dir: str, allow_download: bool, fill_gaps: str | None,
                 max_gap: int) -> pd.DataFrame:
    plain = json.loads(spec_json)
    return load_source(DataSpec(plain["source"], plain["options"]), Path(data_dir), allow_download,
                       fill_gaps=fill_gaps, max_gap=max_gap)


def load_data(spec: DataSpec, settings: Settings, split: SplitSpec | None = None) -> pd.DataFrame:
    """A source's tidy, validated frame, cached per process (cells of one target share one load).
    ``split.fill_gaps`` decides whether small gaps are filled or are errors."""
    fill_gaps, max_gap = (split.fill_gaps, split.max_gap) if split else (None, 0)
    return _load_cached(canonical_json(spec), str(settings.data_dir), settings.allow_download,
                        fill_gaps, max_gap)


def check_targets(spec: GridSpec, settings: Settings) -> dict[str, str]:
    """Load every target, check every size fits; all problems at once. Returns fingerprints."""
    fingerprints, _, problems = target_problems(spec, settings)
    if problems:
        lines = [p for found in problems.values() for p in found]
        raise DataError(f"the grid's data has {len(lines)} problem(s):\n"
                        + "\n".join(f"  - {p}" for p in lines))
    return fingerprints


def target_problems(spec: GridSpec, settings: Settings) -> tuple[dict[str, str], str, dict[str, list[str]]]:
    """Load every target and the pretraining source (when a mode needs it), check every size and
    feature set: ``(fingerprints by target label, the source's fingerprint, problems grouped by
    file)``, every problem of
    every file (a missing source is reported with the missing targets, a CSV with all its kinds
    of problems), nothing raised for a data problem."""
    problems: dict[str, list[str]] = {}
    fingerprints: dict[str, str] = {}

    def add(where: str, exc: TlbenchError, prefix: str) -> None:
        group = problems.setdefault(getattr(exc, "file", None) or where, [])
        group.extend(f"{prefix}: {p}" for p in getattr(exc, "problems", [str(exc)]))

    for i, target in enumerate(spec.targets):
        label, where = _label(target), f"grid.targets[{i}]"
        try:
            frame = load_data(target, settings, spec.split)
        except TlbenchError as exc:
            add(f"{where} ({label})", exc, where)
            if getattr(exc, "n_points", None):  # a file with bad rows: its length still says which sizes fit
                group = getattr(exc, "file", None) or f"{where} ({label})"
                _size_problems(spec, exc.n_points, label, where, lambda e, prefix: add(group, e, prefix))
            continue
        ids = frame["unique_id"].unique()
        if len(ids) != 1:
            problems.setdefault(f"{where} ({label})", []).append(
                f"{where}: a target must be one series, found {len(ids)}; choose one column or filter the CSV")
            continue
        fingerprints[source_label(target)] = data_fingerprint(frame)
        for j, names in enumerate(spec.feature_sets):
            if not names:
                continue
            try:  # covariate columns exist and align, calendar features have dates: before training
                covariates = load_covariates(target, frame, names,
                                             lambda other: load_data(other, settings, spec.split))
                build_inputs(frame, names, label, covariates)
            except TlbenchError as exc:
                add(f"{where} ({label})", exc, f"grid.feature_sets[{j}] on {where}")
        _size_problems(spec, len(frame), label, where, lambda e, prefix: add(f"{where} ({label})", e, prefix))
    source = ""
    try:
        source = source_fingerprint(spec, settings)
    except TlbenchError as exc:
        add(f"grid.pretrain.source ({_label(spec.pretrain.source)})", exc, "grid.pretrain.source")
    return fingerprints, source, problems


def _size_problems(spec: GridSpec, n_points: int, label: str, where: str, add) -> None:
    """``add(error, prefix)`` for every target size that does not fit a series of ``n_points``."""
    protocols = axis_values(spec, "protocols")
    for protocol, (k, size) in itertools.product(protocols, enumerate(spec.target_sizes)):
        if size is None or size > 0:  # a non-positive size is a spec problem, reported there
            try:
                split_target(n_points, size, replace(spec.split, protocol=protocol), label)
            except TlbenchError as exc:
                named = f" (protocol {protocol})" if len(protocols) > 1 else ""
                add(exc, f"grid.target_sizes[{k}] ({size}){named} on {where}")


def _label(spec: DataSpec) -> str:
    try:
        return source_label(spec)
    except Exception:  # noqa: BLE001 - an unknown source or bad options: reported by the spec checks
        return spec.source


def source_fingerprint(spec: GridSpec, settings: Settings) -> str:
    """Load the pretraining source (when a mode needs it) before anything trains; its fingerprint."""
    if not any(TRANSFER_MODES.get(m).load_body for m in spec.modes if m in TRANSFER_MODES):
        return ""
    try:
        frame = load_data(spec.pretrain.source, settings)
    except DataError as exc:
        raise DataError(f"grid.pretrain.source: {exc}", exc.file, exc.problems) from None
    return data_fingerprint(frame)
