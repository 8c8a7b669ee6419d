"""Typed, frozen configs from ``params.yaml``: one reader for every section.

A config is a frozen dataclass deriving from ``ParamsConfig`` with two class attributes: ``SECTION``, its dotted
place in params.yaml (``"execution.gate"``), and ``ERROR``, the error it raises. ``from_params(mapping)`` builds
it, ``from_params_file()`` reads its section, ``to_params()`` gives the mapping back
(``C.from_params(c.to_params()) == c``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from mem_pipeline.core.params import load_params
from mem_pipeline.core.paths import PARAMS_FILE

T = TypeVar("T")
C = TypeVar("C", bound="ParamsConfig")


def config_from_params(cls: type[T], d: dict[str, Any] | None, error: type[Exception], label: str) -> T:
    """``cls`` with the values of ``d``, each coerced to the type of the field's default.

    Missing or null keys keep their defaults; unknown keys and values of the wrong kind raise ``error``
    naming ``label.key``. Field kinds: bool, int, float, str, dates (ISO strings), tuples of floats or of
    tuples of floats, and nested config dataclasses (read the same way under ``label.key``).
    """
    if d is not None and not isinstance(d, dict):
        raise error(f"{label}: must be a mapping, got {type(d).__name__}")
    d = dict(d or {})
    known = sorted(f.name for f in fields(cls))  # type: ignore[arg-type]
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise error(f"{label}: unknown keys {unknown} (known: {known})")
    template = cls()
    kwargs: dict[str, Any] = {}
    for name, value in d.items():
        if value is not None:
            kwargs[name] = _coerce(getattr(template, name), value, error, f"{label}.{name}")
    return cls(**kwargs)


def _coerce(default: Any, value: Any, error: type[Exception], where: str) -> Any:
    if dataclasses.is_dataclass(default):
        return config_from_params(type(default), value, error, where)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise error(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(value, bool):
        raise error(f"{where} must be a {type(default).__name__}, got {value!r}")
    try:
        if isinstance(default, dt.date):
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        if isinstance(default, str):
            return str(value)
        if isinstance(default, tuple):
            if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
                raise ValueError("expected a list")
            if default and isinstance(default[0], tuple):
                return tuple(tuple(float(x) for x in row) for row in value)
            if (default and isinstance(default[0], str)) or (not default and all(isinstance(v, str) for v in value)):
                return tuple(str(x) for x in value)
            return tuple(float(v) for v in value)
        if isinstance(default, int):
            if int(value) != value:
                raise ValueError("not an integer")
            return int(value)
        return float(value)
    except (TypeError, ValueError) as exc:
        raise error(f"{where}: cannot read {value!r} ({exc})") from exc


def to_plain(value: Any) -> Any:
    """A config as plain YAML/JSON values: mappings, lists, numbers, strings, ISO dates."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def params_section(dotted: str, path: Path = PARAMS_FILE) -> dict[str, Any] | None:
    """The mapping at ``dotted`` (``"execution.gate"``) in the params file, or None where it is absent."""
    node: Any = load_params(path)
    for key in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


class ParamsConfig:
    """Base of every config dataclass: one reader of params.yaml (see the module docstring)."""

    SECTION: ClassVar[str]
    ERROR: ClassVar[type[Exception]]

    @classmethod
    def from_params(cls: type[C], d: dict[str, Any] | None = None) -> C:
        """Build from a params.yaml-style mapping (missing keys: defaults; unknown keys: error)."""
        return config_from_params(cls, d, cls.ERROR, cls.SECTION)

    @classmethod
    def from_params_file(cls: type[C], path: Path = PARAMS_FILE) -> C:
        """Build from its section of the params file (``MEM_PARAMS`` or the project's ``params.yaml``)."""
        return cls.from_params(params_section(cls.SECTION, path))

    def to_params(self) -> dict[str, Any]:
        """The mapping ``from_params`` reads."""
        return to_plain(self)
