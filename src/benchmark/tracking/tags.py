"""What tlbench's MLflow runs carry, as plain data: tag names, flattened params without secrets, the host and device.

The tag names shared by every run tlbench writes (the UI filters on them, crash recovery reads
them); :func:`flatten` and :func:`looks_secret` (params and tags whose *names* look like
credentials are never logged); :class:`DatasetRef`, one split of a run's data to log; and
:func:`host_and_device`, a cell's provenance. No mlflow import: the run layer builds its tags and
params from here before a tracker exists.
"""

from __future__ import annotations

import platform
import re
import socket
from dataclasses import dataclass
from typing import Any, Mapping

#: Tag names shared by every run tlbench writes (the UI filters on them).
TAG_KIND = "tlbench.kind"  # grid | pretrain | cell
TAG_CELL_KEY = "tlbench.cell_key"
TAG_GRID_ID = "tlbench.grid_id"
TAG_RUN_ID = "tlbench.grid_run_id"
TAG_ERROR = "tlbench.error"
TAG_HOST = "tlbench.host"  # a grid run's machine and process, to close it if that process died
TAG_PID = "tlbench.pid"
TAG_HEARTBEAT = "tlbench.heartbeat"  # a grid run's last sign of life (unix seconds), any machine reads it
TAG_CLOSED_REASON = "tlbench.closed_reason"  # why tlbench ended a run it did not finish itself
TAG_SUPERSEDED = "tlbench.superseded"  # on an older FINISHED run of a cell: the run that counts now

_SECRET_PATTERN = re.compile(r"(secret|password|passwd|token|api[_-]?key|credential|auth)", re.I)


def looks_secret(name: str) -> bool:
    """True for parameter or tag names that look like credentials: those are never logged."""
    return bool(_SECRET_PATTERN.search(name))


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """Nested plain data -> flat ``a.b.c`` params (MLflow params are strings of <= 6000 chars)."""
    out: dict[str, str] = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), item))
    else:
        out[prefix] = str(value)[:6000]
    return {k: v for k, v in out.items() if not looks_secret(k)}


@dataclass(frozen=True)
class DatasetRef:
    """One split of a run's data for :meth:`benchmark.tracking.tracker.Tracker.log_datasets`:
    ``features`` and ``targets`` arrays, where they came from (``source``), a ``name`` that says
    which slice (and its time range), and the ``context`` (``training``, ``validation`` or ``test``)."""

    context: str
    name: str
    source: str
    features: Any
    targets: Any


def host_and_device() -> tuple[str, str]:
    """The worker host name and the device the cell trains on (GPU name or 'CPU')."""
    host = platform.node() or socket.gethostname() or "unknown"
    try:
        import tensorflow as tf  # ~5 s to import; only a cell that trains asks for its device

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return host, details.get("device_name", "GPU")
    except Exception:  # noqa: BLE001 - device detection must never fail a cell
        pass
    return host, "CPU"
