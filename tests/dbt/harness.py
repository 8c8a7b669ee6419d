"""Lakes, shared dbt builds and frame comparison for the feature-level dbt tests.

Two lakes:

* ``synthetic``: the seeded synthetic market (6 symbols x ~300 business days) with bid/ask, so the
  spread estimate takes the quoted-spread path.
* ``files``: hand-made random-walk OHLCV without bid/ask (the Corwin-Schultz path), with the awkward
  histories a real lake has: a symbol that starts before the others, one that starts late, one that
  stops early, one with missing days,
  one with a zero-volume day, two with overlapping flat stretches (zero std, ties in the ranks) and one
  with a 20-day rise (no losses: RSI 100).

A dbt build costs 5-9 s, so each distinct lake is built once per test session *across pytest-xdist
workers*: the first worker to ask builds it under a file lock in the session's shared temp folder and
exports the marts to parquet; the others wait for it and read the parquet.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mem_pipeline.core.paths import Paths
from mem_pipeline.core.schemas import BAR_SCHEMA, conform_bars
from mem_pipeline.features.dbt_cli import dbt, read_table
from mem_pipeline.ingest import lake
from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, SyntheticSource

KEY = ["symbol", "trade_date"]
MARTS = ("fct_features_daily", "fct_labels_daily")

# --------------------------------------------------------------------------------------------
# Lakes
# --------------------------------------------------------------------------------------------

SYNTHETIC_CONFIG = SyntheticConfig.from_params(
    {"seed": 20240611, "n_symbols": 6, "start": "2021-01-04", "end": "2022-02-25"}  # 300 business days
)

FILES_START = dt.date(2022, 1, 3)  # a Monday
FILES_DAYS = 260
FILES_SEED = 424242
# Day indices (0-based positions in the lake's business-day calendar) of the awkward histories.
HEAD_START = 3  # AAA alone trades the first 3 days: its first ranks are single-symbol cross-sections (0)
LATE_START = 100  # LATE's first bar
EARLY_END = 230  # END's last bar
GAP_DAYS = (170, 171, 172, 60)  # GAP has no bar on these days
ZERO_VOLUME_DAY = 150  # ZVOL trades 0 shares on this day
FLAT_1 = range(120, 150)  # FLAT1: close = open = high = low, unchanged
FLAT_2 = range(125, 151)  # FLAT2 likewise, overlapping FLAT1 (ties at 0 in rv/ret/amihud ranks)
RISING = range(200, 221)  # UP: strictly rising closes (no losses in 14 changes: RSI 100)


def business_days(start: dt.date, n: int) -> list[dt.date]:
    days = np.busday_offset(np.datetime64(start), np.arange(n), roll="forward")
    return [d.item() for d in days]


def synthetic_bars() -> pl.DataFrame:
    return SyntheticSource(SYNTHETIC_CONFIG).fetch(SYNTHETIC_CONFIG.start, SYNTHETIC_CONFIG.end)


def _random_walk(
    rng: np.random.Generator, n: int, flat: range = range(0), rising: range = range(0)
) -> dict[str, np.ndarray]:
    """Valid OHLCV for one symbol: low <= min(open, close) <= max(open, close) <= high, all > 0."""
    sigma = rng.uniform(0.008, 0.03)
    ret = sigma * rng.standard_t(5, n) / np.sqrt(5 / 3)
    gap = 0.3 * sigma * rng.standard_normal(n)
    up = np.abs(rng.normal(0.0, 0.6 * sigma, n))
    down = np.abs(rng.normal(0.0, 0.6 * sigma, n))
    ret[list(rising)] = np.abs(ret[list(rising)]) + 1e-3
    for series in (ret, gap, up, down):
        series[list(flat)] = 0.0
    close = rng.uniform(5.0, 500.0) * np.exp(np.cumsum(ret))
    prev_close = np.concatenate([[close[0] * np.exp(-ret[0])], close[:-1]])
    open_ = prev_close * np.exp(gap)
    high = np.maximum(open_, close) * np.exp(up)
    low = np.minimum(open_, close) * np.exp(-down)
    volume = rng.lognormal(np.log(rng.uniform(2e4, 2e6)), 0.4, n)  # fractional units on purpose
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def files_bars() -> pl.DataFrame:
    """The hand-made lake without bid/ask (see the module docstring)."""
    rng = np.random.default_rng(FILES_SEED)
    days = pl.Series("date", business_days(FILES_START, FILES_DAYS), dtype=pl.Date)
    n = FILES_DAYS
    index = np.arange(n)
    everyday = index >= HEAD_START
    plans: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {"AAA": (index >= 0, _random_walk(rng, n))}
    for symbol in ("BBB", "CCC"):
        plans[symbol] = (everyday, _random_walk(rng, n))
    plans["LATE"] = (index >= LATE_START, _random_walk(rng, n))
    plans["END"] = (everyday & (index <= EARLY_END), _random_walk(rng, n))
    plans["GAP"] = (everyday & ~np.isin(index, GAP_DAYS), _random_walk(rng, n))
    zvol = _random_walk(rng, n)
    zvol["volume"][ZERO_VOLUME_DAY] = 0.0
    plans["ZVOL"] = (everyday, zvol)
    plans["FLAT1"] = (everyday, _random_walk(rng, n, flat=FLAT_1))
    plans["FLAT2"] = (everyday, _random_walk(rng, n, flat=FLAT_2))
    plans["UP"] = (everyday, _random_walk(rng, n, rising=RISING))
    frames = []
    for symbol, (present, cols) in plans.items():
        frames.append(
            pl.DataFrame({"date": days.filter(present), "symbol": symbol, **{k: v[present] for k, v in cols.items()}})
        )
    frame = pl.concat(frames).sort("date", "symbol")
    return conform_bars(
        frame.with_columns(
            source_file=pl.lit("test://files/random-walk"), source_row=pl.int_range(1, frame.height + 1, dtype=pl.Int64)
        )
    )


def write_lake(data_dir: Path, source: str, bars: pl.DataFrame) -> None:
    assert bars.schema == pl.Schema(BAR_SCHEMA)
    lake.write_partitions(bars, Paths(data_dir).bars(source))


def lake_bars(data_dir: Path, source: str) -> pl.DataFrame:
    """The bars as dbt reads them (the reference is computed from exactly these)."""
    return lake.read_bars(Paths(data_dir).bars(source)).sort("symbol", "date")


def lake_dates(data_dir: Path, source: str) -> list[dt.date]:
    files = lake.partition_files(Paths(data_dir).bars(source))
    return [dt.date.fromisoformat(f.parent.name.removeprefix("date=")) for f in files]


def copy_partitions(src: Path, dst: Path, source: str, keep: Callable[[dt.date], bool]) -> None:
    """Copy the lake partitions whose date passes ``keep`` into another data folder, byte for byte."""
    for day, path in zip(lake_dates(src, source), lake.partition_files(Paths(src).bars(source)), strict=True):
        if keep(day):
            target = lake.partition_dir(Paths(dst).bars(source), day) / lake.PART
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


# --------------------------------------------------------------------------------------------
# Shared builds
# --------------------------------------------------------------------------------------------


def shared_root(factory: pytest.TempPathFactory) -> Path:
    base = factory.getbasetemp()
    # Under xdist every worker has basetemp <run>/popen-gwN; <run> is common to the session's workers.
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "mem-dbt-builds"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shared_build(
    factory: pytest.TempPathFactory,
    key: str,
    source: str,
    prepare: Callable[[Path], None],
    *dbt_args: str,
) -> Path:
    """A data folder whose lake ``prepare(data_dir)`` wrote and dbt ``dbt_args`` (default ``run``) built,
    once per session across workers. ``run``, not ``build``: the comparisons with the reference subsume the
    project's data tests and a build's unit and data tests would add ~2 s to every build.

    The built marts are exported to ``<data_dir>/export/<table>.parquet`` (read them with ``load``).
    """
    data_dir = shared_root(factory) / key
    done = data_dir / "export" / "DONE"
    with locked(data_dir.with_suffix(".lock")):
        if not done.exists():
            shutil.rmtree(data_dir, ignore_errors=True)  # a half-built folder from a failed attempt
            data_dir.mkdir(parents=True)
            prepare(data_dir)
            dbt(data_dir, *(dbt_args or ("run",)), dbt_vars={"source": source})
            done.parent.mkdir()
            for table in MARTS:
                try:
                    frame = read_table(data_dir, table)
                except Exception:  # noqa: BLE001 - a features-only run has no labels table
                    continue
                frame.write_parquet(data_dir / "export" / f"{table}.parquet")
            done.touch()
    return data_dir


def load(data_dir: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(data_dir / "export" / f"{table}.parquet").sort(KEY)


def build_synthetic(factory: pytest.TempPathFactory) -> Path:
    return shared_build(factory, "synthetic-full", "synthetic", lambda d: write_lake(d, "synthetic", synthetic_bars()))


def build_files(factory: pytest.TempPathFactory) -> Path:
    return shared_build(factory, "files-full", "files", lambda d: write_lake(d, "files", files_bars()))


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------


def assert_same_values(
    actual: pl.DataFrame,
    expected: pl.DataFrame,
    columns: tuple[str, ...] | list[str],
    *,
    abs_tol: float = 0.0,
    rel_tol: dict[str, float] | None = None,
    what: tuple[str, str] = ("sql", "reference"),
) -> None:
    """Same keys; per column, nulls in exactly the same rows and values within tolerance.

    ``abs_tol`` bounds ``|actual - expected|``; a column in ``rel_tol`` is bounded by ``tol * |expected|``
    instead. The failure lists the first offending rows (column, date, symbol, both values).
    """
    rel_tol = rel_tol or {}
    a_name, e_name = what
    missing = expected.select(KEY).join(actual.select(KEY), on=KEY, how="anti")
    extra = actual.select(KEY).join(expected.select(KEY), on=KEY, how="anti")
    assert missing.is_empty() and extra.is_empty(), f"rows only in {e_name}: {missing}\nrows only in {a_name}: {extra}"
    joined = (
        expected.select(*KEY, *columns)
        .join(actual.select(*KEY, *columns), on=KEY, how="left", suffix="__actual")
        .sort(KEY)
    )
    problems = []
    for column in columns:
        a, e = pl.col(f"{column}__actual"), pl.col(column)
        null_mismatch = a.is_null() != e.is_null()
        if column in rel_tol:
            off = (a.cast(pl.Float64) - e.cast(pl.Float64)).abs() > rel_tol[column] * e.cast(pl.Float64).abs()
        else:
            off = (a.cast(pl.Float64) - e.cast(pl.Float64)).abs() > abs_tol
        bad = joined.filter(null_mismatch | off.fill_null(False)).select(
            pl.lit(column).alias("column"),
            "trade_date",
            "symbol",
            a.cast(pl.Float64).alias(a_name),
            e.cast(pl.Float64).alias(e_name),
        )
        if bad.height:
            problems.append((column, bad.height, bad.head(5)))
    if problems:
        lines = [f"{len(problems)} column(s) disagree ({a_name} vs {e_name}):"]
        for column, count, rows in problems:
            lines.append(f"-- {column}: {count} row(s); first ones:")
            lines.extend(
                f"   {r['trade_date']} {r['symbol']}: {a_name}={r[a_name]!r} {e_name}={r[e_name]!r}"
                for r in rows.iter_rows(named=True)
            )
        raise AssertionError("\n".join(lines))
