"""The data sources: the registry of named loaders (``m4``, ``ett``, ``sunspots``,
``sunspots_yearly``, ``sine``, ``csv``: :mod:`benchmark.data.loaders`), each with a frozen options
class, a loader and a short stable label; parsing and checking of a
:class:`~benchmark.spec.sections.DataSpec`'s options; loading into the tidy ``unique_id, ds, y``
frame (validated by :mod:`benchmark.data.validation`); and a content fingerprint of a loaded frame.

Files are read from a data directory passed in by the caller (``Settings.data_dir``); a missing
file is downloaded only when the caller allows it (:mod:`benchmark.data.fetch`), never at import time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.data.loaders import BUILTIN_SOURCES, Source
from benchmark.data.validation import validate_frame
from benchmark.spec.convert import SCALARS, convert_scalar
from benchmark.spec.errors import SpecError
from benchmark.spec.registry import Registry
from benchmark.spec.sections import DataSpec

SOURCES: Registry[Source] = Registry("source")
for _source in BUILTIN_SOURCES:  # a caller may add its own with SOURCES.add
    SOURCES.add(_source.name, _source)


# --------------------------------------------------------------------------- options


def parse_options(spec: DataSpec, path: str = "target") -> tuple[Any, list[str]]:
    """``spec.options`` as the source's options object, and every problem found, each prefixed by
    its YAML path, e.g. ``grid.targets[0].colum: unknown option for source 'ett'. Known: column,
    file``. The options object is ``None`` when there are problems."""
    if spec.source not in SOURCES:
        return None, [f"{path}.source: {SOURCES.unknown_message(spec.source)}"]
    source = SOURCES.get(spec.source)
    cls = source.options_cls
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    problems: list[str] = []
    options = dict(spec.options or {})
    for key in options:
        if key not in fields:
            known = ", ".join(sorted(fields)) or "(none: this source takes no options)"
            problems.append(f"{path}.options.{key}: unknown option for source {spec.source!r}. "
                            f"Known: {known}")
    kwargs = {}
    for name, field in fields.items():
        if name not in options:
            required = (field.default is dataclasses.MISSING
                        and field.default_factory is dataclasses.MISSING)
            if required:
                problems.append(f"{path}.options.{name}: required option for source "
                                f"{spec.source!r} is missing")
            continue
        value, problem = _convert_option(hints[name], options[name])
        if problem:
            problems.append(f"{path}.options.{name}: {problem}")
        else:
            kwargs[name] = value
    if problems:
        return None, problems
    parsed = cls(**kwargs)
    problems = [f"{path}.options.{p}" for p in getattr(parsed, "problems", lambda: [])()]
    return (None, problems) if problems else (parsed, [])


def _convert_option(tp: Any, value: Any) -> tuple[Any, str | None]:
    """(converted value, None) or (None, problem) for the option types sources use."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        if value is None:
            return None, None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert_option(inner, value)
    if typing.get_origin(tp) is tuple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
            return None, f"expected a list of strings, got {value!r}"
        return tuple(items), None
    if tp in SCALARS:
        return convert_scalar(tp, value)
    raise TypeError(f"unsupported option type {tp}")


def _options_of(spec: DataSpec, path: str) -> tuple[Source, Any]:
    source = SOURCES.get(spec.source)  # an unknown name raises, listing the known ones
    options, problems = parse_options(spec, path)
    if problems:
        raise SpecError(problems, source=f"options of source {spec.source!r}")
    return source, options


# --------------------------------------------------------------------------- public API


def load_source(spec: DataSpec, data_dir: Path, allow_download: bool = True,
                fill_gaps: str | None = None, max_gap: int = 3) -> pd.DataFrame:
    """The validated tidy frame of a data spec: columns ``unique_id`` (str), ``ds`` (datetime64,
    or an int64 step index 1..n for M4), ``y`` (float64), sorted by ``unique_id`` then ``ds``.

    ``fill_gaps``/``max_gap`` are passed to :func:`~benchmark.data.validation.validate_frame`.
    """
    source, options = _options_of(spec, "target")
    frame = source.load(options, Path(data_dir), allow_download)
    return validate_frame(frame, source.label(options), fill_gaps=fill_gaps, max_gap=max_gap)


def source_label(spec: DataSpec) -> str:
    """Short, stable name of a data spec: ``ett/ETTh1:OT``, ``m4/Hourly``, ``sine(n=2000,p=24)``."""
    source, options = _options_of(spec, "target")
    return source.label(options)


def data_fingerprint(frame: pd.DataFrame) -> str:
    """16 hex characters: a content hash of the ids, timestamps and values of a tidy frame."""
    digest = hashlib.blake2b(digest_size=8)
    codes, uniques = pd.factorize(frame["unique_id"], sort=False)
    digest.update("\x1f".join(map(str, uniques)).encode())
    digest.update(codes.astype(np.int32).tobytes())
    ds = frame["ds"].to_numpy()
    if np.issubdtype(ds.dtype, np.datetime64):
        digest.update(b"datetime")
        ds = ds.astype("datetime64[ns]")
    digest.update(ds.view(np.int64).tobytes())
    digest.update(frame["y"].to_numpy(dtype=np.float64).tobytes())
    return digest.hexdigest()
