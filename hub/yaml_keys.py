"""Reading a YAML mapping key by key: each check raises a `ManifestError` that names the key it read."""
from __future__ import annotations

from typing import Any


class ManifestError(ValueError):
    """The manifest is missing a key or has a value of the wrong kind."""


def require(mapping: dict, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ManifestError(f"{where}.{key}: missing")
    return check(mapping[key], f"{where}.{key}", kind)


def optional(mapping: dict, key: str, where: str, kind, default):
    if key not in mapping or mapping[key] is None:
        return default
    return check(mapping[key], f"{where}.{key}", kind)


def check(value: Any, where: str, kind) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ManifestError(f"{where}: expected {names}, got {type(value).__name__} {value!r}")
    return value


def str_list(mapping: dict, key: str, where: str) -> tuple[str, ...]:
    values = require(mapping, key, where, list)
    if not values:
        raise ManifestError(f"{where}.{key}: must not be empty")
    return tuple(check(v, f"{where}.{key}[{i}]", str) for i, v in enumerate(values))


def dataclass_from(cls, mapping: Any, where: str):
    """Build a flat dataclass of scalars, type-checking each key against the defaults."""
    if mapping is None:
        return cls()
    check(mapping, where, dict)
    defaults = cls()
    known = {f.name for f in cls.__dataclass_fields__.values()}
    unknown = set(mapping) - known
    if unknown:
        raise ManifestError(f"{where}.{sorted(unknown)[0]}: unknown key (known: {sorted(known)})")
    values = {k: check(v, f"{where}.{k}", type(getattr(defaults, k))) for k, v in mapping.items()}
    return cls(**values)
