"""A pretraining's live progress file: where it is, and the epoch hook that writes it.

A pretraining writes its epoch and losses to ``<local>/progress/pretrain/<key>.json`` as it trains
(atomically, so a reader never sees half a file); ``tlbench run``'s console polls the folder
(:func:`pretrain_progress_dir`) to show a pretraining that an engine reports no stages for.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

from benchmark.spec.files import atomic_write
from benchmark.spec.settings import Settings

log = logging.getLogger(__name__)


def pretrain_progress_dir(settings: Settings) -> Path:
    """The folder of every pretraining's progress file (:meth:`Settings.local_dir`)."""
    return settings.local_dir("progress", "pretrain")


def pretrain_progress_path(settings: Settings, key: str) -> Path:
    """Where a pretraining writes its epoch and validation loss as it trains (JSON, atomic)."""
    return pretrain_progress_dir(settings) / f"{key}.json"


def epoch_writer(settings: Settings, key: str, max_epochs: int) -> Callable[[int, dict], None]:
    """An ``on_epoch_end(epoch, logs)`` hook that writes the pretraining's progress file; called
    with epoch -1 when it starts and with ``logs["finished"]`` when it ends."""
    path = pretrain_progress_path(settings, key)
    started: list[float] = []

    def on_epoch_end(epoch: int, logs: dict) -> None:
        now = time.time()
        if not started:
            started.append(now)
        done = epoch + 1
        record = {"key": key, "epoch": done, "max_epochs": max_epochs, "updated": now,
                  "started": started[0], "left_s": pretrain_left_s(started[0], now, done, max_epochs),
                  "loss": _number(logs.get("loss")), "val_loss": _number(logs.get("val_loss")),
                  "finished": bool(logs.get("finished"))}
        try:
            atomic_write(path, json.dumps(record))
        except OSError:  # progress is a nicety: never fail a pretraining over it
            log.debug("could not write %s", path, exc_info=True)

    return on_epoch_end


def pretrain_left_s(started: float, now: float, epochs_done: int, max_epochs: int) -> float | None:
    """Seconds a pretraining has left at its epochs' mean pace so far (an upper bound: early
    stopping may end it sooner); None before its first epoch has ended."""
    if epochs_done <= 0:
        return None
    return max(0.0, (now - started) / epochs_done * (max_epochs - epochs_done))


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
