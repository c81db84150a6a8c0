"""Local files written atomically: the one helper every local writer uses (reports, pretrained
models and their checksums, pretrained metadata).

A file is written under a hidden temporary name in its final folder (same suffix, since Keras
insists on ``.keras``) and then renamed over its final name, so a reader never sees half a file
and a crash leaves at most a hidden temporary behind. Leaderboard files go through the pyarrow
filesystem instead (:mod:`benchmark.results.leaderboard`), which also reaches object stores.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def atomic_write(path: Path, content: bytes | str | Callable[[Path], None]) -> Path:
    """Write ``content`` to ``path`` atomically: bytes, text (UTF-8), or a function that writes
    the file it is given (e.g. ``model.save``). Creates the folder; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:12]}{path.suffix}")
    try:
        if callable(content):
            content(temporary)
        elif isinstance(content, str):
            temporary.write_text(content, encoding="utf-8")
        else:
            temporary.write_bytes(content)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
