"""The parquet lake: one file per date partition, replaced atomically, read by polars and DuckDB.

Layout: ``<root>/date=YYYY-MM-DD/part.parquet``. The date stays inside the file too, so a file is
self-describing and readers need no hive parsing. A partition is written to a temporary file in
its own folder and renamed over the old one: readers see the old or the new file, never half of one,
and writing the same rows twice leaves the same bytes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mem_pipeline.core.files import atomic_write_parquet
from mem_pipeline.core.schemas import BAR_SCHEMA

PART = "part.parquet"


@dataclass(frozen=True)
class PartitionWrite:
    date: dt.date
    rows: int
    path: Path
    sha256: str


def partition_dir(root: Path, day: dt.date) -> Path:
    return root / f"date={day.isoformat()}"


def write_partitions(frame: pl.DataFrame, root: Path) -> list[PartitionWrite]:
    """Replace the partition of every date present in ``frame``; dates absent are left untouched."""
    writes = []
    for (day,), part in frame.sort("date", "symbol").group_by(["date"], maintain_order=True):
        path = partition_dir(root, day) / PART
        writes.append(PartitionWrite(day, part.height, path, atomic_write_parquet(part, path)))
    return writes


def partition_files(root: Path, start: dt.date | None = None, end: dt.date | None = None) -> list[Path]:
    files = sorted(root.glob(f"date=*/{PART}"))
    if start is None and end is None:
        return files
    lo, hi = (start or dt.date.min).isoformat(), (end or dt.date.max).isoformat()
    return [f for f in files if lo <= f.parent.name.removeprefix("date=") <= hi]


def last_date(root: Path) -> dt.date | None:
    """The newest day stored under ``root`` (from the partition folder names; nothing is read)."""
    files = partition_files(root)
    return dt.date.fromisoformat(files[-1].parent.name.removeprefix("date=")) if files else None


def read_bars(root: Path, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
    files = partition_files(root, start, end)
    if not files:
        return pl.DataFrame(schema=BAR_SCHEMA)
    return pl.read_parquet(files)


def last_bars_before(root: Path, start: dt.date) -> pl.DataFrame:
    """The last stored bar per symbol dated before ``start`` (``symbol``, ``date``, ``close``)."""
    files = partition_files(root, end=start - dt.timedelta(days=1))
    if not files:
        return pl.DataFrame(schema={"symbol": pl.String, "date": pl.Date, "close": pl.Float64})
    return pl.scan_parquet(files).select("symbol", "date", "close").sort("date").group_by("symbol").last().collect()
