"""Grid-spec checks that need the registries: every problem reported at once, with its YAML path,
before anything is loaded or trained (:func:`benchmark.run.plan.load_and_plan` adds the data's)."""

from __future__ import annotations

from benchmark.data.features import feature_problems
from benchmark.data.normalisation import NORMALISATIONS
from benchmark.data.protocols import PROTOCOLS
from benchmark.data.sources import parse_options
from benchmark.data.windows import FORECASTS
from benchmark.forecasters.baselines import BASELINES
from benchmark.spec.axes import AXIS, SUBGRID_AXES, axis_values
from benchmark.spec.catalog import (
    ARCHITECTURES,
    HEADS,
    LOSSES,
    LR_SCHEDULES,
    MONITORS,
    OPTIMIZERS,
    REGIMES,
    TRANSFER_MODES,
)
from benchmark.spec.errors import SpecError
from benchmark.spec.tree import GridSpec, subgrid_specs


def grid_problems(spec: GridSpec) -> list[str]:
    """All registry-level and range problems of a grid spec (empty when it is fine)."""
    problems: list[str] = []

    def need(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    need(bool(spec.name) and "/" not in spec.name and ".." not in spec.name,
         f"grid.name: {spec.name!r} must be a plain name (no '/' or '..'); it names folders")
    need(len(spec.targets) > 0, "grid.targets: at least one target is needed")
    for i, target in enumerate(spec.targets):
        _, target_problems = parse_options(target, f"grid.targets[{i}]")
        problems.extend(target_problems)
    _, source_problems = parse_options(spec.pretrain.source, "grid.pretrain.source")
    problems.extend(source_problems)
    need(len(spec.target_sizes) > 0, "grid.target_sizes: at least one size is needed")
    for i, size in enumerate(spec.target_sizes):
        need(size is None or size > 0, f"grid.target_sizes[{i}]: must be positive, got {size}")
    for i, name in enumerate(spec.architectures):
        need(name in ARCHITECTURES, f"grid.architectures[{i}]: {ARCHITECTURES.unknown_message(name)}")
    need(len(spec.regimes) > 0, "grid.regimes: at least one regime is needed (e.g. [stateless])")
    need(len(set(spec.regimes)) == len(spec.regimes), f"grid.regimes: duplicates in {list(spec.regimes)}")
    for i, name in enumerate(spec.regimes):
        if name not in REGIMES:
            problems.append(f"grid.regimes[{i}]: {REGIMES.unknown_message(name)}")
        elif REGIMES.get(name).stateful:
            for j, architecture in enumerate(spec.architectures):
                if architecture in ARCHITECTURES and not ARCHITECTURES.get(architecture).stateful_capable:
                    problems.append(f"grid.regimes[{i}]: {name!r} cannot train grid.architectures[{j}] "
                                    f"{architecture!r}: {ARCHITECTURES.get(architecture).why_not_stateful}; "
                                    "or drop the stateful regime")
    need(len(spec.feature_sets) > 0, "grid.feature_sets: at least one feature set is needed ([] is the "
                                     "target alone)")
    for i, names in enumerate(spec.feature_sets):
        found = [p for target in spec.targets or (None,)
                 for p in feature_problems(names, target, f"grid.feature_sets[{i}]")]
        problems.extend(dict.fromkeys(found))  # a problem of the names alone once, not per target
    for i, name in enumerate(spec.modes):
        need(name in TRANSFER_MODES, f"grid.modes[{i}]: {TRANSFER_MODES.unknown_message(name)}")
    problems.extend(_architecture_mode_problems(spec))
    for i, name in enumerate(spec.baselines):
        need(name in BASELINES, f"grid.baselines[{i}]: {BASELINES.unknown_message(name)}")
        cap = BASELINES.get(name).max_history if name in BASELINES else None  # e.g. arima's
        for size in [s for s in spec.target_sizes if cap and s and s > cap]:
            problems.append(f"grid.baselines[{i}]: {name} fits at most {cap} history points but "
                            f"grid.target_sizes has {size}; drop {name} or use sizes <= {cap}")
    need(len(spec.seeds) > 0, "grid.seeds: at least one seed is needed")
    need(len(set(spec.seeds)) == len(spec.seeds), f"grid.seeds: duplicates in {list(spec.seeds)}")
    problems.extend(seed_problems(spec))
    need(spec.model.head in HEADS, f"grid.model.head: {HEADS.unknown_message(spec.model.head)}")
    need(spec.model.units > 0, f"grid.model.units: must be positive, got {spec.model.units}")
    need(spec.model.layers is None or spec.model.layers > 0,
         f"grid.model.layers: must be positive, got {spec.model.layers}")
    need(0 <= spec.model.dropout < 1, f"grid.model.dropout: must be in [0, 1), got {spec.model.dropout}")
    need(0 <= spec.model.recurrent_dropout < 1,
         f"grid.model.recurrent_dropout: must be in [0, 1), got {spec.model.recurrent_dropout}")
    split = spec.split
    need(split.lookback > 0, f"grid.split.lookback: must be positive, got {split.lookback}")
    need(split.horizon > 0, f"grid.split.horizon: must be positive, got {split.horizon}")
    need(split.test_size is None or split.test_size > 0,
         f"grid.split.test_size: must be positive, got {split.test_size}")
    need(0 < split.test_fraction < 1, f"grid.split.test_fraction: must be in (0, 1), got {split.test_fraction}")
    need(0 < split.val_fraction < 1, f"grid.split.val_fraction: must be in (0, 1), got {split.val_fraction}")
    need(split.season_length > 0, f"grid.split.season_length: must be positive, got {split.season_length}")
    need(split.fill_gaps in (None, "interpolate"),
         f"grid.split.fill_gaps: {split.fill_gaps!r}; use null (gaps are errors) or 'interpolate'")
    for prefix, training in (("grid.training", spec.training), ("grid.pretrain.training", spec.pretrain.training)):
        need(training.optimizer in OPTIMIZERS, f"{prefix}.optimizer: {OPTIMIZERS.unknown_message(training.optimizer)}")
        need(training.loss in LOSSES, f"{prefix}.loss: {LOSSES.unknown_message(training.loss)}")
        need(training.batch_size > 0, f"{prefix}.batch_size: must be positive, got {training.batch_size}")
        need(training.max_epochs > 0, f"{prefix}.max_epochs: must be positive, got {training.max_epochs}")
        need(training.learning_rate > 0, f"{prefix}.learning_rate: must be positive, got {training.learning_rate}")
        need(training.patience >= 0, f"{prefix}.patience: must be >= 0, got {training.patience}")
        need(training.min_steps >= 0, f"{prefix}.min_steps: must be >= 0 optimizer steps (0: max_epochs "
                                      f"alone), got {training.min_steps}")
    problems.extend(_axis_problems(spec))
    problems.extend(protocol_problems(spec))
    problems.extend(subgrid_problems(spec))
    for size_index, size, lookback, protocol in _sized_protocols(spec):
        train_part = protocol.training_points(size, split.val_fraction)
        need(train_part > lookback + split.horizon,
             f"grid.target_sizes[{size_index}]: size {size} leaves {train_part} training points "
             f"under protocol {protocol.name!r}, fewer than lookback {lookback} + horizon "
             f"{split.horizon} + 1; raise the size or lower split.lookback")
        need(protocol.max_target_size is None or size <= protocol.max_target_size,
             f"grid.target_sizes[{size_index}]: size {size} is larger than protocol "
             f"{protocol.name!r} allows ({protocol.max_target_size}: its fixed training part); "
             f"choose a size <= {protocol.max_target_size}")
    transfer = spec.transfer
    need(transfer.partial_frozen_layers >= 0,
         f"grid.transfer.partial_frozen_layers: must be >= 0, got {transfer.partial_frozen_layers}")
    need(0 < transfer.probe_epochs_fraction < 1,
         f"grid.transfer.probe_epochs_fraction: must be in (0, 1), got {transfer.probe_epochs_fraction}")
    need(transfer.body_lr_factor >= 0,
         f"grid.transfer.body_lr_factor: must be >= 0 (0: the body stays as loaded), got {transfer.body_lr_factor}")
    return problems


def _sized_protocols(spec: GridSpec) -> list[tuple[int, int, int, object]]:
    """``(index in grid.target_sizes, size, longest lookback, protocol)`` for every size and
    protocol a (sub-)grid pairs: a sub-grid's sizes are checked against its own lookbacks only, so
    a short size in one sub-grid and a long lookback in another are not a problem. Each pair once."""
    try:
        subs = subgrid_specs(spec)
    except SpecError:  # a broken sub-grid is reported by subgrid_problems; check the grid as declared
        subs = [spec]
    found: dict[tuple[int, str], tuple[int, int, int, object]] = {}
    for sub in subs:
        lookback = max(axis_values(sub, "lookbacks"))
        protocols = [PROTOCOLS.get(p) for p in axis_values(sub, "protocols") if p in PROTOCOLS]
        for size in sub.target_sizes:
            if size is None or size <= 0 or size not in spec.target_sizes:
                continue
            for protocol in protocols:
                key = (size, protocol.name)
                if key not in found or found[key][2] < lookback:
                    found[key] = (spec.target_sizes.index(size), size, lookback, protocol)
    return sorted(found.values(), key=lambda item: (item[0], item[3].name))


#: The largest seed NumPy and TensorFlow accept (``seed_everything`` seeds both): seeds are 0..2**32-1.
MAX_SEED = 2**32 - 1


def seed_problems(spec: GridSpec) -> list[str]:
    """Seeds (``seeds``, ``pretrain.seeds``) that are not whole numbers in 0..:data:`MAX_SEED`:
    refused here, before a cell fails on them in ``seed_everything``. A value that is not a number
    at all was already reported when the YAML was read."""
    problems = []
    for path, seeds in (("grid.seeds", spec.seeds), ("grid.pretrain.seeds", spec.pretrain.seeds)):
        for i, seed in enumerate(seeds):
            whole = isinstance(seed, int) and not isinstance(seed, bool)
            if seed is not None and not (whole and 0 <= seed <= MAX_SEED):
                problems.append(f"{path}[{i}]: {seed!r} is not a valid seed; use a whole number from 0 to "
                                f"{MAX_SEED} (2**32 - 1)")
    return problems


def _axis_problems(spec: GridSpec) -> list[str]:
    """Problems of the normalisation, lookback and forecast axes, the learning-rate schedules and
    the pretraining options, and of the combinations that cannot work."""
    problems: list[str] = []
    for axis, registry in ((AXIS["normalisations"], NORMALISATIONS), (AXIS["forecasts"], FORECASTS)):
        values = getattr(spec, axis.field)
        if values:
            problems.extend(f"grid.{axis.field}[{i}]: {registry.unknown_message(v)}"
                            for i, v in enumerate(values) if v not in registry)
            if len(set(values)) != len(values):
                problems.append(f"grid.{axis.field}: duplicates in {list(values)}")
        elif axis.value_of(spec) not in registry:
            problems.append(f"grid.{'.'.join(axis.cell_path)}: {registry.unknown_message(axis.value_of(spec))}")
    for i, lookback in enumerate(spec.lookbacks):
        if lookback < 1:
            problems.append(f"grid.lookbacks[{i}]: must be positive, got {lookback}")
    if len(set(spec.lookbacks)) != len(spec.lookbacks):
        problems.append(f"grid.lookbacks: duplicates in {list(spec.lookbacks)}")
    if spec.split.test_stride < 1:
        problems.append(f"grid.split.test_stride: must be at least 1, got {spec.split.test_stride}")
    for prefix, training in (("grid.training", spec.training), ("grid.pretrain.training", spec.pretrain.training)):
        if training.lr_schedule not in LR_SCHEDULES:
            problems.append(f"{prefix}.lr_schedule: {LR_SCHEDULES.unknown_message(training.lr_schedule)}")
    pretrain = spec.pretrain
    if pretrain.sampling not in ("spread", "last"):
        problems.append(f"grid.pretrain.sampling: {pretrain.sampling!r} is unknown. Known: last, spread.")
    if not pretrain.seeds or len(set(pretrain.seeds)) != len(pretrain.seeds):
        problems.append(f"grid.pretrain.seeds: at least one seed, no duplicates; got {list(pretrain.seeds)}")
    for name in ("lookback", "horizon"):
        value = getattr(pretrain, name)
        if value is not None and value < 1:
            problems.append(f"grid.pretrain.{name}: must be positive (or null: the cells'), got {value}")
    norms = [n for n in axis_values(spec, "normalisations") if n in NORMALISATIONS]
    forecasts = [f for f in axis_values(spec, "forecasts") if f in FORECASTS]
    stateful = [r for r in spec.regimes if r in REGIMES and REGIMES.get(r).stateful]
    windowed = [n for n in norms if NORMALISATIONS.get(n).window]
    recursive = [f for f in forecasts if FORECASTS.get(f).one_step]
    if stateful and windowed:
        problems.append(f"grid.regimes: the stateful regime reads the series in chunks and cannot use "
                        f"the per-window normalisation {', '.join(windowed)}; use global or minmax")
    if recursive and stateful:
        problems.append("grid.forecasts: a recursive forecast needs the stateless regime")
    if recursive and any(spec.feature_sets):
        problems.append("grid.forecasts: a recursive forecast feeds its own predictions back and cannot "
                        "know future input features; use feature_sets: [[]] or forecast: direct")
    head_modes = [m for m in spec.modes if m in TRANSFER_MODES and TRANSFER_MODES.get(m).load_head]
    model_horizons = {FORECASTS.get(f).model_horizon(spec.split.horizon) for f in forecasts}
    if head_modes and pretrain.horizon is not None and model_horizons and pretrain.horizon < max(model_horizons):
        problems.append(f"grid.pretrain.horizon: {pretrain.horizon} is shorter than the cells' model horizon "
                        f"{max(model_horizons)}, which {', '.join(head_modes)} forecast with the pretrained head "
                        "as it is; raise pretrain.horizon or drop those modes")
    return problems


def _architecture_mode_problems(spec: GridSpec) -> list[str]:
    """Transfer modes an architecture refuses (e.g. ``frozen`` for the linear forecasters, whose
    weights are all body), and pretrained shapes a window-sized architecture cannot load. A grid
    with ``subgrids`` is checked per sub-grid: only the pairs it will run."""
    if spec.subgrids:
        try:
            subs = subgrid_specs(spec)
        except SpecError:
            return []  # subgrid_problems reports a malformed sub-grid
        return [f"grid.subgrids[{k}]: {p}" for k, sub in enumerate(subs) for p in _architecture_mode_problems(sub)]
    problems: list[str] = []
    known = [(j, a, ARCHITECTURES.get(a)) for j, a in enumerate(spec.architectures) if a in ARCHITECTURES]
    modes = [(i, m, TRANSFER_MODES.get(m)) for i, m in enumerate(spec.modes) if m in TRANSFER_MODES]
    for j, architecture, facts in known:
        for i, mode, _ in modes:
            refusal = facts.refusal(architecture, mode)
            if refusal:
                problems.append(f"grid.modes[{i}]: {refusal}; or drop {mode!r} from grid.modes or "
                                f"grid.architectures[{j}] {architecture!r}")
    sized = [(a, facts) for _, a, facts in known if facts.window_sized]
    loading = [m for _, m, mode in modes if mode.load_body and any(f.refusal(a, m) is None for a, f in sized)]
    if not loading:
        return problems
    pretrain, sized_names = spec.pretrain, ", ".join(a for a, _ in sized)
    lookbacks = sorted(set(axis_values(spec, "lookbacks")))
    if pretrain.lookback is not None and lookbacks != [pretrain.lookback]:
        problems.append(f"grid.pretrain.lookback: {pretrain.lookback}, but {sized_names} weigh each "
                        f"of the cells' lookback steps ({', '.join(map(str, lookbacks))}), so {', '.join(loading)} "
                        "cannot load a body pretrained on another lookback; set pretrain.lookback to null")
    horizons = sorted({FORECASTS.get(f).model_horizon(spec.split.horizon)
                       for f in axis_values(spec, "forecasts") if f in FORECASTS})
    # a mode that starts from the head takes the body's first H outputs where they fit
    fits = pretrain.horizon is not None and all(h <= pretrain.horizon for h in horizons)
    trained = [m for _, m, facts in modes
               if m in loading and not facts.load_head and not (facts.start_from_head and fits)]
    if trained and pretrain.horizon is not None and horizons != [pretrain.horizon]:
        problems.append(f"grid.pretrain.horizon: {pretrain.horizon}, but {sized_names} have one weight "
                        f"column per forecast step ({', '.join(map(str, horizons))} here), so "
                        f"{', '.join(trained)} cannot load it; set pretrain.horizon to null (zeroshot "
                        "alone may use a longer pretrained horizon)")
    return problems


def subgrid_problems(spec: GridSpec) -> list[str]:
    """Problems of ``grid.subgrids``: keys that are not :data:`~benchmark.spec.axes.SUBGRID_AXES`,
    values the grid's own axes do not list (so the grid's checks cover every cell), and each
    sub-grid's own problems (e.g. a pretrained head too short for its modes)."""
    if not spec.subgrids:  # the grid itself: its own checks already ran, with its own paths
        return []
    problems: list[str] = []
    for index, subgrid in enumerate(spec.subgrids):
        path = f"grid.subgrids[{index}]"
        for key, value in subgrid.items():
            if key not in SUBGRID_AXES:
                problems.append(f"{path}.{key}: not an axis a sub-grid may narrow. Known: {', '.join(SUBGRID_AXES)}")
                continue
            values = [tuple(v) if isinstance(v, list) else v for v in (value if isinstance(value, list) else [value])]
            extra = [v for v in values if v not in axis_values(spec, key)]
            if extra:
                problems.append(f"{path}.{key}: {extra} not among the grid's {key} "
                                f"{list(axis_values(spec, key))}; add them to grid.{key} first")
    if problems:
        return problems
    try:
        subs = subgrid_specs(spec)
    except SpecError as exc:
        return list(exc.problems)
    for index, sub in enumerate(subs):
        problems.extend(f"grid.subgrids[{index}]: {p}" for p in _axis_problems(sub) + protocol_problems(sub))
    return problems


def protocol_problems(spec: GridSpec) -> list[str]:
    """Problems of the protocol axis (``split.protocol`` / ``protocols``) and the combinations a
    protocol cannot run: protocols scoring different test segments in one grid, reversed lags with
    a recursive forecast or the stateful regime, an unknown ``training.monitor``."""

    problems: list[str] = []
    names = axis_values(spec, "protocols")
    paths = [f"grid.protocols[{i}]" for i in range(len(names))] if spec.protocols else ["grid.split.protocol"]
    problems.extend(f"{path}: {PROTOCOLS.unknown_message(name)}"
                    for path, name in zip(paths, names) if name not in PROTOCOLS)
    if len(set(names)) != len(names):
        problems.append(f"grid.protocols: duplicates in {list(names)}")
    for prefix, training in (("grid.training", spec.training), ("grid.pretrain.training", spec.pretrain.training)):
        if training.monitor not in MONITORS:
            problems.append(f"{prefix}.monitor: {training.monitor!r} is unknown. Known: {', '.join(MONITORS)}.")
    known = [PROTOCOLS.get(n) for n in names if n in PROTOCOLS]
    segments = {p.test_segment for p in known}
    if len(segments) > 1:
        problems.append(f"grid.protocols: {', '.join(p.name for p in known)} score different test "
                        "segments and cannot share a grid's ranks and baselines; run them as separate grids")
    reversed_lags = [p.name for p in known if p.lags != "oldest_first"]
    recursive = [f for f in axis_values(spec, "forecasts") if f in FORECASTS
                 and FORECASTS.get(f).one_step]
    stateful = [r for r in spec.regimes if r in REGIMES and REGIMES.get(r).stateful]
    if reversed_lags and (recursive or stateful):
        problems.append(f"grid.protocols: {', '.join(reversed_lags)} feeds the windows newest first, "
                        "which a recursive forecast or the stateful regime cannot; use the stateless "
                        "regime and forecast: direct")
    problems.extend(_pinned_axis_problems(spec, known))
    return problems


def _pinned_axis_problems(spec: GridSpec, protocols: list) -> list[str]:
    """An axis value a protocol would silently overwrite: a forecast other than the one it requires
    (``split.forecast`` or ``forecasts``), a normalisation other than the one it pins
    (``normalisations``). Each would run as the pinned value under a label that says otherwise."""
    problems: list[str] = []
    for protocol in protocols:
        # a single normalisation (model.normalisation) is the protocol's to pin: only an axis is refused
        pins = ((AXIS["forecasts"], axis_values(spec, "forecasts"), protocol.forecast),
                (AXIS["normalisations"], spec.normalisations, protocol.model.get("normalisation")))
        for axis, values, pinned in pins:
            others = [v for v in values if pinned is not None and v != pinned]
            if others:
                where = f"grid.{axis.field}" if getattr(spec, axis.field) else f"grid.{'.'.join(axis.cell_path)}"
                problems.append(f"{where}: protocol {protocol.name} pins {axis.column} {pinned!r}, so "
                                f"{', '.join(map(repr, others))} would run as {pinned!r}; drop "
                                f"{'them' if len(others) > 1 else 'it'} or use another protocol")
    return problems


def validate_grid(spec: GridSpec, label: str = "grid spec") -> GridSpec:
    problems = grid_problems(spec)
    if problems:
        raise SpecError(problems, source=label)
    return spec
