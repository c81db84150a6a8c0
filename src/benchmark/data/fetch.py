"""Source files on disk: found in the data directory, downloaded on demand when the caller
allows it (never at import time), read as CSV tables and turned into tidy ``unique_id, ds, y``
frames that remember where they came from (for validation messages)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.spec.errors import DataError

_FIX_DATA_DIR = "set TLBENCH_DATA_DIR (or --data-dir) to the folder that holds it"
_FIX_OFFLINE = f"{_FIX_DATA_DIR}, or allow downloads (unset TLBENCH_OFFLINE)"


def tidy(unique_id: Any, ds: Any, y: Any, file: Path | None = None, date_column: str | None = None,
          value_column: str | None = None) -> pd.DataFrame:
    """A tidy frame plus where it came from (for validation messages)."""
    frame = pd.DataFrame({"unique_id": unique_id, "ds": ds, "y": y})
    frame.attrs.update({"file": str(file) if file else None, "date_column": date_column,
                        "value_column": value_column})
    return frame


def parse_dates(values: pd.Series) -> pd.Series:
    # errors="coerce": unparseable dates become NaT, which validation reports with their rows
    return pd.to_datetime(values, errors="coerce")


def read_table(path: Path, label: str) -> pd.DataFrame:
    """The whole CSV (no ``usecols``: with it pandas silently drops extra fields of a bad row)."""
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise DataError(f"{label}: cannot read {path} as CSV ({reason}). Fix: check that the "
                        "file is a comma-separated table with a header row and the same number of "
                        "fields on every line (decimal points, not commas).") from None


def require_columns(table: pd.DataFrame, path: Path, label: str, wanted: dict[str, str]) -> None:
    """``wanted``: option name -> column; raises listing the available columns."""
    columns = [str(c) for c in table.columns]
    for option, column in wanted.items():
        if column not in columns:
            raise DataError(f"{label}: {option} {column!r} is not a column of {path}. Available: "
                            f"{', '.join(columns)}.")


def _download(url: str, path: Path, label: str) -> None:
    """Download ``url`` to ``path``; on failure, remove the folders this call created (a failed
    validation leaves nothing behind) and say whether the network refused or something else."""
    from datasetsforecast.utils import download_file  # only when a download is needed

    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        download_file(path.parent, url, filename=path.name)
    except Exception as exc:  # network errors of any kind: say what and how to fix
        _remove_empty(created)
        cause = _network_cause(exc)
        raise DataError(f"{label}: data file {path} not found, and downloading it from {url} failed: "
                        f"{cause}. Fix: download it by hand into {path.parent}, or {_FIX_DATA_DIR}; "
                        "set TLBENCH_OFFLINE=1 to never try a download.", str(path)) from None
    if not path.is_file():
        _remove_empty(created)
        raise DataError(f"{label}: downloading {url} did not create {path}. Fix: download it by "
                        f"hand, or {_FIX_DATA_DIR}.", str(path))


def _network_cause(exc: BaseException) -> str:
    """What went wrong with a download, in words: refused, unresolvable host, timeout, else the error."""
    seen, text = exc, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return f"no network (connection refused) [{text}]"
        if "name or service not known" in str(seen).lower() or "resolution" in str(seen).lower():
            return f"no network (host name not resolved) [{text}]"
        if isinstance(seen, TimeoutError) or "timed out" in str(seen).lower():
            return f"no network (timed out) [{text}]"
        seen = seen.__cause__ or seen.__context__
    return text


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty, or already gone


def ensure_file(path: Path, label: str, allow_download: bool, url: str | None) -> Path:
    if path.is_file():
        return path
    if url is None:
        raise DataError(f"{label}: data file {path} not found (this source is never downloaded). "
                        f"Fix: put the file there, or set TLBENCH_DATA_DIR (or --data-dir) to the "
                        "folder that holds it.", str(path))
    if not allow_download:
        raise DataError(f"{label}: data file {path} not found and downloads are off "
                        f"(TLBENCH_OFFLINE). Fix: {_FIX_OFFLINE}.", str(path))
    _download(url, path, label)
    return path
