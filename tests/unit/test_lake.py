"""The parquet lake: atomic, deterministic partition replacement and the two read paths (hand-built frames)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import random
from pathlib import Path

import polars as pl
import pytest

from mem_pipeline.core.schemas import BAR_SCHEMA
from mem_pipeline.ingest import lake

D1, D2, D3, D4, D5 = (dt.date(2010, 3, d) for d in (1, 2, 3, 4, 5))  # Mon .. Fri


def bars(*rows: tuple[dt.date, str, float]) -> pl.DataFrame:
    """Canonical bars from (date, symbol, close); the other prices follow close, provenance is made up."""
    return pl.DataFrame(
        [(d, s, c, c + 1, c - 1, c, 1000.0, None, None, "hand.csv", i + 2) for i, (d, s, c) in enumerate(rows)],
        schema=BAR_SCHEMA,
        orient="row",
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def part(root: Path, day: dt.date) -> Path:
    return root / f"date={day.isoformat()}" / "part.parquet"


WEEK = bars(
    (D1, "AAA", 10.0), (D1, "BBB", 20.0),
    (D2, "AAA", 11.0), (D2, "BBB", 21.0),
    (D3, "AAA", 12.0), (D3, "BBB", 22.0),
)  # fmt: skip


def test_writing_the_same_frame_twice_gives_identical_bytes(tmp_path: Path) -> None:
    first = lake.write_partitions(WEEK, tmp_path)
    bytes_after_first = {p: (tmp_path / p).read_bytes() for p in all_files(tmp_path)}
    second = lake.write_partitions(WEEK, tmp_path)

    assert [(w.date, w.rows, w.path) for w in first] == [
        (D1, 2, part(tmp_path, D1)),
        (D2, 2, part(tmp_path, D2)),
        (D3, 2, part(tmp_path, D3)),
    ]
    assert [w.sha256 for w in first] == [w.sha256 for w in second]
    assert [w.sha256 for w in first] == [sha(w.path) for w in first]  # the reported digest is the file's
    assert {p: (tmp_path / p).read_bytes() for p in all_files(tmp_path)} == bytes_after_first


def test_same_rows_in_another_order_give_identical_bytes(tmp_path: Path) -> None:
    order = list(range(WEEK.height))
    random.Random(3).shuffle(order)
    assert order != sorted(order)
    a = lake.write_partitions(WEEK, tmp_path / "a")
    b = lake.write_partitions(WEEK[order], tmp_path / "b")
    assert [w.sha256 for w in a] == [w.sha256 for w in b]


def test_partition_content_round_trips(tmp_path: Path) -> None:
    lake.write_partitions(WEEK, tmp_path)
    stored = pl.read_parquet(part(tmp_path, D2))
    assert stored.schema == pl.Schema(BAR_SCHEMA)
    assert stored.select("date", "symbol", "close").rows() == [(D2, "AAA", 11.0), (D2, "BBB", 21.0)]


def test_rewriting_one_date_replaces_only_that_date(tmp_path: Path) -> None:
    lake.write_partitions(WEEK, tmp_path)
    before = {p: (tmp_path / p).read_bytes() for p in all_files(tmp_path)}
    inodes = {d: part(tmp_path, d).stat().st_ino for d in (D1, D3)}

    writes = lake.write_partitions(bars((D2, "BBB", 99.0), (D2, "AAA", 98.0)), tmp_path)

    assert [(w.date, w.rows) for w in writes] == [(D2, 2)]
    assert pl.read_parquet(part(tmp_path, D2)).select("symbol", "close").rows() == [("AAA", 98.0), ("BBB", 99.0)]
    after = {p: (tmp_path / p).read_bytes() for p in all_files(tmp_path)}
    assert set(after) == set(before)
    assert after[f"date={D2}/part.parquet"] != before[f"date={D2}/part.parquet"]
    for day in (D1, D3):
        key = f"date={day}/part.parquet"
        assert after[key] == before[key]
        assert part(tmp_path, day).stat().st_ino == inodes[day]  # not even rewritten


def test_no_temp_files_are_left_behind(tmp_path: Path) -> None:
    lake.write_partitions(WEEK, tmp_path)
    lake.write_partitions(bars((D2, "AAA", 5.0)), tmp_path)
    assert all_files(tmp_path) == [f"date={d}/part.parquet" for d in (D1, D2, D3)]


def test_readers_ignore_a_stray_temp_file(tmp_path: Path) -> None:
    lake.write_partitions(WEEK, tmp_path)
    stray = part(tmp_path, D4).parent / ".tmp-crashed.parquet"  # what a killed writer could leave
    stray.parent.mkdir()
    bars((D4, "AAA", 1.0)).write_parquet(stray)
    assert lake.partition_files(tmp_path) == [part(tmp_path, d) for d in (D1, D2, D3)]
    assert D4 not in lake.read_bars(tmp_path)["date"].to_list()


def test_read_bars_filters_the_window_inclusively(tmp_path: Path) -> None:
    lake.write_partitions(bars(*[(d, "AAA", float(d.day)) for d in (D1, D2, D3, D4, D5)]), tmp_path)

    def dates(frame: pl.DataFrame) -> list[dt.date]:
        return sorted(frame["date"].to_list())

    assert dates(lake.read_bars(tmp_path, D2, D4)) == [D2, D3, D4]
    assert dates(lake.read_bars(tmp_path, D3, D3)) == [D3]
    assert dates(lake.read_bars(tmp_path, start=D4)) == [D4, D5]
    assert dates(lake.read_bars(tmp_path, end=D2)) == [D1, D2]
    assert dates(lake.read_bars(tmp_path)) == [D1, D2, D3, D4, D5]
    assert dates(lake.read_bars(tmp_path, dt.date(2010, 2, 27), dt.date(2010, 2, 28))) == []
    empty = lake.read_bars(tmp_path, D5 + dt.timedelta(days=1))
    assert empty.height == 0 and empty.schema == pl.Schema(BAR_SCHEMA)
    assert lake.read_bars(tmp_path / "nowhere").schema == pl.Schema(BAR_SCHEMA)
    assert lake.read_bars(tmp_path, D2, D4).schema == pl.Schema(BAR_SCHEMA)


def test_last_bars_before_takes_each_symbols_latest_bar_strictly_before(tmp_path: Path) -> None:
    lake.write_partitions(
        bars(
            (D1, "AAA", 1.0), (D1, "BBB", 10.0),
            (D2, "AAA", 2.0),
            (D3, "CCC", 30.0),
            (D4, "AAA", 4.0), (D4, "CCC", 40.0),
        ),
        tmp_path,
    )  # fmt: skip

    def last(start: dt.date) -> list[tuple[str, dt.date, float]]:
        frame = lake.last_bars_before(tmp_path, start)
        assert frame.columns == ["symbol", "date", "close"]
        return sorted(frame.rows())

    assert last(D1) == []  # nothing before the first date
    assert last(D2) == [("AAA", D1, 1.0), ("BBB", D1, 10.0)]
    assert last(D3) == [("AAA", D2, 2.0), ("BBB", D1, 10.0)]
    assert last(D4) == [("AAA", D2, 2.0), ("BBB", D1, 10.0), ("CCC", D3, 30.0)]  # D4 itself excluded
    assert last(D5) == [("AAA", D4, 4.0), ("BBB", D1, 10.0), ("CCC", D4, 40.0)]
    assert last(dt.date(2011, 1, 1)) == last(D5)
    empty = lake.last_bars_before(tmp_path, D1)
    assert empty.schema == pl.Schema({"symbol": pl.String, "date": pl.Date, "close": pl.Float64})


def test_last_bars_before_over_many_partitions(tmp_path: Path) -> None:
    """The latest bar wins however the closes move (not the max, not the first file read)."""
    days = [dt.date(2010, 1, 1) + dt.timedelta(days=i) for i in range(60)]
    closes = [float((i * 37) % 61) + 1 for i in range(60)]  # a scrambled, non-monotone sequence
    rows = [(d, "AAA", c) for d, c in zip(days, closes, strict=True)]
    rows += [(d, "BBB", 100.0 + i) for i, d in enumerate(days) if i % 7 == 0]  # sparse: every 7th day
    lake.write_partitions(bars(*rows), tmp_path)
    for k in (1, 8, 30, 59):
        bbb = max(i for i in range(k) if i % 7 == 0)
        assert sorted(lake.last_bars_before(tmp_path, days[k]).rows()) == [
            ("AAA", days[k - 1], closes[k - 1]),
            ("BBB", days[bbb], 100.0 + bbb),
        ]


class DiskFull(OSError):
    pass


@pytest.mark.parametrize("error", [DiskFull, KeyboardInterrupt], ids=["os_error", "keyboard_interrupt"])
def test_a_failed_write_leaves_the_previous_partition_intact(
    error: type[BaseException], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake.write_partitions(WEEK, tmp_path)
    before = {p: (tmp_path / p).read_bytes() for p in all_files(tmp_path)}
    real_write = pl.DataFrame.write_parquet
    attempts: list[Path] = []

    def write_half_then_fail(self: pl.DataFrame, file: object, *args: object, **kwargs: object) -> None:
        buffer = io.BytesIO()
        real_write(self, buffer, *args, **kwargs)  # type: ignore[arg-type]
        Path(str(file)).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        attempts.append(Path(str(file)))
        raise error("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", write_half_then_fail)
    with pytest.raises(error):
        lake.write_partitions(bars((D2, "AAA", 77.0), (D2, "BBB", 78.0)), tmp_path)
    with pytest.raises(error):
        lake.atomic_write_parquet(bars((D5, "AAA", 1.0)), part(tmp_path, D5))  # a new partition
    monkeypatch.undo()

    assert len(attempts) == 2 and all(
        p.parent in (part(tmp_path, D2).parent, part(tmp_path, D5).parent) for p in attempts
    )
    assert all(p.name != "part.parquet" for p in attempts)  # the writer never touches the live file
    assert {p: (tmp_path / p).read_bytes() for p in all_files(tmp_path)} == before  # no temp, no half file
    assert pl.read_parquet(part(tmp_path, D2)).select("symbol", "close").rows() == [("AAA", 11.0), ("BBB", 21.0)]
    assert not part(tmp_path, D5).exists()


def test_the_same_files_ingested_from_two_places_store_the_same_bytes(tmp_path) -> None:
    """No absolute path in the lake: ``source_file`` is relative to the inbox, so moving the inbox (another
    clone, another machine) changes no stored byte."""
    from mem_pipeline.core.files import file_sha256
    from mem_pipeline.core.paths import Paths
    from mem_pipeline.ingest.quality.rules import QualityConfig
    from mem_pipeline.ingest.sources.files import FilesSource
    from mem_pipeline.ingest.window import ingest_window

    text = (
        "date,symbol,open,high,low,close,volume\n2010-06-01,AAA,10,11,9,10.5,1000\n2010-06-02,AAA,10.5,11,10,10.8,900\n"
    )
    stored = []
    for place in ("here", "elsewhere/deeper"):
        inbox = tmp_path / place / "inbox" / "daily"
        inbox.mkdir(parents=True)
        (inbox / "bars.csv").write_text(text, encoding="utf-8")
        paths = Paths(tmp_path / place / "data")
        day = dt.date(2010, 6, 1)
        assert ingest_window(
            FilesSource(inbox.parent), day, day + dt.timedelta(days=1), paths, QualityConfig()
        ).gate.passed
        files = sorted(paths.bars("files").glob("*/part.parquet"))
        stored.append({f.parent.name: file_sha256(f) for f in files})
        assert pl.read_parquet(files[0])["source_file"].to_list() == ["daily/bars.csv"]
    assert len(stored[0]) == 2 and stored[0] == stored[1]
