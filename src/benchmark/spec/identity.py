"""Spec identity: the canonical plain form of a spec and :func:`spec_hash`, the key of caching,
MLflow tags and the leaderboard (the same spec always has the same key).

Two field markers keep old keys valid as the spec tree grows: :data:`KEY_NEUTRAL_DEFAULT` (a field
added later is left out of the key while it holds its default) and :func:`plain_as` (a renamed
field keeps its old name in the plain form, so keys and logged params do not change).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
from pathlib import Path
from typing import Any, Mapping

#: Field metadata of an option added after keys existed: the key hash leaves the field out while
#: it holds its default (which must reproduce the behaviour from before the field), so adding it
#: keeps every existing cell key and ledger row; any other value enters the key.
KEY_NEUTRAL_DEFAULT = types.MappingProxyType({"key_neutral_default": True})
PLAIN_NAME = "plain_name"  # the metadata key of :func:`plain_as`


def plain_as(old_name: str, metadata: Mapping[str, Any] = types.MappingProxyType({})) -> Mapping[str, Any]:
    """Field metadata of a renamed field: its plain form (and so its hash and its logged params)
    keeps ``old_name``; YAML must use the new name (the old one is refused with the new one named)."""
    return types.MappingProxyType({**metadata, PLAIN_NAME: old_name})


def plain_name(spec_field: dataclasses.Field) -> str:
    """The name a field has in the plain form: its own, or the old one of a renamed field."""
    return spec_field.metadata.get(PLAIN_NAME, spec_field.name)


def to_plain(obj: Any) -> Any:
    """Spec -> JSON-able plain data (dicts with sorted keys, lists), the canonical form."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {plain_name(f): to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def canonical_json(obj: Any) -> str:
    return json.dumps(to_plain(obj), sort_keys=True, separators=(",", ":"), default=str)


def key_plain(obj: Any) -> Any:
    """:func:`to_plain` for identity: a field marked :data:`KEY_NEUTRAL_DEFAULT` is left out
    while it equals its default, so keys from before the field existed stay valid."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {plain_name(f): key_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get("key_neutral_default") and getattr(obj, f.name) == f.default)}
    if isinstance(obj, Mapping):
        return {str(k): key_plain(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return [key_plain(v) for v in obj]
    return to_plain(obj)


def spec_hash(*parts: Any, length: int = 16) -> str:
    """Content hash of any specs/values: the identity used by caching, MLflow tags and results.
    Hashes :func:`key_plain` (a new option at its default does not change a key)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(key_plain(part), sort_keys=True, separators=(",", ":"),
                                 default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:length]
