"""Errors a user can act on: each names the input, the rule broken and, where known, the rows."""

from __future__ import annotations

from collections.abc import Sequence


class MemError(Exception):
    """Base class for MEM's user-facing errors."""


class SchemaError(MemError):
    """An input cannot be read as daily bars at all (the whole input is refused)."""

    def __init__(self, source_file: str, rule: str, detail: str, rows: Sequence[int] = ()) -> None:
        self.source_file = source_file
        self.rule = rule
        self.detail = detail
        self.rows = tuple(rows)
        where = f" rows {format_rows(self.rows)}" if self.rows else ""
        super().__init__(f"{source_file}{where}: [{rule}] {detail}")


class DataQualityError(MemError):
    """A batch broke blocking quality rules; nothing of it was published."""


class SourceError(MemError):
    """A market-data source could not deliver (network, exchange, configuration)."""


def format_rows(rows: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f", … ({len(rows)} in all)" if len(rows) > limit else "")
