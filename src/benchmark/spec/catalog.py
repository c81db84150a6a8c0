"""The facts of every registered name, declared once as plain data, so planning needs no TensorFlow.

Validating a grid (``tlbench validate``, ``run_grid``'s plan, the no-op rerun of a finished grid)
asks only *whether* a name exists and a few facts about it (does this transfer mode load a
pretrained body? can this architecture run statefully?). The registries that hold the builders
(:mod:`benchmark.models`, :mod:`benchmark.models.compile`, :mod:`benchmark.models.training`,
:mod:`benchmark.models.regimes`) import Keras, which costs 6-25 s. This module is where the names
and their facts are *declared*: a heavy registry takes its kind from here and, when it registers a
name, its facts from the entry of the same name (:func:`declared`), refusing a name declared
nowhere here. So the facts exist once; ``tests/test_catalog.py`` checks that every declared name
has a builder and every builder a declaration.

It also holds :class:`ForecasterFacts`, the capability facts every forecaster carries
(:mod:`benchmark.forecasters.contract`): plain data that the models layer, below the forecasters,
can state too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from benchmark.spec.errors import TlbenchError
from benchmark.spec.registry import Registry

F = TypeVar("F")


@dataclass(frozen=True)
class ForecasterFacts:
    """What a forecaster can do, stated on the forecaster itself (``forecaster.facts``).

    ``needs_training``: its ``fit`` is a training run (a neural network), not an estimate from
    the history; ``max_horizon``: the most steps it forecasts from one origin (None: any);
    ``max_history``: the most history points it accepts (None: any; grid validation refuses
    more); ``refused_modes``: (transfer mode, why it cannot run, with the fix) pairs.
    """

    needs_training: bool = False
    max_horizon: int | None = None
    max_history: int | None = None
    refused_modes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ArchitectureFacts:
    stateful_capable: bool = True
    why_not_stateful: str = ""
    refused_modes: tuple[tuple[str, str], ...] = ()  # (transfer mode, why it cannot run, with the fix)
    window_sized: bool = False  # weights shaped lookback x horizon: a pretrained one needs the cell's sizes

    def refusal(self, architecture: str, mode: str) -> str | None:
        """Why ``architecture`` refuses transfer ``mode`` (None when it accepts it)."""
        return mode_refusal(architecture, mode, self.refused_modes)


def mode_refusal(architecture: str, mode: str, refused_modes: tuple[tuple[str, str], ...]) -> str | None:
    """The one message for a transfer mode an architecture refuses (None when it accepts it)."""
    why = dict(refused_modes).get(mode)
    return None if why is None else f"architecture {architecture!r} cannot use transfer mode {mode!r}: {why}"


#: Why the linear forecasters (``nlinear``, ``dlinear``; docs/models.md) refuse some transfer
#: modes and the stateful regime (declared here only; the models' registry reads them).
_LINEAR_ALL_BODY = ("a linear forecaster is one lookback -> horizon map and has no head apart from it "
                    "(its weights are all body), so")
_LINEAR_FIX = "use finetune or zeroshot to transfer its M4 weights, scratch otherwise"
_LINEAR_REFUSED_MODES: tuple[tuple[str, str], ...] = (
    ("frozen", f"{_LINEAR_ALL_BODY} freezing the body leaves nothing to train; {_LINEAR_FIX}"),
    ("lp_ft", f"{_LINEAR_ALL_BODY} its linear-probe phase has nothing to train; {_LINEAR_FIX}"),
    ("partial", f"{_LINEAR_ALL_BODY} it has no stack of body layers to freeze the first k of; {_LINEAR_FIX}"),
)
_LINEAR_WHY_NOT_STATEFUL = ("it maps a fixed window of lookback steps and has no recurrent state to carry "
                           "between calls; use the stateless regime")
_LINEAR = ArchitectureFacts(False, _LINEAR_WHY_NOT_STATEFUL, _LINEAR_REFUSED_MODES, window_sized=True)


@dataclass(frozen=True)
class TransferModeFacts:
    load_body: bool
    load_head: bool = False  # uses the pretrained head as it is: the cells' horizon must fit in the body's
    trains: bool = True  # has training phases (``zeroshot`` has none)
    # trains from the pretrained head (its first H outputs) where the cell's horizon H fits in the
    # body's and the head is of the same kind; a fresh head otherwise (so validation needs no fit)
    start_from_head: bool = False


@dataclass(frozen=True)
class RegimeFacts:
    stateful: bool


def declared(registry: Registry[F], name: str) -> F:
    """The facts this catalogue declares for ``name`` in ``registry`` (one of its registries).

    A heavy registry calls this when it registers ``name``, so its facts are these; a name
    declared nowhere here is refused, since planning would not know it."""
    if name not in registry:
        raise TlbenchError(f"cannot register {registry.kind} {name!r}: benchmark.spec.catalog does not "
                           f"declare it (declared: {', '.join(registry.names())}). Add its facts to "
                           "benchmark.spec.catalog first: planning reads them there, without TensorFlow.")
    return registry.get(name)


def _registry(kind: str, items: dict) -> Registry:
    registry: Registry = Registry(kind)
    for name, facts in items.items():
        registry.add(name, facts)
    return registry


ARCHITECTURES = _registry("architecture", {
    "conv1d_lstm": ArchitectureFacts(False, "its causal Conv1D sees only the steps of the current call (zero "
                                            "padding before each chunk), so its output would depend on how "
                                            "the series is chunked; use lstm, gru or stacked_lstm for the "
                                            "stateful regime"),
    "dlinear": _LINEAR, "gru": ArchitectureFacts(), "lstm": ArchitectureFacts(), "nlinear": _LINEAR,
    "stacked_lstm": ArchitectureFacts()})
HEADS = _registry("head", {"dense": True, "recurrent": True})
TRANSFER_MODES = _registry("transfer mode", {
    "finetune": TransferModeFacts(True), "frozen": TransferModeFacts(True), "lp_ft": TransferModeFacts(True),
    "ft_from_head": TransferModeFacts(True, start_from_head=True),
    "partial": TransferModeFacts(True), "scratch": TransferModeFacts(False),
    "zeroshot": TransferModeFacts(True, load_head=True, trains=False)})
LOSSES = _registry("loss", {"huber": True, "mae": True, "mse": True})
OPTIMIZERS = _registry("optimizer", {"adam": True, "adamw": True, "nadam": True, "sgd": True})
REGIMES = _registry("regime", {"stateful": RegimeFacts(True), "stateless": RegimeFacts(False)})
LR_SCHEDULES = _registry("learning-rate schedule", {"constant": True, "cosine": True, "plateau": True})
#: What early stopping may watch (``training.monitor``): ``val_loss`` (held-out windows, the
#: default) or ``loss`` (the training loss: the ``notebook`` protocol's flaw, needs no validation).
MONITORS = ("val_loss", "loss")
