"""Pretraining on the source, and the pretrained-model artefact: atomic save, checksum, safe load.

The pretrained model is built by the same :func:`~benchmark.models.build_model` as the cells (same
body, same head type), so the transfer modes can copy its layers by name. Its ``.keras`` file sits
next to ``<file>.sha256``; a file whose checksum does not match is never loaded.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import keras

from benchmark.models import build_model
from benchmark.models.regimes import Arrays
from benchmark.models.runtime import seed_everything
from benchmark.models.training import EpochHook, FitResult, fit
from benchmark.models.transfer import apply_freezing
from benchmark.spec.errors import TlbenchError
from benchmark.spec.files import atomic_write
from benchmark.spec.sections import ModelSpec, TrainingSpec

log = logging.getLogger(__name__)


def pretrain_model(spec: ModelSpec, training: TrainingSpec, train: Arrays, val: Arrays,
                   shape: tuple[int, int], seed: int,
                   on_epoch_end: EpochHook | None = None) -> tuple[keras.Model, FitResult]:
    """Train a fresh model of ``spec`` on source windows ``x [n, lookback, F] -> y [n, horizon]``,
    ``shape = (lookback, horizon)``.

    All layers train (early stopping on ``val``, best weights restored); ``on_epoch_end(epoch,
    logs)`` sees every epoch (the progress display's epoch and val_loss). Returns the model,
    compiled, and its FitResult.
    """
    lookback, horizon = shape
    x_train, y_train = train
    if x_train.ndim != 3 or x_train.shape[1] != lookback or y_train.ndim != 2 or y_train.shape[1] != horizon:
        raise TlbenchError(f"pretraining windows have shapes x {x_train.shape}, y {y_train.shape}; "
                           f"expected (n, {lookback}, n_features) and (n, {horizon}).")
    seed_everything(seed, training.deterministic)
    model = build_model(spec, lookback, x_train.shape[-1], horizon, name=f"pretrained_{spec.architecture}")
    apply_freezing(model, [], training, training.learning_rate)  # every layer trains
    result = fit(model, train, val, training, on_epoch_end=on_epoch_end)
    log.info("pretrained %s: %d epochs (best %d) in %.1f s", spec.architecture, result.epochs_run,
             result.best_epoch, result.seconds)
    return model, result


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_path(path: Path) -> Path:
    """Where the checksum of ``path`` lives: ``<path>.sha256`` (``sha256sum`` format)."""
    return path.with_name(path.name + ".sha256")


def save_pretrained(model: keras.Model, path: Path) -> str:
    """Save ``model`` to ``path`` (a ``.keras`` file) atomically, write ``<path>.sha256``; the sha256 hex.

    The model goes to a temporary file in the same folder first and is then renamed over
    ``path``, so a reader never sees a half-written file.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise TlbenchError(f"pretrained model path {path} must end with .keras.")
    digest: list[str] = []

    def save(temporary: Path) -> None:
        model.save(temporary)
        digest.append(file_sha256(temporary))

    atomic_write(path, save)
    sha = digest[0]
    atomic_write(checksum_path(path), f"{sha}  {path.name}\n")
    log.info("saved pretrained model %s (sha256 %s)", path, sha[:12])
    return sha


def load_pretrained(path: Path, expected_sha256: str | None = None) -> keras.Model:
    """Load a pretrained model after checking its sha256 (``expected_sha256``, else ``<path>.sha256``).

    Loads with ``safe_mode=True`` and ``compile=False``. A missing file, a missing checksum or a
    mismatch raises TlbenchError: the file is not loaded, and the next run pretrains it again.
    """
    path = Path(path)
    rebuild = (f"The next `tlbench run` pretrains it again (reusing nothing under {path.parent}); "
               f"to rebuild now, delete {path.parent} and run again.")
    if not path.is_file():
        raise TlbenchError(f"pretrained model {path} is missing. {rebuild}")
    expected = expected_sha256
    if expected is None:
        sidecar = checksum_path(path)
        if not sidecar.is_file():
            raise TlbenchError(f"pretrained model {path} has no checksum file {sidecar.name}, so it "
                               f"cannot be verified. {rebuild}")
        text = sidecar.read_text().split()
        expected = text[0] if text else ""
    actual = file_sha256(path)
    if actual != expected.strip().lower():
        raise TlbenchError(f"pretrained model {path} is corrupted: its sha256 is {actual[:12]}..., "
                           f"expected {expected[:12]}.... It will not be loaded. {rebuild}")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - a verified file that will not load is still rebuildable
        raise TlbenchError(f"pretrained model {path} passed its checksum but does not load "
                           f"({type(exc).__name__}: {exc}). {rebuild}") from exc
