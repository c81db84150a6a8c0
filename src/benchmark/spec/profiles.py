"""Grid specs from YAML: the shipped profiles, a profile name or a YAML path, dotted
``--set`` overrides, and conversion to a :class:`~benchmark.spec.tree.GridSpec` with every problem
of keys and types reported at once (with a best-effort spec, so later checks still run)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from benchmark.spec.convert import from_dict
from benchmark.spec.errors import SpecError, TlbenchError
from benchmark.spec.tree import GridSpec


def profile_names() -> list[str]:
    """Names of the profiles shipped with the package (``smoke``, ``standard``, ``nightly``)."""
    folder = resources.files("benchmark") / "profiles"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_grid_yaml(profile_or_path: str) -> tuple[dict, str]:
    """Raw YAML mapping of a profile name or a YAML file path, and a label for messages."""
    candidate = Path(profile_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise TlbenchError(f"Grid spec file {candidate} does not exist. Pass an existing YAML "
                               f"file or one of the profiles: {', '.join(profile_names())}.")
        text, label = candidate.read_text(), str(candidate)
    else:
        if profile_or_path not in profile_names():
            raise TlbenchError(f"Unknown profile {profile_or_path!r}. Known: "
                               f"{', '.join(profile_names())} (or pass a path to a YAML file).")
        text = (resources.files("benchmark") / "profiles" / f"{profile_or_path}.yaml").read_text()
        label = f"profile {profile_or_path!r}"
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise TlbenchError(f"{label} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise TlbenchError(f"{label} must be a YAML mapping at the top level, got {type(data).__name__}.")
    return data, label


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML) to a raw grid mapping."""
    data = json.loads(json.dumps(data, default=str))  # deep copy of plain data
    for item in overrides:
        if "=" not in item:
            raise TlbenchError(f"Override {item!r} must look like key.subkey=value "
                               "(e.g. training.max_epochs=3 or modes=[scratch,frozen]).")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise TlbenchError(f"Override {item!r}: {part} is not a mapping.")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def subgrid_override(profile_or_path: str, overrides: list[str] | tuple[str, ...],
                     picks: list[int] | tuple[int, ...]) -> str:
    """The ``--set`` override that keeps only sub-grids ``picks`` (1-based, in the grid's order) of
    a grid with ``subgrids``: a profile too long for one sitting then runs as several commands
    sharing one results folder, so one body and one ledger (cell keys do not depend on the
    sub-grids). Bad picks are refused with the grid's sub-grids listed."""
    data, label = read_grid_yaml(profile_or_path)
    subgrids = apply_overrides(data, overrides).get("subgrids") or []
    known = "; ".join(f"{k} = {json.dumps(sub, separators=(', ', ': '))}" for k, sub in enumerate(subgrids, 1))
    if not subgrids:
        raise TlbenchError(f"--subgrid {' '.join(map(str, picks))}: {label} has no `subgrids` to pick "
                           "from; leave --subgrid out to run the whole grid.")
    wrong = [k for k in picks if not 1 <= k <= len(subgrids)]
    if wrong:
        raise TlbenchError(f"--subgrid {', '.join(map(str, wrong))}: {label} has sub-grids 1 to "
                           f"{len(subgrids)}: {known}.")
    return "subgrids=" + json.dumps([subgrids[k - 1] for k in sorted(set(picks))])


def load_grid(profile_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> GridSpec:
    """The grid spec of a profile name or YAML path plus overrides, checked for types and keys.

    Registry-level checks (architectures, modes, sources, sizes) are in
    ``benchmark.run.validation.validate_grid``, which :func:`benchmark.run.grid.run_grid` calls.
    """
    data, label = read_grid_yaml(profile_or_path)
    data = apply_overrides(data, overrides)
    try:
        return from_dict(GridSpec, data, "grid")
    except SpecError as exc:
        raise SpecError(exc.problems, source=label, spec=_best_effort(data, exc.problems)) from None


def _best_effort(data: dict, problems: list[str]) -> GridSpec | None:
    """The spec without the values the problems name (their defaults instead), so that the checks
    after the keys and types still run and report everything in one pass; None if it cannot be built."""
    data = json.loads(json.dumps(data, default=str))
    paths = [re.findall(r"\.(\w+)|\[(\d+)\]", p.split(":", 1)[0].removeprefix("grid")) for p in problems]
    for path in sorted(paths, reverse=True):  # later list items first: indices stay valid
        node = data
        for name, index in path[:-1]:
            node = node.get(name) if isinstance(node, dict) else (
                node[int(index)] if isinstance(node, list) and int(index or -1) < len(node) else None)
            if node is None:
                break
        if node is None or not path:
            continue
        name, index = path[-1]
        if isinstance(node, dict):
            node.pop(name, None)
        elif isinstance(node, list) and index and int(index) < len(node):
            node.pop(int(index))
    try:
        return from_dict(GridSpec, data, "grid")
    except SpecError:
        return None


def grid_from_mapping(data: Mapping[str, Any], label: str = "grid spec") -> GridSpec:
    try:
        return from_dict(GridSpec, dict(data), "grid")
    except SpecError as exc:
        raise SpecError(exc.problems, source=label) from None
