"""The one interface every market-data adapter implements."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Protocol, runtime_checkable

import polars as pl


@runtime_checkable
class MarketDataSource(Protocol):
    """Delivers canonical daily bars (``mem_pipeline.core.schemas.BAR_SCHEMA``) for a date window.

    ``fetch`` returns every bar with ``start <= date <= end``, conformed to the schema, with
    ``source_file``/``source_row`` provenance filled. It raises ``SchemaError`` for input it cannot
    read as bars and ``SourceError`` when the source itself fails. Row-level problems (a high below
    the low, a NaN close) are *not* the adapter's business: the quality gate finds and quarantines them.
    """

    name: str

    def fetch(self, start: dt.date, end: dt.date) -> pl.DataFrame: ...

    def date_range(self) -> tuple[dt.date, dt.date] | None:
        """First and last date the source can deliver, when it knows them (None: open-ended)."""
        ...


@runtime_checkable
class TruthfulSource(Protocol):
    """A source that knows the truth behind its data (the synthetic market) and can save it."""

    def write_truth(self, directory: Path) -> list[Path]: ...


@runtime_checkable
class WholeFileSource(Protocol):
    """A source of whole input files (the user's own): ``read_all`` returns every row the files hold,
    whatever its date, so the gate sees rows outside the run's window (a future-dated typo) instead of
    them being filtered away unseen."""

    def read_all(self) -> pl.DataFrame: ...
