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
    "gru": ArchitectureFacts(), "lstm": ArchitectureFacts(), "stacked_lstm": ArchitectureFacts()})
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
