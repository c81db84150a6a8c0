"""A model scored on its source's own protocol, and the result recorded: the pretraining stage's
check of a fresh body (:func:`score_on_source`), ``tlbench evaluate-source``'s model lookup by
file or registry reference (:func:`load_source_model`) and its records (:func:`record_source_scores`
on the model's MLflow run; :func:`record_source_evaluation` and :func:`record_baseline_on_source`
as leaderboard rows of kind ``source``), and the reference methods every body is compared with
(:func:`ensure_source_references`).

The protocol itself (forecast every series, sMAPE, MASE, OWA) is pure and lives in
:mod:`benchmark.forecasters.source`; this module adds what a run needs around it: models by
reference, MLflow and the leaderboard.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from benchmark import __version__
from benchmark.data.sources import parse_options, source_label
from benchmark.forecasters.metrics import METRIC_NAMES
from benchmark.forecasters.source import evaluate_source, source_metrics
from benchmark.forecasters.statistical import METHODS as STATISTICAL_METHODS
from benchmark.forecasters.statistical import StatisticalForecaster
from benchmark.forecasters.trained import ModelForecaster
from benchmark.results.leaderboard import Leaderboard
from benchmark.run.jobs import PretrainJob, RunContext, now
from benchmark.spec.errors import TlbenchError
from benchmark.spec.identity import spec_hash
from benchmark.spec.sections import DataSpec, ModelSpec, PretrainSpec
from benchmark.spec.settings import Settings
from benchmark.tracking.tags import host_and_device
from benchmark.tracking.tracker import Tracker

log = logging.getLogger(__name__)

#: Sources with a published protocol to score a pretrained body on: ``(horizon, season length)``.
SOURCE_PROTOCOLS = {("m4", "Hourly"): (48, 24)}

#: The statistical methods every body pretrained on a whole source is compared with in the report's
#: source section: MSTL, the strongest measured on M4 Hourly (OWA 0.604, docs/models.md).
SOURCE_REFERENCES = ("mstl",)


# --------------------------------------------------------------------------- a fresh body


def score_on_source(job: PretrainJob, settings: Settings, tracker: Tracker, model, run_id: str) -> None:
    """Score a freshly pretrained body on its source's own protocol (M4 Hourly: 48 steps, all
    series), log ``m4_smape``/``m4_mase``/``m4_owa`` on its run and write ``source`` rows (the body,
    seasonal naive, Naive2 and, once per results location, MSTL: :data:`SOURCE_REFERENCES`)
    so nobody transfers a body unaware. A source without a protocol, or a subset, is skipped."""
    options, _ = parse_options(job.pretrain.source)
    protocol = SOURCE_PROTOCOLS.get((job.pretrain.source.source, getattr(options, "group", None)))
    if protocol is None or job.pretrain.max_series is not None:
        return
    horizon, season = protocol
    try:
        forecaster = ModelForecaster(model, normalisation=job.model.normalisation)
        scored = evaluate_source(job.pretrain.source, "pretrained", settings.data_dir, forecaster,
                                 protocol=(horizon, season), allow_download=settings.allow_download)
        reference = evaluate_source(job.pretrain.source, "seasonal_naive", settings.data_dir,
                                    protocol=(horizon, season), allow_download=settings.allow_download)
        scored.update({f"{key}_seasonal_naive": reference[key] for key in ("smape", "mase", "owa")})
        tracker.log_metrics(run_id, source_metrics(scored))
        tracker.set_tags(run_id, {"m4_eval": forecaster.strategy(horizon)})
        Leaderboard(settings.results).append(source_rows(job, scored, run_id))
        ensure_source_references(settings, job.pretrain.source, protocol)  # logs its own failure
    except Exception:  # noqa: BLE001 - the body is trained and registered; its score can be redone
        log.warning("could not score the pretrained body %s on its source", job.key, exc_info=True)


def source_rows(job: PretrainJob, scored: dict, run_id: str | None) -> list[dict]:
    """Leaderboard rows of kind ``source``: the body and the seasonal naive and Naive2 forecasts
    on the source's protocol (sMAPE, MASE, OWA; the other metrics NaN), keyed by the body."""
    host, device = host_and_device()
    base = {"grid_id": job.context.grid_id, "grid": job.context.grid, "run_id": job.context.run_id,
            "run_date": job.context.run_date, "kind": "source", "target": source_label(job.pretrain.source),
            "target_dataset": job.pretrain.source.source, "target_column": None,
            "target_size": int(scored["n_series"]), "lookback": int(job.lookback),
            "horizon": int(scored["horizon"]), "git_commit": job.context.git_commit,
            "data_fingerprint": job.key, "package_version": __version__, "regime": "stateless",
            "features": "y", "normalisation": job.model.normalisation, "forecast": "direct",
            "pretrain_seed": int(job.seed), "train_seconds": 0.0, "epochs": 0, "trainable_params": 0,
            "frozen_params": 0, "mlflow_run_id": None, "model_uri": None, "pretrained_key": job.key,
            "pretrained_version": None, "worker_host": host, "device": device,
            "started_at": now(), "finished_at": now(), **{m: float("nan") for m in METRIC_NAMES}}
    entries = [(job.model.architecture, "pretrained", scored["smape"], scored["mase"], scored["owa"], run_id),
               ("baseline", "naive2", scored["smape_naive2"], scored["mase_naive2"], 1.0, None)]
    if "smape_seasonal_naive" in scored:
        entries.append(("baseline", "seasonal_naive", scored["smape_seasonal_naive"],
                        scored["mase_seasonal_naive"], scored["owa_seasonal_naive"], None))
    return [{**base, "cell_key": f"source-{job.key}-{mode}", "architecture": architecture, "mode": mode,
             "seed": int(job.seed), "smape": float(smape), "mase": float(mase), "owa": float(owa),
             "mlflow_run_id": run}
            for architecture, mode, smape, mase, owa, run in entries]


# --------------------------------------------------------------------------- a model by reference


@dataclass(frozen=True)
class SourceModel:
    """A pretrained model found by :func:`load_source_model`: ``label`` says which (a path or
    ``models:/NAME/VERSION``); ``run_id`` is the MLflow run that trained it, when known."""

    model: Any
    label: str
    run_id: str | None
    normalisation: str = "global"


_REGISTRY_REF = re.compile(r"^(?:models:/)?(?P<name>[^/@\s]+)(?:@(?P<alias>[^/@\s]+)|/(?P<version>[^/@\s]+))$")
_REF_FORMS = ("a .keras file (or its folder, as under <results>/pretrained/<key>/), "
              "models:/NAME@ALIAS, models:/NAME/VERSION or NAME@ALIAS")


def load_source_model(ref: str, settings: Settings) -> SourceModel:
    """The model ``ref`` names: a ``.keras`` file or a folder holding ``model.keras``, or a
    registry reference (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``NAME@ALIAS``).

    A file is checksum-verified against its ``meta.json`` (tlbench's pretrained cache) or its
    ``<file>.sha256``; one with neither is loaded unverified, with a warning. The run id comes from
    ``meta.json``'s ``mlflow_run_id`` or the registry version's run. Raises TlbenchError for a
    missing file, an unknown reference or a model that will not load.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        path = path / "model.keras"
        if not path.is_file():
            raise TlbenchError(f"--model {ref}: the folder has no model.keras. Pass {_REF_FORMS}.")
    if path.is_file():
        return _load_file(path)
    if ref.endswith(".keras"):
        raise TlbenchError(f"--model {ref}: no such file. Pretrained models are cached under "
                           f"<results>/pretrained/<key>/model.keras (results: {settings.results}).")
    match = _REGISTRY_REF.match(ref)
    if match is None or not (ref.startswith("models:/") or match["alias"]):
        raise TlbenchError(f"--model {ref!r} is neither an existing file nor a registry reference. "
                           f"Pass {_REF_FORMS} (e.g. models:/pretrained-lstm-m4-hourly@current).")
    return _load_registered(match["name"], match["alias"] or match["version"], settings)


def _load_file(path: Path) -> SourceModel:
    from benchmark.models.pretrain import checksum_path, load_pretrained  # Keras: only to load a model

    meta_path = path.with_name("meta.json")
    meta = json.loads(meta_path.read_text()) if path.name == "model.keras" and meta_path.is_file() else {}
    if meta.get("sha256"):
        model = load_pretrained(path, meta["sha256"])
    elif checksum_path(path).is_file():
        model = load_pretrained(path)
    else:
        import keras  # loaded only to load a model file

        import benchmark.models  # noqa: F401 - Keras; registers tlbench's custom layers (Rescale)

        log.warning("%s has no meta.json or %s: loading it unverified", path, checksum_path(path).name)
        try:
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:  # noqa: BLE001 - any load failure is the user's file
            raise TlbenchError(f"--model {path} does not load as a Keras model "
                               f"({type(exc).__name__}: {exc}).") from exc
    return SourceModel(model, str(path), meta.get("mlflow_run_id") or None,
                       meta.get("normalisation") or model_normalisation(model))


def _load_registered(name: str, version_or_alias: str, settings: Settings) -> SourceModel:
    if settings.tracking_uri.startswith("sqlite:///"):
        store = Path(settings.tracking_uri.removeprefix("sqlite:///"))
        if not store.is_file():
            raise TlbenchError(f"--model models:/{name}: there is no MLflow store at {store}, so no "
                               "registered model. Pass the store the model was registered in with "
                               "--tracking-uri (or $MLFLOW_TRACKING_URI), or a .keras file.")
    tracker = Tracker(settings, settings.experiment or "tlbench-evaluate")
    version, run_id = tracker.resolve_model_version(name, version_or_alias)
    model = tracker.load_registered_keras(name, version)
    return SourceModel(model, f"models:/{name}/{version}", run_id or None, model_normalisation(model))


def model_normalisation(model: Any) -> str:
    """The normalisation a model was trained with, as far as the model itself tells: its window
    stage's (``last_value``, ``window``), else ``global`` (a ``minmax`` body is known only from
    its ``meta.json``)."""
    from benchmark.models.architectures import window_stage_of  # Keras: only for a loaded model

    return window_stage_of(model) or "global"


# --------------------------------------------------------------------------- recording


def record_source_evaluation(settings: Settings, loaded: SourceModel, forecaster: ModelForecaster,
                             scored: dict, reference: dict) -> str:
    """``tlbench evaluate-source --model``'s result as leaderboard rows of kind ``source`` (grid
    ``evaluate-source``): the model (``loaded``) and seasonal naive (``reference``) and Naive2 on
    the protocol. Returns the results location."""
    stamp = now()
    context = RunContext("evaluate-source", "evaluate-source", f"{stamp:%Y%m%dT%H%M%S}", f"{stamp:%Y-%m-%d}",
                         "tlbench-evaluate", None, None)
    architecture = re.sub(r"^pretrained_", "", str(getattr(loaded.model, "name", "model")))
    job = PretrainJob(spec_hash("evaluate-source", loaded.label), ModelSpec(architecture=architecture,
                      normalisation=loaded.normalisation), PretrainSpec(source=DataSpec("m4", {"group": "Hourly"})),
                      forecaster.lookback, forecaster.model_horizon, context)
    scored = {**scored, **{f"{key}_seasonal_naive": reference[key] for key in ("smape", "mase", "owa")}}
    Leaderboard(settings.results).append(source_rows(job, scored, loaded.run_id))
    return settings.results


def record_source_scores(settings: Settings, run_id: str, result: dict, strategy: str) -> dict[str, float]:
    """Log ``result``'s sMAPE, MASE and OWA as :data:`benchmark.forecasters.source.SOURCE_METRICS` on MLflow run ``run_id``
    (and how the forecast was made as the tag ``m4_eval``); returns what was logged."""
    metrics = source_metrics(result)
    tracker = Tracker(settings, settings.experiment or "tlbench-evaluate")
    try:
        tracker.log_metrics(run_id, metrics)
        tracker.set_tags(run_id, {"m4_eval": f"{result['source']} {result['horizon']}-step test, "
                                             f"{result['n_series']} series, {strategy}"})
    except Exception as exc:  # noqa: BLE001 - an MLflow error here is a wrong store or run id
        raise TlbenchError(f"could not record the scores on MLflow run {run_id} at "
                           f"{settings.tracking_uri} ({type(exc).__name__}: {exc}). Pass the "
                           "--tracking-uri the model was trained with.") from exc
    return metrics


def record_baseline_on_source(settings: Settings, source: DataSpec, result: dict) -> str:
    """``tlbench evaluate-source --method NAME``'s full-protocol result as one leaderboard row of
    kind ``source`` (grid ``evaluate-source``, architecture ``baseline``, mode NAME), which every
    grid report's source section shows next to the pretrained bodies. Returns the results location."""
    stamp, method = now(), result["method"]
    context = RunContext("evaluate-source", "evaluate-source", f"{stamp:%Y%m%dT%H%M%S}", f"{stamp:%Y-%m-%d}",
                         "tlbench-evaluate", None, None)
    key = spec_hash("evaluate-source", method, source, result["n_series"], __version__)
    job = PretrainJob(key, ModelSpec(architecture="baseline", normalisation="none"), PretrainSpec(source=source),
                      1, int(result["horizon"]), context)
    # source_rows gives the "pretrained" entry the method's scores; that entry is the method's row
    rows = [{**row, "mode": method, "cell_key": f"source-{key}-{method}", "pretrain_seed": None}
            for row in source_rows(job, result, None) if row["mode"] == "pretrained"]
    Leaderboard(settings.results).append(rows)
    return settings.results


def ensure_source_references(settings: Settings, source: DataSpec, protocol: tuple[int, int],
                             methods: Sequence[str] = SOURCE_REFERENCES) -> list[str]:
    """Score each of ``methods`` on ``source``'s full protocol and record it as
    :func:`record_baseline_on_source` does, unless the results already hold its row (so once per
    results location: MSTL takes about a minute on M4 Hourly with 2 processes). Called after a
    body is scored on its source, so the report can say whether the body beats them without
    anyone running ``evaluate-source --method`` first. Never raises (the body is scored and
    recorded already): a failure is logged. Returns the methods scored now.

    Two bodies pretrained at once (``--concurrency 2``) both get here: the check and the scoring
    hold ``<results>/leases/source-references.lock`` (an exclusive ``flock``, given back when the
    file closes, also if the process dies), so the second finds the first's rows instead of
    scoring MSTL again beside it."""
    scored = []
    try:
        lock_path = settings.local_dir("leases", "source-references.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            have = Leaderboard(settings.results).read(grid="evaluate-source", kind="source",
                                                      architecture="baseline", target=[source_label(source)])
            for method in (m for m in methods if have.empty or m not in set(have["mode"])):
                fitted = (StatisticalForecaster(method, protocol[1], workers=2,
                                                fit_seconds=settings.baseline_fit_seconds)
                          if method in STATISTICAL_METHODS else None)  # the grid's fit limit, not a default
                result = evaluate_source(source, method, settings.data_dir, fitted, protocol=protocol,
                                         allow_download=settings.allow_download)
                record_baseline_on_source(settings, source, result)
                scored.append(method)
    except Exception:  # noqa: BLE001 - a missing reference row costs a sentence, not the body
        log.warning("could not score the reference methods %s on %s", list(methods), source, exc_info=True)
    return scored
