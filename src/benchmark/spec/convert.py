"""Plain data -> typed specs: :func:`from_dict` converts and checks YAML-shaped data against a
spec dataclass, collecting every problem with its path, and :func:`convert_scalar` is the one
typed converter of spec fields and source options."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping

from benchmark.spec.errors import SpecError
from benchmark.spec.identity import plain_name

#: The scalar types a spec field or a source option may have.
SCALARS = (bool, int, float, str)


def from_dict(cls: type, data: Any, path: str = "grid") -> Any:
    """Build dataclass ``cls`` from plain data, collecting every problem; raises SpecError."""
    problems: list[str] = []
    value = _convert(cls, data, path, problems)
    if problems:
        raise SpecError(problems)
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(tp: Any, data: Any, path: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(inner[0], data, path, problems)
        raise TypeError(f"unsupported union {tp}")
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, data, path, problems)
    if origin is tuple:
        item_type = args[0]
        if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, (list, tuple)):
            data = [data]  # a single value where a list is expected: accept `seeds: 0`
        return tuple(_convert(item_type, v, f"{path}[{i}]", problems) for i, v in enumerate(data))
    if tp is Mapping[str, Any] or origin in (Mapping, dict, typing.Mapping):
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            problems.append(f"{path}: expected a mapping, got {data!r}")
            return {}
        return dict(data)
    if tp is Any:
        return data
    if tp in SCALARS:
        value, problem = convert_scalar(tp, data, numeric_strings=True)
        if problem:
            problems.append(f"{path}: {problem}")
        return value
    raise TypeError(f"unsupported spec type {_type_name(tp)} at {path}")


def _convert_dataclass(tp: type, data: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(data, Mapping):
        problems.append(f"{path}: expected a mapping, got {data!r}")
        return None
    hints = typing.get_type_hints(tp)
    names = [f.name for f in dataclasses.fields(tp)]
    renamed = {plain_name(f): f.name for f in dataclasses.fields(tp) if plain_name(f) != f.name}
    for key in data:
        if key in renamed:
            problems.append(f"{path}.{key}: renamed to {renamed[key]}; write {renamed[key]}: instead "
                            f"(same meaning)")
        elif key not in names:
            problems.append(f"{path}.{key}: unknown key. Known keys: {', '.join(names)}")
    kwargs = {}
    for name in names:
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], f"{path}.{name}", problems)
    try:
        return tp(**kwargs)
    except TypeError as exc:
        problems.append(f"{path}: {exc}")
        return None


def convert_scalar(tp: type, value: Any, numeric_strings: bool = False) -> tuple[Any, str | None]:
    """``(converted value, None)`` or ``(None, problem)`` for one of :data:`SCALARS`: the one typed
    converter of spec fields and source options. ``numeric_strings``: a float may come as a
    string (YAML 1.1 reads ``1e-3``, without a dot, as one)."""
    if tp is bool:
        return (value, None) if isinstance(value, bool) else (None, f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        return None, f"expected an integer, got {value!r}"
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), None
        if numeric_strings and isinstance(value, str):
            try:
                return float(value), None
            except ValueError:
                pass
        return None, f"expected a number, got {value!r}"
    if tp is str:
        return (value, None) if isinstance(value, str) else (None, f"expected a string, got {value!r}")
    raise TypeError(f"unsupported scalar type {tp}")
