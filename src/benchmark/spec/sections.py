"""The sections of a spec: data, split, model, training, transfer and pretraining (frozen
dataclasses with their defaults). :mod:`benchmark.spec.tree` assembles them into grid and cell specs.

Semantic checks that need the registries (known architectures, modes, sources) live in
:mod:`benchmark.run.validation`; these classes only know shapes and types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from benchmark.spec.identity import KEY_NEUTRAL_DEFAULT


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
    lr_schedule: str = "constant"  # a name in benchmark.models.training.LR_SCHEDULES
    deterministic: bool = True  # TF op determinism: bit-reproducible runs; false trades that for speed
    monitor: str = "val_loss"  # what early stopping watches: val_loss, or loss (the notebook protocol's flaw)
    # fair budget across target sizes: epochs raised so training may run at least this many optimizer
    # steps (early stopping on the monitor still ends it); 0: max_epochs alone
    min_steps: int = field(default=0, metadata=KEY_NEUTRAL_DEFAULT)

    def budget_epochs(self, n_windows: int, batch_size: int) -> int:
        """The epochs a run over ``n_windows`` training windows may take: ``max_epochs``, raised to
        ``ceil(min_steps / ceil(n_windows / batch_size))`` (training and the dispatch cost share it)."""
        steps_per_epoch = max(1, -(-int(n_windows) // max(1, int(batch_size))))
        return max(int(self.max_epochs), -(-int(self.min_steps) // steps_per_epoch))


@dataclass(frozen=True)
class TransferSpec:
    """Knobs of the transfer modes that have any (``partial``, ``lp_ft``, ``ft_from_head``) and the
    pretrained pin."""

    partial_frozen_layers: int = 1  # partial: freeze the first k body layers
    probe_epochs_fraction: float = 0.5  # lp_ft: share of max_epochs spent on the linear probe
    finetune_lr_factor: float = 0.1  # lp_ft: learning-rate multiplier once unfrozen
    pretrained_version: str | None = None  # registry version or alias to pin; None: build/reuse
    # ft_from_head: the body layers train at training.learning_rate x this, the head at the full
    # rate (discriminative fine-tuning; 0 keeps the body as loaded). Read by no other mode, so
    # keys stay as they were while it holds its default.
    body_lr_factor: float = field(default=0.1, metadata=KEY_NEUTRAL_DEFAULT)


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
