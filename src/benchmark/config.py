"""The typed spec tree: grid, data, split, model, training, transfer, pretraining.

Specs are frozen dataclasses built from YAML (a profile name or a path) plus dotted overrides,
converted and validated at this edge, all problems reported at once with their YAML paths.
A spec's identity is :func:`spec_hash` of its canonical JSON: the same spec always has the same key.

Semantic checks that need the registries (known architectures, modes, sources) live in
:mod:`benchmark.validation`; this module only knows shapes and types.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from benchmark.errors import SpecError, TlbenchError


#: Field metadata of an option added after keys existed: the key hash leaves the field out while
#: it holds its default (which must reproduce the behaviour from before the field), so adding it
#: keeps every existing cell key and ledger row; any other value enters the key.
KEY_NEUTRAL_DEFAULT = types.MappingProxyType({"key_neutral_default": True})


@dataclass(frozen=True)
class DataSpec:
    """One series collection: a registered source name plus that source's own options.

    ``options`` are validated by the source's options class (see ``benchmark.data.sources``),
    e.g. ``{"file": "ETTh1", "column": "OT"}`` for ``ett`` or ``{"path": ..., "date_column": ...,
    "value_column": ...}`` for ``csv``.
    """

    source: str = "ett"
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SplitSpec:
    """How a target is cut: a fixed test segment at the end, the last ``target_size`` points
    before it as history, the history's last ``val_fraction`` held out for early stopping."""

    lookback: int = 24
    horizon: int = 1
    test_size: int | None = None  # points; None: test_fraction of the whole target
    test_fraction: float = 0.1
    val_fraction: float = 0.2
    season_length: int = 24  # m of seasonal naive and MASE
    fill_gaps: str | None = None  # None: gaps are errors; "interpolate": fill up to max_gap points
    max_gap: int = 3
    forecast: str = "direct"  # direct: an H-output model; recursive: a one-step model fed back H times
    test_stride: int = 1  # steps between scored test origins (1: every origin of the test segment)
    protocol: str = "tlbench"  # a name in benchmark.data.protocols.PROTOCOLS (docs/protocols.md)


@dataclass(frozen=True)
class ModelSpec:
    """The network of one architecture; identical for every transfer mode of a cell."""

    architecture: str = "lstm"
    units: int = 64
    layers: int | None = None  # None: the architecture's default depth (2; stacked_lstm 3)
    dropout: float = 0.0
    recurrent_dropout: float = 0.0  # > 0 loses the cuDNN kernels on GPU
    head: str = "dense"  # dense | recurrent
    head_units: int = 0  # hidden units of the dense head; 0: one linear layer
    conv_filters: int = 64  # conv1d_lstm only
    kernel_size: int = 5  # conv1d_lstm only
    normalisation: str = "last_value"  # a name in benchmark.data.normalisation.NORMALISATIONS (docs/models.md)


@dataclass(frozen=True)
class TrainingSpec:
    """Optimiser, loss and early stopping (on validation loss, best weights restored)."""

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    loss: str = "mse"
    batch_size: int = 64
    max_epochs: int = 50
    patience: int = 5
    min_delta: float = 0.0
    shuffle: bool = True
    time_limit_s: float | None = None  # per cell; exceeded: the cell fails, the grid goes on
    lr_schedule: str = "constant"  # a name in benchmark.training.LR_SCHEDULES
    deterministic: bool = True  # TF op determinism: bit-reproducible runs; false trades that for speed
    monitor: str = "val_loss"  # what early stopping watches: val_loss, or loss (the notebook protocol's flaw)
    # fair budget across target sizes: epochs raised so training may run at least this many optimizer
    # steps (early stopping on the monitor still ends it); 0: max_epochs alone
    min_steps: int = field(default=0, metadata=KEY_NEUTRAL_DEFAULT)


@dataclass(frozen=True)
class TransferSpec:
    """Knobs of the transfer modes that have any (``partial``, ``lp_ft``) and the pretrained pin."""

    partial_frozen_layers: int = 1  # partial: freeze the first k body layers
    probe_epochs_fraction: float = 0.5  # lp_ft: share of max_epochs spent on the linear probe
    finetune_lr_factor: float = 0.1  # lp_ft: learning-rate multiplier once unfrozen
    pretrained_version: str | None = None  # registry version or alias to pin; None: build/reuse


@dataclass(frozen=True)
class PretrainSpec:
    """Pretraining on the source: which series and windows, and how to train."""

    source: DataSpec = field(
        default_factory=lambda: DataSpec("m4", {"group": "Hourly"})
    )
    max_series: int | None = None  # None: all series
    windows_per_series: int | None = None  # None: all windows; else k per series, by `sampling`
    sampling: str = "spread"  # spread: k evenly spaced over the whole history; last: the last k
    val_fraction: float = 0.1  # last part of every series held out for early stopping
    lookback: int | None = None  # None: the cells' split.lookback
    horizon: int | None = None  # None: the cells' model horizon; e.g. 48 for an M4 Hourly body
    seeds: tuple[int, ...] = (0,)  # target seed i is paired with pretraining seed i mod len(seeds)
    training: TrainingSpec = field(
        default_factory=lambda: TrainingSpec(batch_size=512, learning_rate=2e-3, max_epochs=20)
    )


#: The default variant of a cell: the stateless regime on the target alone. A cell away from
#: either default is a variant of its architecture (its label, run name and leaderboard group say so).
DEFAULT_REGIME = "stateless"
TARGET_FEATURE = "y"  # the target's own input; the ``features`` value of a target-only cell
#: ``(leaderboard column, default value)`` of each variant dimension, in label order: a cell whose
#: protocol, regime, features, normalisation, forecast or lookback differs from these is its own variant.
VARIANT_DEFAULTS = (("protocol", SplitSpec.protocol), ("regime", DEFAULT_REGIME), ("features", TARGET_FEATURE),
                    ("normalisation", ModelSpec.normalisation), ("forecast", SplitSpec.forecast),
                    ("lookback", SplitSpec.lookback))
_VARIANT_FORMATS = {"lookback": "L{}"}  # how a value reads in a label: lookback 168 -> L168


def variant_label(column: str, value: Any) -> str:
    """How a variant value reads in labels, run names and folded architectures (``L168``)."""
    return _VARIANT_FORMATS.get(column, "{}").format(value)


def is_variant_default(column: str, value: Any) -> bool:
    """Whether ``value`` is the default of variant column ``column`` (compared as text)."""
    return str(value) == str(dict(VARIANT_DEFAULTS)[column])


@dataclass(frozen=True)
class GridSpec:
    """A whole benchmark: targets x target sizes x architectures x regimes x feature sets x modes
    x seeds.

    ``regimes``: registered training regimes (``stateless``: shuffled sliding windows;
    ``stateful``: the series in order, state carried across chunks; see ``benchmark.training``).
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
    # sub-grids instead of the whole cross product: each a mapping of VARIANT_AXES keys whose values
    # are among the grid's own; the cells are the union of the sub-grids (empty: the whole cross)
    variants: tuple[Mapping[str, Any], ...] = field(default=(), metadata=KEY_NEUTRAL_DEFAULT)
    split: SplitSpec = field(default_factory=SplitSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    transfer: TransferSpec = field(default_factory=TransferSpec)
    pretrain: PretrainSpec = field(default_factory=PretrainSpec)


#: The axes a grid's ``variants`` entry may narrow, with the single value each stands for when empty.
VARIANT_AXES = {"target_sizes": None, "architectures": None, "modes": None, "seeds": None,
                "regimes": None, "feature_sets": None, "lookbacks": ("split", "lookback"),
                "normalisations": ("model", "normalisation"), "forecasts": ("split", "forecast"),
                "protocols": ("split", "protocol")}


def axis_values(spec: GridSpec, axis: str) -> tuple:
    """The values of one of :data:`VARIANT_AXES` in ``spec`` (an empty optional axis: its spec's value)."""
    single = VARIANT_AXES[axis]
    return getattr(spec, axis) or ((getattr(getattr(spec, single[0]), single[1]),) if single else ())


def variant_specs(spec: GridSpec) -> list[GridSpec]:
    """``spec``'s sub-grids: one per ``variants`` entry (its axes replaced), or ``[spec]``."""
    if not spec.variants:
        return [spec]
    out = []
    for index, variant in enumerate(spec.variants):
        typed = from_dict(GridSpec, dict(variant), f"grid.variants[{index}]")
        out.append(dataclasses.replace(spec, variants=(), **{k: getattr(typed, k) for k in variant}))
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
    def variant(self) -> dict[str, str]:
        """The value of every variant dimension (:data:`VARIANT_DEFAULTS`), by leaderboard column."""
        return {"protocol": self.split.protocol, "regime": self.regime, "features": self.feature_label,
                "normalisation": self.model.normalisation, "forecast": self.split.forecast,
                "lookback": self.split.lookback}

    @property
    def variant_parts(self) -> list[str]:
        """The variant values that are not the defaults (``[]`` for a plain stateless, target-only
        cell): what labels and run names add to tell variants apart."""
        values = self.variant
        return [variant_label(column, values[column]) for column, _ in VARIANT_DEFAULTS
                if not is_variant_default(column, values[column])]

    @property
    def feature_label(self) -> str:
        """The leaderboard's ``features`` value: ``y``, or ``y+`` and the feature names."""
        return "+".join((TARGET_FEATURE, *self.features))


# --------------------------------------------------------------------------- identity


def to_plain(obj: Any) -> Any:
    """Spec -> JSON-able plain data (dicts with sorted keys, lists), the canonical form."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def canonical_json(obj: Any) -> str:
    return json.dumps(to_plain(obj), sort_keys=True, separators=(",", ":"), default=str)


def key_plain(obj: Any) -> Any:
    """:func:`to_plain` for identity: a field marked :data:`KEY_NEUTRAL_DEFAULT` is left out
    while it equals its default, so keys from before the field existed stay valid."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: key_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get("key_neutral_default") and getattr(obj, f.name) == f.default)}
    if isinstance(obj, Mapping):
        return {str(k): key_plain(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return [key_plain(v) for v in obj]
    return to_plain(obj)


def spec_hash(*parts: Any, length: int = 16) -> str:
    """Content hash of any specs/values: the identity used by caching, MLflow tags and results.
    Hashes :func:`key_plain` (a new option at its default does not change a key)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(key_plain(part), sort_keys=True, separators=(",", ":"),
                                 default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:length]


# --------------------------------------------------------------------------- conversion


def from_dict(cls: type, data: Any, path: str = "grid") -> Any:
    """Build dataclass ``cls`` from plain data, collecting every problem; raises SpecError."""
    problems: list[str] = []
    value = _convert(cls, data, path, problems)
    if problems:
        raise SpecError(problems)
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(tp: Any, data: Any, path: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(inner[0], data, path, problems)
        raise TypeError(f"unsupported union {tp}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, Mapping):
            problems.append(f"{path}: expected a mapping, got {data!r}")
            return None
        hints = typing.get_type_hints(tp)
        names = [f.name for f in dataclasses.fields(tp)]
        for key in data:
            if key not in names:
                problems.append(f"{path}.{key}: unknown key. Known keys: {', '.join(names)}")
        kwargs = {}
        for name in names:
            if name in data:
                kwargs[name] = _convert(hints[name], data[name], f"{path}.{name}", problems)
        try:
            return tp(**kwargs)
        except TypeError as exc:
            problems.append(f"{path}: {exc}")
            return None
    if origin is tuple:
        item_type = args[0]
        if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, (list, tuple)):
            data = [data]  # a single value where a list is expected: accept `seeds: 0`
        return tuple(_convert(item_type, v, f"{path}[{i}]", problems) for i, v in enumerate(data))
    if tp is Mapping[str, Any] or origin in (Mapping, dict, typing.Mapping):
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            problems.append(f"{path}: expected a mapping, got {data!r}")
            return {}
        return dict(data)
    if tp is Any:
        return data
    if tp in SCALARS:
        value, problem = convert_scalar(tp, data, numeric_strings=True)
        if problem:
            problems.append(f"{path}: {problem}")
        return value
    raise TypeError(f"unsupported spec type {_type_name(tp)} at {path}")


#: The scalar types a spec field or a source option may have.
SCALARS = (bool, int, float, str)


def convert_scalar(tp: type, value: Any, numeric_strings: bool = False) -> tuple[Any, str | None]:
    """``(converted value, None)`` or ``(None, problem)`` for one of :data:`SCALARS`: the one typed
    converter of spec fields and source options. ``numeric_strings``: a float may come as a
    string (YAML 1.1 reads ``1e-3``, without a dot, as one)."""
    if tp is bool:
        return (value, None) if isinstance(value, bool) else (None, f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        return None, f"expected an integer, got {value!r}"
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), None
        if numeric_strings and isinstance(value, str):
            try:
                return float(value), None
            except ValueError:
                pass
        return None, f"expected a number, got {value!r}"
    if tp is str:
        return (value, None) if isinstance(value, str) else (None, f"expected a string, got {value!r}")
    raise TypeError(f"unsupported scalar type {tp}")


# --------------------------------------------------------------------------- loading


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


def load_grid(profile_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> GridSpec:
    """The grid spec of a profile name or YAML path plus overrides, checked for types and keys.

    Registry-level checks (architectures, modes, sources, sizes) are in
    ``benchmark.validation.validate_grid``, which :func:`benchmark.grid.run_grid` calls.
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
