"""What planning needs to know about every registered name, without importing TensorFlow.

Validating a grid (``tlbench validate``, ``run_grid``'s plan, the no-op rerun of a finished grid)
asks only *whether* a name exists and a few facts about it (does this transfer mode load a
pretrained body? can this architecture run statefully?). The registries that hold the builders
(:mod:`benchmark.models`, :mod:`benchmark.models.compile`, :mod:`benchmark.training`) import Keras,
which costs 6-25 s; this module holds the same names and facts as plain data, so planning costs
none of it. ``tests/test_catalog.py`` checks every entry here against the heavy registries (names
and facts), so the two cannot drift: add a name there, the test says to add it here.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.registry import Registry


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
#: modes and the stateful regime. One text for this catalogue and the models' registry.
_LINEAR_ALL_BODY = ("a linear forecaster is one lookback -> horizon map and has no head apart from it "
                    "(its weights are all body), so")
_LINEAR_FIX = "use finetune or zeroshot to transfer its M4 weights, scratch otherwise"
LINEAR_REFUSED_MODES: tuple[tuple[str, str], ...] = (
    ("frozen", f"{_LINEAR_ALL_BODY} freezing the body leaves nothing to train; {_LINEAR_FIX}"),
    ("lp_ft", f"{_LINEAR_ALL_BODY} its linear-probe phase has nothing to train; {_LINEAR_FIX}"),
    ("partial", f"{_LINEAR_ALL_BODY} it has no stack of body layers to freeze the first k of; {_LINEAR_FIX}"),
)
LINEAR_WHY_NOT_STATEFUL = ("it maps a fixed window of lookback steps and has no recurrent state to carry "
                           "between calls; use the stateless regime")
_LINEAR = ArchitectureFacts(False, LINEAR_WHY_NOT_STATEFUL, LINEAR_REFUSED_MODES, window_sized=True)


@dataclass(frozen=True)
class TransferModeFacts:
    load_body: bool
    load_head: bool = False
    trains: bool = True  # has training phases (``zeroshot`` has none)


@dataclass(frozen=True)
class RegimeFacts:
    stateful: bool


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
    "partial": TransferModeFacts(True), "scratch": TransferModeFacts(False),
    "zeroshot": TransferModeFacts(True, load_head=True, trains=False)})
LOSSES = _registry("loss", {"huber": True, "mae": True, "mse": True})
OPTIMIZERS = _registry("optimizer", {"adam": True, "adamw": True, "nadam": True, "sgd": True})
REGIMES = _registry("regime", {"stateful": RegimeFacts(True), "stateless": RegimeFacts(False)})
LR_SCHEDULES = _registry("learning-rate schedule", {"constant": True, "cosine": True, "plateau": True})
MONITORS = ("val_loss", "loss")  # what early stopping may watch (benchmark.training.MONITORS)
