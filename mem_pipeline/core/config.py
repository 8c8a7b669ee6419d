"""Typed, frozen configs from ``params.yaml`` mappings: one reader for every config dataclass."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def config_from_params(cls: type[T], d: dict[str, Any] | None, error: type[Exception], label: str) -> T:
    """``cls`` with the values of ``d``, each coerced to the type of the field's default.

    Missing or null keys keep their defaults; unknown keys and values of the wrong kind raise ``error``
    naming ``label.key``. Supported field kinds: bool, int, float, str and tuples of floats.
    """
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
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise error(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(value, bool):
        raise error(f"{where} must be a {type(default).__name__}, got {value!r}")
    try:
        if isinstance(default, str):
            return str(value)
        if isinstance(default, tuple):
            if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
                raise ValueError("expected a list of numbers")
            return tuple(float(v) for v in value)
        if isinstance(default, int):
            if int(value) != value:
                raise ValueError("not an integer")
            return int(value)
        return float(value)
    except (TypeError, ValueError) as exc:
        raise error(f"{where}: cannot read {value!r} ({exc})") from exc
