"""Building blocks of the settings: the error, a secret string, field checks and environment parsing."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any

from stream.errors import LiveTagError


class SettingsError(LiveTagError):
    """A setting has a bad value; the message names the setting."""


class SecretStr:
    """A string that does not show itself in ``repr``, ``str`` or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = str(value)

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')" if self._value else "SecretStr('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def check(ok: bool, name: str, message: str) -> None:
    """Raise SettingsError ``"<name> <message>"`` unless ``ok``."""
    if not ok:
        raise SettingsError(f"setting {name} {message}")


def check_types(obj: Any, section: str) -> None:
    """Raise SettingsError naming the first field of dataclass ``obj`` whose value has the wrong type."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        args = typing.get_args(hint)
        optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
        if optional:
            if value is None:
                continue
            hint = next(a for a in args if a is not type(None))
        base = typing.get_origin(hint) or hint
        if base is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif base is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif base is tuple:
            ok = isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        elif base in (Mapping, dict):
            ok = isinstance(value, Mapping)
        else:  # other classes are checked; typing constructs such as Literal are left to __post_init__
            ok = isinstance(value, base) if isinstance(base, type) else True
        check(ok, f"{section}.{f.name}", f"has the wrong type {type(value).__name__}")


def unit_interval(name: str, value: float) -> None:
    check(0.0 <= value <= 1.0, name, f"must be in [0, 1], got {value}")


def positive(name: str, value: float) -> None:
    check(value > 0, name, f"must be > 0, got {value}")


def parse_env_value(name: str, raw: str, hint: Any) -> Any:
    """Parse the text of environment variable ``name`` as the type ``hint``."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if raw.strip() == "":
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return parse_env_value(name, raw, inner)
    try:
        if hint is bool:
            lowered = raw.strip().lower()
            check(lowered in ("1", "0", "true", "false", "yes", "no"), name, f"must be a boolean, got {raw!r}")
            return lowered in ("1", "true", "yes")
        if hint in (int, float, str):
            return hint(raw.strip()) if hint is not str else raw
        if hint is SecretStr:
            return SecretStr(raw)
        if origin is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if origin in (Mapping, dict) or hint is Mapping:
            value = json.loads(raw)
            check(isinstance(value, dict), name, "must be a JSON object")
            return value
    except (ValueError, json.JSONDecodeError) as exc:
        raise SettingsError(f"setting {name} has a bad value {raw!r}: {exc}") from exc
    raise SettingsError(f"setting {name} cannot be read from the environment")
