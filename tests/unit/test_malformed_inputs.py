"""The malformed-input corpus: every bad file is refused with its own, specific error, and nothing stored is lost.

Each test writes real files into a tmp inbox and ingests them with ``FilesSource`` + ``ingest_window``
into a lake that already holds a clean week (2010-01-04 .. 2010-01-08, two symbols) from a previous
ingest. Expected rules and rows are worked out by hand from the rows written here:

* CSV: the header is row 1, the first data row is row 2. Parquet: the first row is row 1.
* ``week2_rows()`` is date-major, two symbols a day, so (2010-01-11 + k days, AAA) is CSV row 2 + 2k
  and (same day, BBB) is row 3 + 2k:

  ====  ==========  ======  =====  =====  =====  =====
  row   date        symbol  open   high   low    close
  ====  ==========  ======  =====  =====  =====  =====
  2     2010-01-11  AAA     105    107    103    106
  3     2010-01-11  BBB      55     57     53     56
  4     2010-01-12  AAA     106    108    104    107
  5     2010-01-12  BBB      56     58     54     57
  6     2010-01-13  AAA     107    109    105    108
  7     2010-01-13  BBB      57     59     55     58
  8     2010-01-14  AAA     108    110    106    109
  9     2010-01-14  BBB      58     60     56     59
  10    2010-01-15  AAA     109    111    107    110
  11    2010-01-15  BBB      59     61     57     60
  ====  ==========  ======  =====  =====  =====  =====

  volume is 1000 everywhere; day-to-day moves are ~1-2 %, far inside the 0.5 log-return bound.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest

from mem_pipeline.core.errors import DataQualityError, SchemaError
from mem_pipeline.core.paths import Paths
from mem_pipeline.ingest.quality.rules import RULE_NAMES, QualityConfig
from mem_pipeline.ingest.sources.files import FilesSource
from mem_pipeline.ingest.window import IngestResult, ingest_window

CFG = QualityConfig(max_rejected_share=0.0, as_of=dt.date(2011, 1, 1))
HEADER = ["date", "symbol", "open", "high", "low", "close", "volume"]
WEEK1 = [dt.date(2010, 1, 4) + dt.timedelta(days=i) for i in range(5)]  # Mon 4 .. Fri 8 January 2010
WEEK2 = [dt.date(2010, 1, 11) + dt.timedelta(days=i) for i in range(5)]  # Mon 11 .. Fri 15 January 2010
SYMBOLS = (("AAA", 100.0), ("BBB", 50.0))
QUARANTINED_FILES = ("quarantine", "files", "files")  # <quarantine>/<source name>/files


# ---------------------------------------------------------------------------------------------- helpers


def bar_rows(days: list[dt.date], first_index: int) -> list[list[object]]:
    rows: list[list[object]] = []
    for k, day in enumerate(days):
        for symbol, base in SYMBOLS:
            o = base + first_index + k
            rows.append([day.isoformat(), symbol, o, o + 2, o - 2, o + 1, 1000])
    return rows


def week2_rows() -> list[list[object]]:
    return bar_rows(WEEK2, first_index=5)  # continues week 1 (index 0..4), see the table above


def write_csv(path: Path, header: list[str], rows: list[list[object]], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def bars_frame(rows: list[list[object]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [dt.date.fromisoformat(str(r[0])) for r in rows],
            "symbol": [r[1] for r in rows],
            **{c: [float(r[i]) for r in rows] for i, c in enumerate(HEADER[2:], start=2)},  # type: ignore[arg-type]
        }
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(paths: Paths) -> dict[str, str]:
    """Every file under the raw lake (partitions, and any stray temp file) -> its sha256."""
    return {str(p.relative_to(paths.raw)): sha256(p) for p in sorted(paths.raw.rglob("*")) if p.is_file()}


def cell(rows: list[list[object]], csv_row: int, column: str, value: object, header: list[str] = HEADER) -> None:
    rows[csv_row - 2][header.index(column)] = value


@pytest.fixture(scope="session")
def clean_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake built by a real clean ingest of week 1 (built once per worker, copied per test)."""
    root = tmp_path_factory.mktemp("clean_lake")
    write_csv(root / "clean" / "week1.csv", HEADER, bar_rows(WEEK1, first_index=0))
    paths = Paths(data=root / "data")
    result = ingest_window(FilesSource(root / "clean"), WEEK1[0], WEEK1[-1], paths, CFG)
    assert result.gate.passed and result.gate.rejected.height == 0
    assert sorted(w.date for w in result.published) == WEEK1
    return paths.data


@pytest.fixture
def paths(tmp_path: Path, clean_lake: Path) -> Paths:
    shutil.copytree(clean_lake, tmp_path / "data")
    paths = Paths(data=tmp_path / "data")
    stored = snapshot(paths)
    expected = {f"files/bars/date={d.isoformat()}/part.parquet" for d in WEEK1}
    assert set(stored) == expected, "the fixture lake must hold exactly the five clean partitions"
    return paths


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    directory = tmp_path / "inbox"
    directory.mkdir()
    return directory


# ------------------------------------------------------------------------------- structural problems


def _naive_timestamp(inbox: Path) -> Path:
    rows = week2_rows()
    cell(rows, 5, "date", "2010-01-12T09:30:00")  # a time, no offset: which day is it?
    return write_csv(inbox / "naive.csv", HEADER, rows)


def _mixed_offsets(inbox: Path) -> Path:
    rows = week2_rows()
    for r in range(2, 12):
        cell(rows, r, "date", f"{rows[r - 2][0]}T00:00:00" + ("Z" if r < 7 else "+01:00"))
    return write_csv(inbox / "mixed_tz.csv", HEADER, rows)


def _missing_volume(inbox: Path) -> Path:
    rows = [r[:-1] for r in week2_rows()]
    return write_csv(inbox / "no_volume.csv", HEADER[:-1], rows)


def _price_not_close(inbox: Path) -> Path:
    return write_csv(inbox / "price.csv", [*HEADER[:5], "price", "volume"], week2_rows())


def _text_in_volume(inbox: Path) -> Path:
    rows = week2_rows()
    cell(rows, 7, "volume", "12k")
    return write_csv(inbox / "text_volume.csv", HEADER, rows)


def _empty_file(inbox: Path) -> Path:
    path = inbox / "empty.csv"
    path.write_bytes(b"")
    return path


def _header_only(inbox: Path) -> Path:
    return write_csv(inbox / "header_only.csv", HEADER, [])


def _truncated_parquet(inbox: Path) -> Path:
    path = inbox / "truncated.parquet"
    bars_frame(week2_rows()).write_parquet(path)
    data = path.read_bytes()
    assert pl.read_parquet(path).height == 10  # valid before the cut
    path.write_bytes(data[: len(data) // 2])
    return path


def _latin1(inbox: Path) -> Path:
    rows = week2_rows()
    cell(rows, 4, "symbol", "CAFÉ")  # 'É' is the single byte 0xC9 in latin-1: invalid UTF-8
    path = write_csv(inbox / "latin1.csv", HEADER, rows, encoding="latin-1")
    assert b"\xc9" in path.read_bytes()
    return path


def _empty_symbol(inbox: Path) -> Path:
    rows = week2_rows()
    cell(rows, 3, "symbol", "  ")
    return write_csv(inbox / "blank_symbol.csv", HEADER, rows)


def _impossible_date(inbox: Path) -> Path:
    rows = week2_rows()
    cell(rows, 8, "date", "2010-02-30")
    return write_csv(inbox / "feb30.csv", HEADER, rows)


def _parquet_naive_datetime(inbox: Path) -> Path:
    path = inbox / "naive_dt.parquet"
    frame = bars_frame(week2_rows()).with_columns(pl.col("date").cast(pl.Datetime("us")) + pl.duration(hours=16))
    frame.write_parquet(path)
    return path


@dataclass(frozen=True)
class Structural:
    build: Callable[[Path], Path]
    rule: str
    rows: tuple[int, ...] = ()
    detail: str = ""  # a substring the message must carry, beyond file/rule/rows


STRUCTURAL = {
    "naive_timestamp": Structural(_naive_timestamp, "naive_timestamp", (5,)),
    "mixed_utc_offsets": Structural(_mixed_offsets, "mixed_timezones", (), "'+00:00', '+01:00'"),
    "missing_volume_column": Structural(_missing_volume, "missing_columns", (), "missing ['volume']"),
    "price_instead_of_close": Structural(_price_not_close, "missing_columns", (), "missing ['close']"),
    "text_in_numeric_column": Structural(_text_in_volume, "dtype", (7,), "volume is not a number (e.g. ['12k'])"),
    "empty_0_byte_file": Structural(_empty_file, "empty_file"),
    "header_only_csv": Structural(_header_only, "no_rows"),
    "truncated_parquet": Structural(_truncated_parquet, "unreadable_parquet"),
    "latin1_csv": Structural(_latin1, "encoding", (4,), "byte 0xc9"),
    "blank_symbol": Structural(_empty_symbol, "missing_symbol", (3,)),
    "impossible_date": Structural(_impossible_date, "dtype", (8,), "2010-02-30"),
    "parquet_naive_datetime": Structural(_parquet_naive_datetime, "naive_timestamp"),
}


@pytest.mark.parametrize("case", list(STRUCTURAL), ids=list(STRUCTURAL))
def test_structural_problem_refuses_the_file(case: str, paths: Paths, inbox: Path) -> None:
    spec = STRUCTURAL[case]
    bad = spec.build(inbox)
    original = bad.read_bytes()
    before = snapshot(paths)

    with pytest.raises(SchemaError) as info:
        ingest_window(FilesSource(inbox), WEEK2[0], WEEK2[-1], paths, CFG)
    err = info.value
    message = str(err)

    assert err.rule == spec.rule
    assert err.source_file == str(bad)
    assert message.startswith(str(bad))
    assert f"[{spec.rule}]" in message
    assert err.rows == spec.rows
    if spec.rows:
        assert f"{bad} rows {', '.join(map(str, spec.rows))}: [{spec.rule}]" in message
    else:
        assert " rows " not in message
    assert spec.detail in message

    # The file is copied aside with its reason; the user's original stays where it was.
    qdir = paths.data.joinpath(*QUARANTINED_FILES)
    copy_name = f"{hashlib.sha256(original).hexdigest()[:12]}-{bad.name}"
    assert sorted(p.name for p in qdir.iterdir()) == sorted([copy_name, copy_name + ".reason.txt"])
    assert (qdir / copy_name).read_bytes() == original
    reason = (qdir / f"{copy_name}.reason.txt").read_text(encoding="utf-8")
    assert reason == message + "\n"
    assert bad.read_bytes() == original
    assert not (paths.quarantine / "files" / "rows").exists()

    # Nothing stored changed, nothing was added.
    assert snapshot(paths) == before


# ------------------------------------------------------------------------------------- row-level rules


@dataclass(frozen=True)
class RowCase:
    build: Callable[[Path], Path]
    expected: dict[str, tuple[int, ...]]  # rule -> source_row values
    first_row: int = 2  # source_row of the batch's first row (CSV: 2, parquet: 1)
    end: dt.date = WEEK2[-1]
    tolerated_also: frozenset[str] = field(default_factory=frozenset)  # rules that may flag the same rows too


def _csv_case(mutate: Callable[[list[list[object]]], None], name: str) -> Callable[[Path], Path]:
    def build(inbox: Path) -> Path:
        rows = week2_rows()
        mutate(rows)
        return write_csv(inbox / name, HEADER, rows)

    return build


def _swap_high_low(rows: list[list[object]], r: int) -> None:
    high, low = rows[r - 2][3], rows[r - 2][4]
    cell(rows, r, "high", low)
    cell(rows, r, "low", high)


def _zero_bar(rows: list[list[object]]) -> None:
    for column in ("open", "high", "low", "close"):
        cell(rows, 9, column, 0)


def _duplicate(rows: list[list[object]]) -> None:
    rows.insert(3, list(rows[2]))  # row 4 (2010-01-12 AAA) again as row 5; BBB's rows move down by one


def _out_of_order(rows: list[list[object]]) -> None:
    rows[2], rows[4] = rows[4], rows[2]  # row 4 is now AAA 01-13, row 6 AAA 01-12: a step back in time


def _jump(rows: list[list[object]]) -> None:
    for column in ("open", "high", "low", "close"):  # the whole bar x10 so that OHLC stays consistent
        cell(rows, 6, column, float(rows[4][HEADER.index(column)]) * 10)  # type: ignore[arg-type]


def _future(rows: list[list[object]]) -> None:
    rows.append(["2011-01-03", "AAA", 110, 112, 108, 111, 1000])  # row 12: a Monday after as_of 2011-01-01


def _two_rules(rows: list[list[object]]) -> None:
    _swap_high_low(rows, 7)
    cell(rows, 7, "volume", -5)


def _bid_ask(inbox: Path) -> Path:
    rows = week2_rows()
    for r in rows:
        r += [float(r[5]) - 0.05, float(r[5]) + 0.05]  # type: ignore[arg-type]
    rows[9 - 2][7:] = [59.10, 58.90]  # row 9: bid above ask
    return write_csv(inbox / "quotes.csv", [*HEADER, "bid", "ask"], rows)


def _parquet_negative_volume(inbox: Path) -> Path:
    rows = week2_rows()
    rows[2][6] = -1000  # parquet row 3 (no header: first row is row 1)
    path = inbox / "bars.parquet"
    bars_frame(rows).write_parquet(path)
    return path


ROW_CASES = {
    # NaN is "missing" (not_null). NaN <= high / NaN >= low are false and NaN is not finite, so the OHLC and
    # price-range rules may also flag the same row; what matters is that the row is rejected, first for not_null.
    "nan_close": RowCase(
        _csv_case(lambda rows: cell(rows, 4, "close", "NaN"), "nan.csv"),
        {"not_null": (4,)},
        tolerated_also=frozenset({"ohlc_consistent", "positive_prices"}),
    ),
    # +inf high is still >= open/low/close (OHLC holds) but is not a finite price.
    "inf_high": RowCase(_csv_case(lambda rows: cell(rows, 2, "high", "inf"), "inf.csv"), {"positive_prices": (2,)}),
    # low = -1 is below open and close, so OHLC still holds; only the price range breaks.
    "negative_price": RowCase(_csv_case(lambda rows: cell(rows, 8, "low", -1), "neg.csv"), {"positive_prices": (8,)}),
    # open = high = low = close = 0: consistent OHLC, but prices must be > 0.
    "zero_price": RowCase(_csv_case(_zero_bar, "zero.csv"), {"positive_prices": (9,)}),
    "high_below_low": RowCase(_csv_case(lambda rows: _swap_high_low(rows, 3), "hl.csv"), {"ohlc_consistent": (3,)}),
    "close_above_high": RowCase(
        _csv_case(lambda rows: cell(rows, 10, "close", 112), "close_high.csv"), {"ohlc_consistent": (10,)}
    ),
    "negative_volume": RowCase(
        _csv_case(lambda rows: cell(rows, 11, "volume", -1000), "negvol.csv"), {"volume_non_negative": (11,)}
    ),
    # Both copies are duplicates; the second is also not strictly after the first (0 days later).
    "duplicate_symbol_date": RowCase(
        _csv_case(_duplicate, "dup.csv"), {"unique_symbol_date": (4, 5), "monotone_time": (5,)}
    ),
    # AAA 01-13 close 1080 vs 107 the day before: |log(1080/107)| = 2.31 > 0.5; 01-14 (109 vs 107) is fine.
    "absurd_jump_x10": RowCase(_csv_case(_jump, "jump.csv"), {"plausible_returns": (6,)}),
    "future_date": RowCase(_csv_case(_future, "future.csv"), {"no_future_dates": (12,)}, end=dt.date(2011, 1, 7)),
    "bid_above_ask": RowCase(_bid_ask, {"spread_consistent": (9,)}),
    # One row, two rules: the row's `rule` is the first broken in RULES order, `reason` lists both.
    "two_rules_one_row": RowCase(
        _csv_case(_two_rules, "two.csv"), {"ohlc_consistent": (7,), "volume_non_negative": (7,)}
    ),
    "parquet_negative_volume": RowCase(_parquet_negative_volume, {"volume_non_negative": (3,)}, first_row=1),
}


def assert_refused(
    result: IngestResult, bad: Path, expected: dict[str, tuple[int, ...]], first_row: int, tolerated: frozenset[str]
) -> None:
    gate = result.gate
    assert [o.name for o in gate.outcomes] == list(RULE_NAMES)
    # Outcome rows are 0-based batch positions; the batch is this one file, in file order.
    failing = {o.name: tuple(i + first_row for i in o.rows) for o in gate.outcomes if not o.passed}
    bad_rows = sorted({r for rows in expected.values() for r in rows})
    for rule in tolerated & set(failing):
        assert set(failing.pop(rule)) <= set(bad_rows), f"{rule} flagged rows outside {bad_rows}"
    assert failing == expected

    assert gate.passed is False
    assert result.published == ()
    assert result.rows_published == 0
    assert gate.accepted.height + gate.rejected.height == result.rows_in

    # The rejected rows are quarantined with the first rule broken and every reason.
    assert result.quarantine_dir is not None
    assert result.quarantine_dir.parent == result.quarantine_dir.parents[1] / "rows"
    rejected = pl.read_parquet(result.quarantine_dir / "rejected.parquet").sort("source_row")
    assert {"rule", "reason"} <= set(rejected.columns)
    assert rejected["source_row"].to_list() == bad_rows
    assert set(rejected["source_file"]) == {bad.name}  # relative to the inbox: no absolute path in data files
    for row in rejected.iter_rows(named=True):
        broke = [rule for rule in RULE_NAMES if row["source_row"] in expected.get(rule, ())]
        assert row["rule"] == broke[0]
        for rule in broke:
            assert f"[{rule}]" in row["reason"]
    report = json.loads((result.quarantine_dir / "report.json").read_text(encoding="utf-8"))
    assert report["passed"] is False

    with pytest.raises(DataQualityError) as info:
        result.raise_for_gate()
    message = str(info.value)
    assert "nothing published" in message
    for rule, rows in expected.items():
        assert f"{bad.name} rows {', '.join(map(str, rows))}: [{rule}]" in message


@pytest.mark.parametrize("case", list(ROW_CASES), ids=list(ROW_CASES))
def test_row_level_problem_is_quarantined_and_the_batch_refused(case: str, paths: Paths, inbox: Path) -> None:
    spec = ROW_CASES[case]
    bad = spec.build(inbox)
    before = snapshot(paths)

    result = ingest_window(FilesSource(inbox), WEEK2[0], spec.end, paths, CFG)

    assert_refused(result, bad, spec.expected, spec.first_row, spec.tolerated_also)
    rejected = pl.read_parquet(result.quarantine_dir / "rejected.parquet")  # type: ignore[operator]
    written = pl.read_parquet(bad) if bad.suffix == ".parquet" else None
    for row in rejected.iter_rows(named=True):  # the quarantined values are the ones in the file
        if written is None:
            with bad.open(newline="", encoding="utf-8") as handle:
                line = list(csv.reader(handle))[row["source_row"] - 1]
            assert (line[0], line[1]) == (row["date"].isoformat(), row["symbol"])
        else:
            assert written.row(row["source_row"] - 1, named=True)["symbol"] == row["symbol"]
    assert snapshot(paths) == before
    assert not (paths.quarantine / "files" / "files").exists()


def test_future_date_is_judged_against_as_of(paths: Paths, inbox: Path) -> None:
    """The same file passes when as_of is on or after the bar's date (the rule is relative to 'today')."""
    rows = week2_rows()
    _future(rows)
    write_csv(inbox / "future.csv", HEADER, rows)
    cfg = QualityConfig(max_rejected_share=0.0, as_of=dt.date(2011, 1, 3))
    result = ingest_window(FilesSource(inbox), WEEK2[0], dt.date(2011, 1, 7), paths, cfg)
    assert result.gate.passed and result.gate.rejected.height == 0
    assert sorted(w.date for w in result.published) == [*WEEK2, dt.date(2011, 1, 3)]


def test_tolerance_publishes_good_rows_and_quarantines_the_bad_one(paths: Paths, inbox: Path) -> None:
    rows = week2_rows()
    cell(rows, 6, "volume", -1000)  # AAA 2010-01-13: 1 of that date's 2 rows -> share 0.5 on that date
    bad = write_csv(inbox / "one_bad.csv", HEADER, rows)
    before = snapshot(paths)
    cfg = QualityConfig(max_rejected_share=0.5, as_of=dt.date(2011, 1, 1))

    result = ingest_window(FilesSource(inbox), WEEK2[0], WEEK2[-1], paths, cfg)

    assert result.gate.passed is True
    result.raise_for_gate()  # does not raise
    assert result.gate.worst_share == 0.5
    assert [(w.date, w.rows) for w in result.published] == [(d, 1 if d == WEEK2[2] else 2) for d in WEEK2]
    rejected = pl.read_parquet(result.quarantine_dir / "rejected.parquet")  # type: ignore[operator]
    assert rejected.select("source_file", "source_row", "symbol", "rule").rows() == [
        (bad.name, 6, "AAA", "volume_non_negative")
    ]
    assert rejected["reason"][0].startswith("[volume_non_negative]")

    after = snapshot(paths)
    assert {k: v for k, v in after.items() if k in before} == before  # week 1 untouched
    assert set(after) - set(before) == {f"files/bars/date={d.isoformat()}/part.parquet" for d in WEEK2}
    stored = pl.read_parquet(paths.bars("files") / "date=2010-01-13" / "part.parquet")
    assert stored.select("symbol", "close", "volume", "source_row").rows() == [("BBB", 58.0, 1000.0, 7)]
    week2 = pl.read_parquet([paths.bars("files") / f"date={d.isoformat()}" / "part.parquet" for d in WEEK2])
    assert sorted(week2["source_row"].to_list()) == [2, 3, 4, 5, 7, 8, 9, 10, 11]


def test_share_just_over_the_limit_refuses_the_batch(paths: Paths, inbox: Path) -> None:
    rows = week2_rows()
    cell(rows, 6, "volume", -1000)  # share 0.5 on 2010-01-13
    write_csv(inbox / "one_bad.csv", HEADER, rows)
    before = snapshot(paths)
    cfg = QualityConfig(max_rejected_share=0.49, as_of=dt.date(2011, 1, 1))
    result = ingest_window(FilesSource(inbox), WEEK2[0], WEEK2[-1], paths, cfg)
    assert result.gate.passed is False and result.published == ()
    assert result.gate.failing_dates()["date"].to_list() == [WEEK2[2]]
    assert snapshot(paths) == before


# ------------------------------------------------------------------------- chained plausible returns

FEB = [dt.date(2010, 2, 1) + dt.timedelta(days=i) for i in range(5)]  # Mon 1 .. Fri 5 February 2010


def flat_bars(days: list[dt.date], closes: list[float]) -> list[list[object]]:
    return [[d.isoformat(), "AAA", c, c, c, c, 1000] for d, c in zip(days, closes, strict=True)]


def plausible_rows(result: IngestResult) -> tuple[int, ...]:
    (outcome,) = [o for o in result.gate.outcomes if o.name == "plausible_returns"]
    assert all(o.passed for o in result.gate.outcomes if o.name != "plausible_returns")
    return tuple(i + 2 for i in outcome.rows)


@pytest.mark.parametrize(
    ("closes", "expected_rows"),
    [
        # A lone bad tick: 1000 vs 100 fails; the next 100 is compared with the last accepted 100 and passes.
        pytest.param([100, 100, 1000, 100, 100], (4,), id="lone_spike"),
        # An unadjusted 2:1 split: |log(50/100)| = 0.69 > 0.5, and every later 50 is still compared with 100.
        pytest.param([100, 100, 50, 50, 50], (4, 5, 6), id="level_shift"),
        # Inside the bound: |log(61/100)| = 0.494 and back |log(100/61)| = 0.494.
        pytest.param([100, 100, 61, 100, 100], (), id="big_but_plausible"),
        # Just outside: |log(60/100)| = 0.511; the return to 100 is then back against 100.
        pytest.param([100, 100, 60, 100, 100], (4,), id="just_implausible"),
    ],
)
def test_plausible_returns_chain_inside_one_batch(
    closes: list[float], expected_rows: tuple[int, ...], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    write_csv(inbox / "aaa.csv", HEADER, flat_bars(FEB, closes))
    paths = Paths(data=tmp_path / "data")
    result = ingest_window(FilesSource(inbox), FEB[0], FEB[-1], paths, CFG)
    assert plausible_rows(result) == expected_rows
    assert result.gate.passed is (not expected_rows)
    if expected_rows:
        rejected = pl.read_parquet(result.quarantine_dir / "rejected.parquet")  # type: ignore[operator]
        assert rejected["source_row"].to_list() == list(expected_rows)
        assert set(rejected["rule"]) == {"plausible_returns"}
    else:
        assert result.quarantine_dir is None
        assert len(result.published) == 5


@pytest.mark.parametrize(
    ("closes", "expected_rows"),
    [
        # Stored close 100 (2010-02-02); the new batch starts with 1000: a spike against the stored close.
        pytest.param([1000, 100, 100], (2,), id="spike_against_stored_close"),
        # The split happened between batches: every bar of the new batch is half the stored close.
        pytest.param([50, 50, 50], (2, 3, 4), id="split_across_batches"),
        pytest.param([101, 102, 103], (), id="clean_continuation"),
    ],
)
def test_plausible_returns_hold_across_batches(
    closes: list[float], expected_rows: tuple[int, ...], tmp_path: Path
) -> None:
    paths = Paths(data=tmp_path / "data")
    first = write_csv(tmp_path / "inbox1" / "days12.csv", HEADER, flat_bars(FEB[:2], [100, 100]))
    r1 = ingest_window(FilesSource(first.parent), FEB[0], FEB[1], paths, CFG)
    assert r1.gate.passed and [w.date for w in r1.published] == FEB[:2]
    before = snapshot(paths)

    second = write_csv(tmp_path / "inbox2" / "days345.csv", HEADER, flat_bars(FEB[2:], closes))
    r2 = ingest_window(FilesSource(second.parent), FEB[2], FEB[-1], paths, CFG)

    assert plausible_rows(r2) == expected_rows
    if expected_rows:
        assert r2.gate.passed is False and r2.published == ()
        assert snapshot(paths) == before
        with pytest.raises(
            DataQualityError,
            match=re.escape(f"{second.name} rows {', '.join(map(str, expected_rows))}: [plausible_returns]"),
        ):
            r2.raise_for_gate()
    else:
        assert [w.date for w in r2.published] == FEB[2:]


# ---------------------------------------------------------------------------- bugs found (failing tests)


def test_columns_differing_only_in_case_are_a_schema_error(paths: Paths, inbox: Path) -> None:
    """'close' and 'Close' both become 'close' after lower-casing: the file is ambiguous and is refused
    with a SchemaError naming it, and quarantined."""
    rows = [[*r, r[5]] for r in week2_rows()]
    bad = write_csv(inbox / "two_closes.csv", [*HEADER, "Close"], rows)
    before = snapshot(paths)
    with pytest.raises(SchemaError) as info:
        ingest_window(FilesSource(inbox), WEEK2[0], WEEK2[-1], paths, CFG)
    assert info.value.source_file == str(bad)
    assert "close" in str(info.value)
    copy_name = f"{sha256(bad)[:12]}-{bad.name}"
    assert (paths.data.joinpath(*QUARANTINED_FILES) / copy_name).read_bytes() == bad.read_bytes()
    assert snapshot(paths) == before


def test_files_named_out_of_date_order_do_not_break_monotone_time(tmp_path: Path) -> None:
    """Two well-ordered files, jan.csv (2010-01-04..06) and feb.csv (2010-02-01..03), read in name order
    (feb first): time order is checked down each file, so neither is rejected by monotone_time."""
    inbox = tmp_path / "inbox"
    write_csv(inbox / "jan.csv", HEADER, flat_bars([dt.date(2010, 1, d) for d in (4, 5, 6)], [100, 100, 100]))
    write_csv(inbox / "feb.csv", HEADER, flat_bars([dt.date(2010, 2, d) for d in (1, 2, 3)], [100, 100, 100]))
    result = ingest_window(FilesSource(inbox), dt.date(2010, 1, 1), dt.date(2010, 2, 28), Paths(tmp_path / "data"), CFG)
    monotone = [o for o in result.gate.outcomes if o.name == "monotone_time"][0]
    assert monotone.rows == ()
    assert result.gate.passed and len(result.published) == 6


def test_a_tolerated_rejection_keeps_the_stored_good_bar(tmp_path: Path) -> None:
    """A re-ingest restates a stored day; one symbol's new bar is bad. The batch passes (within tolerance),
    the other symbol's new bar replaces its stored one, and the bad symbol keeps its stored good bar."""
    day = dt.date(2010, 3, 1)
    paths = Paths(tmp_path / "data")
    first = tmp_path / "inbox1"
    write_csv(
        first / "a.csv", HEADER, [["2010-03-01", "AAA", 10, 11, 9, 10, 100], ["2010-03-01", "BBB", 20, 21, 19, 20, 100]]
    )
    cfg = QualityConfig(max_rejected_share=0.5, as_of=dt.date(2011, 1, 1))
    assert ingest_window(FilesSource(first), day, day, paths, cfg).gate.passed
    second = tmp_path / "inbox2"
    write_csv(
        second / "b.csv",
        HEADER,
        [["2010-03-01", "AAA", 10, 12, 9, 11, 200], ["2010-03-01", "BBB", 20, 19, 21, 20, 100]],
    )
    result = ingest_window(FilesSource(second), day, day, paths, cfg)
    assert result.gate.passed and [o.rows for o in result.gate.outcomes if o.name == "ohlc_consistent"] == [(1,)]
    stored = pl.read_parquet(paths.bars("files") / "date=2010-03-01" / "part.parquet").sort("symbol")
    assert stored.select("symbol", "high", "low", "volume").rows() == [
        ("AAA", 12.0, 9.0, 200.0),
        ("BBB", 21.0, 19.0, 100.0),
    ]


# ------------------------------------------------------------ the whole file is validated; nothing stored is lost


def test_a_future_dated_row_outside_the_window_is_quarantined_not_dropped(paths: Paths, inbox: Path) -> None:
    """Week 2 plus one bar dated 2011-01-03 (after as_of 2011-01-01), ingested for week 2 only: the future row is
    rejected by no_future_dates and quarantined with its file and row; it is not a date this run publishes, so the
    batch passes (share 0 on every published date) and week 2 is published."""
    rows = week2_rows()
    _future(rows)
    bad = write_csv(inbox / "future.csv", HEADER, rows)
    before = snapshot(paths)

    result = ingest_window(FilesSource(inbox), WEEK2[0], WEEK2[-1], paths, CFG)

    failing = {o.name: o.rows for o in result.gate.outcomes if not o.passed}
    assert list(failing) == ["no_future_dates"]
    assert result.gate.passed and result.gate.worst_share == 0.0
    assert [(w.date, w.rows) for w in result.published] == [(d, 2) for d in WEEK2]
    rejected = pl.read_parquet(result.quarantine_dir / "rejected.parquet")  # type: ignore[operator]
    assert rejected.select("source_file", "source_row", "date", "rule").rows() == [
        (bad.name, 12, dt.date(2011, 1, 3), "no_future_dates")
    ]
    assert f"{bad.name} rows 12: [no_future_dates]" in result.gate.summary()
    assert not (paths.bars("files") / "date=2011-01-03").exists()
    assert {k: v for k, v in snapshot(paths).items() if k in before} == before


def test_rows_outside_the_window_are_validated_and_counted_not_published(paths: Paths, inbox: Path) -> None:
    """One file holding weeks 1 and 2, ingested for week 2: all 20 rows go through the gate (the bad week-1 row
    is quarantined), week 2 is published, the 9 good week-1 rows are counted as outside the window and their
    stored partitions are not touched."""
    rows = bar_rows([*WEEK1, *WEEK2], first_index=0)  # rows 2..11 week 1, rows 12..21 week 2
    _swap_high_low(rows, 3)  # BBB 2010-01-04: high below low, outside the window
    bad = write_csv(inbox / "both_weeks.csv", HEADER, rows)
    before = snapshot(paths)

    result = ingest_window(FilesSource(inbox), WEEK2[0], WEEK2[-1], paths, CFG)

    assert result.rows_in == 20
    assert result.rows_outside_window == 9
    assert result.gate.passed
    assert [(w.date, w.rows) for w in result.published] == [(d, 2) for d in WEEK2]
    rejected = pl.read_parquet(result.quarantine_dir / "rejected.parquet")  # type: ignore[operator]
    assert rejected.select("source_file", "source_row", "rule").rows() == [(bad.name, 3, "ohlc_consistent")]
    after = snapshot(paths)
    assert {k: v for k, v in after.items() if k in before} == before  # week 1 as it was


def test_rows_out_of_order_in_a_file_are_sorted_counted_and_published(paths: Paths, inbox: Path) -> None:
    """AAA in file order: 01-11 (row 2), 01-13 (row 4), 01-12 (row 6), 01-14, 01-15: one row steps back in time.
    That is an ordering matter, not bad data: nothing is rejected, the count is reported, all is published."""
    rows = week2_rows()
    _out_of_order(rows)
    write_csv(inbox / "order.csv", HEADER, rows)

    result = ingest_window(FilesSource(inbox), WEEK2[0], WEEK2[-1], paths, CFG)

    assert result.gate.rejected.height == 0 and result.gate.passed
    assert result.rows_out_of_order == 1
    assert [(w.date, w.rows) for w in result.published] == [(d, 2) for d in WEEK2]
    stored = pl.read_parquet(paths.bars("files") / "date=2010-01-12" / "part.parquet")
    assert stored.select("symbol", "close", "source_row").rows() == [("AAA", 107.0, 6), ("BBB", 57.0, 5)]


def _week1_without_bbb(inbox: Path) -> Path:
    """Week 1 again with only AAA, its closes raised by 0.5 (a correction)."""
    rows = [r for r in bar_rows(WEEK1, first_index=0) if r[1] == "AAA"]
    for r in rows:
        r[5] = float(r[5]) + 0.5  # type: ignore[arg-type]
    return write_csv(inbox / "aaa_only.csv", HEADER, rows)


def test_a_stored_bar_absent_from_the_new_file_is_kept(paths: Paths, inbox: Path) -> None:
    """Re-ingesting week 1 from a file without BBB corrects AAA and keeps every stored BBB bar (counted)."""
    _week1_without_bbb(inbox)

    result = ingest_window(FilesSource(inbox), WEEK1[0], WEEK1[-1], paths, CFG)

    assert result.gate.passed and result.restate is False
    assert result.stored_kept == 5 and result.stored_dropped == 0
    stored = pl.read_parquet([paths.bars("files") / f"date={d.isoformat()}" / "part.parquet" for d in WEEK1])
    assert stored.filter(pl.col("symbol") == "BBB")["close"].to_list() == [51.0, 52.0, 53.0, 54.0, 55.0]
    assert stored.filter(pl.col("symbol") == "AAA")["close"].to_list() == [101.5, 102.5, 103.5, 104.5, 105.5]


def test_restate_replaces_whole_dates(paths: Paths, inbox: Path) -> None:
    """With restate=True the same file replaces week 1's dates: BBB, absent from the file, is dropped (counted)."""
    _week1_without_bbb(inbox)

    result = ingest_window(FilesSource(inbox), WEEK1[0], WEEK1[-1], paths, CFG, restate=True)

    assert result.gate.passed and result.restate is True
    assert result.stored_kept == 0 and result.stored_dropped == 5
    stored = pl.read_parquet([paths.bars("files") / f"date={d.isoformat()}" / "part.parquet" for d in WEEK1])
    assert stored["symbol"].to_list() == ["AAA"] * 5
