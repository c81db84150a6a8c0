"""Loading a grid's data once per process, and checking it before anything trains.

:func:`load_data` is the per-process cache every stage loads through (the cells of one target
share one load); :func:`check_targets` loads every target and checks every size and feature set
fits, reporting all problems at once; :func:`source_fingerprint` loads the pretraining source
when a mode needs it. Both checks run in :func:`benchmark.grid.plan_grid`, before the first job.
"""

from __future__ import annotations

import functools
import itertools
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from benchmark.config import DataSpec, GridSpec, SplitSpec, canonical_json
from benchmark.errors import DataError
from benchmark.settings import Settings


@functools.lru_cache(maxsize=16)
def _load_cached(spec_json: str, data_dir: str, allow_download: bool, fill_gaps: str | None,
                 max_gap: int) -> pd.DataFrame:
    from benchmark.data.sources import load_source

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
    from benchmark.data.features import build_inputs, load_covariates
    from benchmark.data.sources import data_fingerprint, source_label
    from benchmark.data.splits import split_target

    problems, fingerprints = [], {}
    for i, target in enumerate(spec.targets):
        label = source_label(target)
        try:
            frame = load_data(target, settings, spec.split)
        except DataError as exc:
            problems.append(f"grid.targets[{i}] ({label}): {exc}")
            continue
        ids = frame["unique_id"].unique()
        if len(ids) != 1:
            problems.append(f"grid.targets[{i}] ({label}): a target must be one series, found {len(ids)}; "
                            "choose one column or filter the CSV")
            continue
        fingerprints[label] = data_fingerprint(frame)
        for j, names in enumerate(spec.feature_sets):
            if not names:
                continue
            try:  # covariate columns exist and align, calendar features have dates: before training
                covariates = load_covariates(target, frame, names,
                                             lambda other: load_data(other, settings, spec.split))
                build_inputs(frame, names, label, covariates)
            except DataError as exc:
                problems.append(f"grid.feature_sets[{j}] on grid.targets[{i}] ({label}): {exc}")
        for protocol, size in itertools.product(spec.protocols or (spec.split.protocol,), spec.target_sizes):
            try:
                split_target(len(frame), size, replace(spec.split, protocol=protocol), label)
            except DataError as exc:
                problems.append(f"grid.targets[{i}] size {size} (protocol {protocol}): {exc}")
    if problems:
        raise DataError("the grid's targets do not fit what was asked:\n"
                        + "\n".join(f"  - {p}" for p in problems))
    return fingerprints


def source_fingerprint(spec: GridSpec, settings: Settings) -> str:
    """Load the pretraining source (when a mode needs it) before anything trains; its fingerprint."""
    from benchmark.data.sources import data_fingerprint
    from benchmark.models import TRANSFER_MODES

    if not any(TRANSFER_MODES.get(m).load_body for m in spec.modes):
        return ""
    try:
        frame = load_data(spec.pretrain.source, settings)
    except DataError as exc:
        raise DataError(f"grid.pretrain.source: {exc}") from None
    return data_fingerprint(frame)
