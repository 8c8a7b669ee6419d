"""The user's own daily bars: a directory of ``*.csv`` and ``*.parquet`` files.

Schema (column names are matched case-insensitively; other columns are ignored):

==========  ========================================================================================
date        ``YYYY-MM-DD``, or a timestamp with an explicit UTC offset (``2024-01-02T00:00:00Z``,
            ``…+01:00``) whose calendar date is the bar's date. Naive timestamps (a time without an
            offset) and files mixing offsets are refused: the bar's day would be a guess.
symbol      text, non-empty
open, high, low, close   numbers
volume      number (units of the instrument)
bid, ask    optional numbers (closing quote)
==========  ========================================================================================

CSV files must be UTF-8. A file that cannot be read this way raises ``SchemaError`` naming the file,
the rule and, where it applies, the rows (1-based, counting the CSV header as row 1).

Ingest reads every file whole (``read_all``) and validates every row before windowing: a row dated
outside the run's window is checked too (a future date is quarantined by ``no_future_dates``) and,
if valid, counted as outside the window and left for the run of its own date. Row order inside a
file does not matter: rows are taken in (symbol, date) order.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl

from mem_pipeline.core.errors import SchemaError
from mem_pipeline.core.schemas import BAR_COLUMNS, OPTIONAL_COLUMNS, conform_bars, empty_bars

REQUIRED = tuple(c for c in BAR_COLUMNS if c not in (*OPTIONAL_COLUMNS, "source_file", "source_row"))
NUMERIC = ("open", "high", "low", "close", "volume", "bid", "ask")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


class FilesSource:
    """Reads every CSV/Parquet file under ``directory`` (recursively) as daily bars."""

    name = "files"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def files(self) -> list[Path]:
        if not self.directory.is_dir():
            raise SchemaError(str(self.directory), "missing_directory", "the files source directory does not exist")
        return sorted(p for p in self.directory.rglob("*") if p.suffix.lower() in (".csv", ".parquet"))

    def read_all(self) -> pl.DataFrame:
        """Every row of every file, whatever its date (what ingest validates)."""
        frames = [read_bar_file(p, self.directory) for p in self.files()]
        return pl.concat(frames) if frames else empty_bars()

    def fetch(self, start: dt.date, end: dt.date) -> pl.DataFrame:
        """The rows dated ``start..end`` (the ``MarketDataSource`` contract)."""
        return self.read_all().filter(pl.col("date").is_between(start, end))

    def date_range(self) -> tuple[dt.date, dt.date] | None:
        frames = [read_bar_file(p).select("date") for p in self.files()]
        if not frames:
            return None
        dates = pl.concat(frames)["date"]
        return dates.min(), dates.max()  # type: ignore[return-value]


def read_bar_file(path: Path, root: Path | None = None) -> pl.DataFrame:
    """One file as canonical bars, or a ``SchemaError`` saying exactly what is wrong with it (naming the file's
    full path, which is where quarantine copies it from). The rows' ``source_file`` is the path relative to
    ``root`` (the inbox; default: the file's folder), so the same bars read from another place store the same
    bytes."""
    name = str(path)
    stored = path.relative_to(root).as_posix() if root is not None else path.name
    if path.stat().st_size == 0:
        raise SchemaError(name, "empty_file", "the file is empty (0 bytes)")
    raw, first_row = (_read_csv(path), 2) if path.suffix.lower() == ".csv" else (_read_parquet(path), 1)
    folded = [c.strip().lower() for c in raw.columns]
    clashes = sorted({c for c in folded if folded.count(c) > 1})
    if clashes:
        detail = f"columns {clashes} appear more than once (names are case-insensitive)"
        raise SchemaError(name, "duplicate_columns", detail)
    raw = raw.rename(dict(zip(raw.columns, folded, strict=True)))
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise SchemaError(name, "missing_columns", f"missing {missing}; found {raw.columns}; required {list(REQUIRED)}")
    if raw.height == 0:
        raise SchemaError(name, "no_rows", "the file has a header but no rows")
    frame = raw.select([c for c in BAR_COLUMNS if c in raw.columns]).with_columns(
        source_file=pl.lit(stored), source_row=pl.int_range(first_row, raw.height + first_row, dtype=pl.Int64)
    )
    frame = frame.with_columns(date=_parse_dates(frame, name), symbol=_parse_symbols(frame, name))
    for column in NUMERIC:
        if column in frame.columns:
            frame = frame.with_columns(_parse_number(frame, column, name))
    return conform_bars(frame)


def _read_csv(path: Path) -> pl.DataFrame:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise SchemaError(
            str(path), "encoding", f"not UTF-8: byte 0x{data[err.start]:02x} at offset {err.start}", [line]
        ) from err
    try:
        return pl.read_csv(data, infer_schema=False)
    except pl.exceptions.PolarsError as err:
        raise SchemaError(str(path), "unreadable_csv", f"cannot parse as CSV: {err}") from err


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise SchemaError(
            str(path), "unreadable_parquet", f"not a readable parquet file (truncated or corrupt): {err}"
        ) from err


def _bad_rows(frame: pl.DataFrame, mask: pl.Series) -> list[int]:
    return frame.filter(mask)["source_row"].to_list()


def _parse_symbols(frame: pl.DataFrame, name: str) -> pl.Series:
    symbols = frame["symbol"].cast(pl.String).str.strip_chars()
    bad = symbols.is_null() | (symbols == "")
    if bad.any():
        raise SchemaError(name, "missing_symbol", "symbol is empty", _bad_rows(frame, bad))
    return symbols


def _parse_number(frame: pl.DataFrame, column: str, name: str) -> pl.Series:
    values = frame[column]
    if values.dtype.is_numeric():
        return values.cast(pl.Float64)
    if values.dtype != pl.String:
        raise SchemaError(name, "dtype", f"{column} has type {values.dtype}; a number is required")
    text = values.str.strip_chars()
    parsed = text.cast(pl.Float64, strict=False)
    bad = text.is_not_null() & (text != "") & parsed.is_null()
    if bad.any():
        sample = text.filter(bad).head(3).to_list()
        raise SchemaError(name, "dtype", f"{column} is not a number (e.g. {sample})", _bad_rows(frame, bad))
    return parsed.alias(column)


def _parse_dates(frame: pl.DataFrame, name: str) -> pl.Series:
    values = frame["date"]
    if values.dtype == pl.Date:
        return values
    if isinstance(values.dtype, pl.Datetime):
        if values.dtype.time_zone is None:
            raise SchemaError(
                name, "naive_timestamp", "date is a timestamp without a time zone; use a date or an aware timestamp"
            )
        return values.dt.date()
    if values.dtype != pl.String:
        raise SchemaError(name, "dtype", f"date has type {values.dtype}; a date or an aware timestamp is required")
    text = values.str.strip_chars()
    date_only = text.str.contains(_DATE_ONLY.pattern)
    if date_only.all():
        parsed = text.str.to_date("%Y-%m-%d", strict=False)
        _raise_unparsed(frame, text, parsed, name)
        return parsed
    offsets = text.str.extract(_OFFSET.pattern, 1)
    has_time = text.str.contains(r"[T ]\d{1,2}:\d{2}")
    not_a_date = ~date_only & ~has_time
    if not_a_date.any():
        sample = text.filter(not_a_date).head(3).to_list()
        detail = f"date is not YYYY-MM-DD nor a timestamp (e.g. {sample})"
        raise SchemaError(name, "dtype", detail, _bad_rows(frame, not_a_date))
    naive = has_time & offsets.is_null()
    if naive.any():
        raise SchemaError(
            name, "naive_timestamp", "timestamp without a UTC offset (e.g. 'Z' or '+00:00')", _bad_rows(frame, naive)
        )
    seen = offsets.fill_null("date-only").str.replace("Z", "+00:00").str.replace(r"^([+-]\d{2})(\d{2})$", "$1:$2")
    if seen.n_unique() > 1:
        raise SchemaError(name, "mixed_timezones", f"the file mixes UTC offsets {sorted(seen.unique().to_list())}")
    # The bar's day is the calendar date in the timestamp's own offset (its local trading date).
    parsed = text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    _raise_unparsed(frame, text, parsed, name)
    return parsed


def _raise_unparsed(frame: pl.DataFrame, text: pl.Series, parsed: pl.Series, name: str) -> None:
    bad = parsed.is_null()
    if bad.any():
        sample = text.filter(bad).head(3).to_list()
        raise SchemaError(name, "dtype", f"date is not a date (e.g. {sample})", _bad_rows(frame, bad))
